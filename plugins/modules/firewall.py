#!/usr/bin/python
# Copyright (c) sipguard contributors
# MIT License (see LICENSE in the collection's root or https://opensource.org/license/mit)
# SPDX-License-Identifier: MIT
"""Ansible module: own the sipguard iptables/ip6tables chains and ipsets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: firewall
short_description: Own the sipguard scanner-blocking layer (iptables/ip6tables chains and ipsets)
description:
  - Renders the SIP scanner-blocking layer from structured options, validates it with
    C(iptables-restore --test) and loads it atomically with C(iptables-restore --noflush).
  - Owns only its own objects, the chains C(NAME-INPUT), C(NAME-SIP) and (with O(accept_sip))
    C(NAME-ACCEPT), the ipsets C(NAME-allow4), C(NAME-allow6), C(NAME-block4), C(NAME-block6), one
    jump from C(INPUT) near the top (above any ACCEPT rule such as ESTABLISHED,RELATED, so a ban also
    bites on UDP) and, with O(accept_sip), one jump appended at the end of C(INPUT). No other chain
    is flushed and no policy is changed. Other tools may insert their own rules above the jump
    (fail2ban does); that is not a change as long as none of them accepts.
  - The layer only removes traffic. For packets to the SIP ports, management ports first exempted -
    the allow set (allowed networks and trunks) returns to the host's rules untouched, the block set
    is dropped, UDP whose User-Agent header starts with a scanner name is dropped, sources over the
    rate limit are dropped (never banned - a UDP source can be forged), and the rest returns to the
    host's rules (SIP open to the world) or is logged and dropped or rejected (O(restrict_to_allowed)).
    Whatever returns still meets the host's own rules, fail2ban and policy, which decide.
  - Refuses, changing nothing, when firewalld runs (a C(firewall-cmd --reload) removes other tools'
    iptables chains, with either backend). Warns when a native nftables input chain with a drop
    policy also filters; it still decides over what the layer lets pass.
  - Re-applying keeps the dynamic members of the block sets (the responder adds sources there).
  - With O(persist=true) the layer is written to C(/etc/sipguard/firewall/) and loaded at boot by
    C(sipguard-firewall.service). When systemd is not running, or is not the init of the network
    namespace the module runs in, persistence is skipped with a warning.
  - With O(debug_log=open) the layer gets extra rate-limited LOG rules in its own chains for
    O(debug_log_ttl) seconds, then the target removes them by itself (a timer runs a script the
    module wrote, which loads the layer's chains as rendered without them, under the module's
    lock). Only the layer's own chains change, at the start and at the end of the window. The
    window's rules are never persisted, so a reboot ends it too.
  - With O(rollback_timeout) the previous state is restored by the target itself after that many
    seconds unless a later task runs the module with O(state=confirmed). While such a guard is
    pending, an unguarded apply is refused; a confirm after the rollback ran fails.
version_added: "0.1.0"
author: sipguard maintainers (@sipguard)
options:
  name:
    description: Prefix of the layer's chains and ipsets; at most 12 letters, digits, V(_) or V(-).
    type: str
    default: sipguard
  state:
    description:
      - V(present) applies the layer, V(absent) removes every object it created (chains, jump,
        ipsets, boot unit and files, a pending rollback), V(confirmed) cancels a pending rollback
        guard and makes the guarded apply persistent; V(confirmed) needs only O(name).
    type: str
    choices: [present, absent, confirmed]
    default: present
  sip_ports:
    description: Ports SIP listens on.
    type: list
    elements: int
    default: [5060]
  protocols:
    description: Transports of the SIP ports.
    type: list
    elements: str
    choices: [udp, tcp]
    default: [udp, tcp]
  ip_versions:
    description: IP versions to build the layer for; objects of the other version are removed.
    type: list
    elements: int
    choices: [4, 6]
    default: [4, 6]
  allowed_networks:
    description:
      - Addresses or CIDR networks (IPv4 and IPv6 mixed) of trusted sources (the LAN). They are
        never dropped by the layer (not by User-Agent, block set or rate limit).
    type: list
    elements: str
    default: []
  trunk_addresses:
    description: Addresses or networks of SIP trunks; trusted like O(allowed_networks).
    type: list
    elements: str
    default: []
  restrict_to_allowed:
    description:
      - V(true) lets SIP only from O(allowed_networks) and O(trunk_addresses) through; everything
        else meets O(final_action). Both lists empty is then an error (it would close SIP to all).
      - V(false) leaves SIP open to the world (scanner, block and rate rules still apply).
      - Unset, it is V(true) exactly when O(allowed_networks) is not empty.
    type: bool
  accept_sip:
    description:
      - Also accept SIP from where the layer lets it through, in a chain jumped to from the end of
        C(INPUT), after the host's own rules. Only for hosts whose policy would otherwise drop SIP;
        the host's explicit drops above it still win.
    type: bool
    default: false
  ipv6_prefix:
    description:
      - IPv6 sources are rate-limited and blocked per prefix of this length (one host usually owns
        a whole /64), so rotating addresses inside it neither escapes the limit nor a ban.
    type: int
    default: 64
  scanner_user_agents:
    description:
      - Scanner names dropped on UDP when the C(User-Agent) header starts with them
        (case-insensitive, with or without a space after the colon), after the trusted sources
        passed. TCP is left to the SIP server (a dropped segment would stall the connection).
        Printable ASCII without quotes or backslashes, at most 115 characters each.
    type: list
    elements: str
    default: []
  rate_limit:
    description:
      - New SIP requests per second per source (every UDP packet, TCP connection attempts; IPv6 per
        O(ipv6_prefix)) above which packets are dropped; V(0) turns the rate limit off. Excess is
        never turned into a ban.
    type: int
    default: 0
  rate_burst:
    description: Requests a source may send at once before the rate limit applies.
    type: int
    default: 10
  block_set_timeout:
    description: Seconds a source stays in the block set (the sets' default timeout).
    type: int
    default: 300
  block_addresses:
    description:
      - Single addresses to add to the block set now (with the set's timeout); their conntrack
        entries are deleted when they are newly added.
    type: list
    elements: str
    default: []
  log:
    description: Add rate-limited LOG rules before the drops.
    type: bool
    default: false
  log_prefix:
    description: Prefix of the LOG lines (a tag such as V(ua), V(block), V(deny) follows).
    type: str
    default: "sipguard: "
  log_rate:
    description: Rate of the LOG rules, for example V(5/minute) or V(1/second).
    type: str
    default: 5/minute
  debug_log:
    description:
      - V(open) opens (or renews) a debug window - every SIP packet reaching the layer and each
        drop is logged, tagged with O(debug_log_prefix) (V(sip), V(ua), V(block), V(deny)),
        limited to O(debug_log_rate) per rule - that the target closes by itself after
        O(debug_log_ttl) seconds. While it is open these LOG rules replace those of O(log).
      - V(keep) leaves an open window as it is (its LOG rules and its end stay, with a warning),
        and opens none. The boot files never hold the window's rules.
      - V(close) ends an open window now.
    type: str
    choices: [keep, open, close]
    default: keep
  debug_log_ttl:
    description: Seconds the window opened by O(debug_log=open) lasts (5 to 86400).
    type: int
    default: 900
  debug_log_prefix:
    description: Prefix of the debug window's LOG lines (a tag such as V(sip) follows).
    type: str
    default: "sipguard-debug: "
  debug_log_rate:
    description: Rate of each of the debug window's LOG rules, for example V(1/second).
    type: str
    default: 1/second
  final_action:
    description: What happens to SIP packets from elsewhere when O(restrict_to_allowed) is on.
    type: str
    choices: [DROP, REJECT]
    default: DROP
  management_ports:
    description:
      - TCP ports the layer never touches (exempted first); pass the connection's port.
    type: list
    elements: int
    default: [22]
  persist:
    description:
      - Load the layer at boot through C(sipguard-firewall.service).
      - V(false) removes the unit and boot files an earlier run wrote.
    type: bool
    default: true
  rollback_timeout:
    description:
      - Seconds after which the target restores the previous state by itself unless a later task
        confirms with O(state=confirmed); V(0) applies without a guard.
    type: int
    default: 0
notes:
  - Supports check mode (render, compare and C(iptables-restore --test); nothing is changed) and
    diff mode (normalised rules and ipsets before and after).
  - Needs C(iptables), C(ip6tables), C(ipset) and, for O(block_addresses), C(conntrack) on the target.
requirements:
  - iptables (legacy or nft backend), ipset, conntrack
attributes:
  check_mode:
    description: Renders, compares and runs C(iptables-restore --test); changes nothing.
    support: full
  diff_mode:
    description: Shows the normalised rules and ipsets before and after.
    support: full
"""

EXAMPLES = r"""
- name: Public server - drop scanners and rate-limit noisy sources, never the office
  sipguard.hardening.firewall:
    allowed_networks: [192.0.2.0/24]
    restrict_to_allowed: false
    scanner_user_agents: [friendly-scanner, sipvicious, sipcli, VaxSIPUserAgent, pplsip]
    rate_limit: 20
    rate_burst: 40
    block_set_timeout: 300
    management_ports: ["{{ ansible_port | default(22) }}"]

- name: Mixed server - SIP only from the LAN and the trunks, with a rollback guard
  sipguard.hardening.firewall:
    allowed_networks: [10.20.0.0/16, "2001:db8:20::/48"]
    trunk_addresses: [203.0.113.7]
    restrict_to_allowed: true
    final_action: DROP
    rollback_timeout: 120

- name: Confirm the guarded apply (the connection survived)
  sipguard.hardening.firewall:
    state: confirmed

- name: Log what reaches the layer for ten minutes (the target ends the window by itself)
  sipguard.hardening.firewall:
    allowed_networks: [192.0.2.0/24]
    restrict_to_allowed: false
    debug_log: open
    debug_log_ttl: 600

- name: Remove the layer, leaving the host as it was
  sipguard.hardening.firewall:
    state: absent
"""

RETURN = r"""
rules:
  description: The rendered rules of each IP version, as iptables-save prints them.
  returned: state is present
  type: dict
  sample: {"ipv4": ":sipguard-INPUT - [0:0]\n...", "ipv6": "..."}
ipsets:
  description: Names of the ipsets the layer owns.
  returned: state is present
  type: list
  elements: str
  sample: [sipguard-allow4, sipguard-block4, sipguard-allow6, sipguard-block6]
rollback_pending:
  description: Whether a rollback guard is waiting for O(state=confirmed).
  returned: always
  type: bool
conntrack_deleted:
  description: Conntrack entries deleted for newly blocked addresses.
  returned: always
  type: int
blocked:
  description: Addresses of O(block_addresses) that were newly added to the block sets.
  returned: state is present
  type: list
  elements: str
debug_window:
  description:
    - The open debug window, C(ends) (UTC) and C(until) (seconds since the epoch); empty when
      none is open after this run.
  returned: state is present
  type: dict
  sample: {"ends": "2025-01-01 12:15:00 UTC", "until": 1735733700}
differences:
  description: Short list of what differed between the kernel and the desired layer.
  returned: always
  type: list
  elements: str
diff:
  description: Normalised rules and ipsets before and after (diff mode).
  returned: diff mode
  type: dict
"""

# Ansible modules keep their imports below the documentation strings.
import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_apply import (
    FirewallError,
    Netfilter,
    apply,
    block_addresses,
    block_members,
    describe,
    describe_desired,
    differences,
    remove_all,
    validate,
)
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_neighbours import (
    detect as detect_neighbours,
)
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_persist import (
    arm_guard,
    boot_files,
    boot_files_exist,
    confirm_guard,
    debug_files_exist,
    debug_window,
    drop_debug,
    drop_guard,
    files_differ,
    forget_rollback,
    guard_dir,
    guard_lock,
    guard_pending,
    install_boot_files,
    keep_debug,
    open_debug,
    remove_boot_files,
    rolled_back,
    systemd_usable,
)
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_rules import (
    FirewallConfigError,
    build_spec,
    ipset_names,
    render_rules,
)

DEBUG_TTL_MIN = 5
DEBUG_TTL_MAX = 86400

TOOLS = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
         "ip6tables-restore", "ipset", "conntrack")

ARGUMENT_SPEC = dict(
    name=dict(type="str", default="sipguard"),
    state=dict(type="str", default="present", choices=["present", "absent", "confirmed"]),
    sip_ports=dict(type="list", elements="int", default=[5060]),
    protocols=dict(type="list", elements="str", choices=["udp", "tcp"], default=["udp", "tcp"]),
    ip_versions=dict(type="list", elements="int", choices=[4, 6], default=[4, 6]),
    allowed_networks=dict(type="list", elements="str", default=[]),
    trunk_addresses=dict(type="list", elements="str", default=[]),
    restrict_to_allowed=dict(type="bool"),
    accept_sip=dict(type="bool", default=False),
    ipv6_prefix=dict(type="int", default=64),
    scanner_user_agents=dict(type="list", elements="str", default=[]),
    rate_limit=dict(type="int", default=0),
    rate_burst=dict(type="int", default=10),
    block_set_timeout=dict(type="int", default=300),
    block_addresses=dict(type="list", elements="str", default=[]),
    log=dict(type="bool", default=False),
    log_prefix=dict(type="str", default="sipguard: "),
    log_rate=dict(type="str", default="5/minute"),
    debug_log=dict(type="str", choices=["keep", "open", "close"], default="keep"),
    debug_log_ttl=dict(type="int", default=900),
    debug_log_prefix=dict(type="str", default="sipguard-debug: "),
    debug_log_rate=dict(type="str", default="1/second"),
    final_action=dict(type="str", choices=["DROP", "REJECT"], default="DROP"),
    management_ports=dict(type="list", elements="int", default=[22]),
    persist=dict(type="bool", default=True),
    rollback_timeout=dict(type="int", default=0),
)


def find_tools(module):
    bins = {}
    for tool in TOOLS:
        path = module.get_bin_path(tool)
        if path is None and tool != "conntrack":
            raise FirewallError("'{}' was not found on the target; install iptables and ipset".format(tool))
        bins[tool] = path
    return bins


def make_runner(module):
    def run(args, data=None):
        if data is None:
            return module.run_command(args)
        return module.run_command(args, data=data, binary_data=True)

    return run


def plan_persistence(module, spec, bins, diffs):
    """The boot files to write: a dict, {} for none, or None when stale ones must go
    (persist: false after an earlier persist: true)."""
    if not systemd_usable():
        if module.params["persist"]:
            module.warn("persist: systemd is not running in this network namespace, so the layer "
                        "is applied but will not survive a reboot")
        return {}
    if not module.params["persist"]:
        if boot_files_exist(spec.name):
            diffs.append("boot files exist but persist is false")
            return None
        return {}
    boot = boot_files(spec, bins)
    if files_differ(boot) and not _pending_has(spec.name, boot):
        diffs.append("boot files differ")
        return boot
    return {}


def plan_blocking(nf, spec, bins, diffs):
    """Note block_addresses that are not in the block sets yet."""
    if not (spec.block_addresses[4] or spec.block_addresses[6]):
        return
    if bins["conntrack"] is None:
        raise FirewallError("block_addresses needs the 'conntrack' tool on the target")
    members = block_members(nf, spec)
    new = [a for v in spec.ip_versions for a in spec.block_addresses[v]
           if a not in members.get("{}-block{}".format(spec.name, v), set())]
    if new:
        diffs.append("to block: {}".format(', '.join(new)))


def _read_file(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):  # Python 2's open() raises IOError
        return None


def check_neighbours(module, run):
    """Refuse beside a firewall manager that would remove the layer; warn beside one
    that also filters."""
    refusal, warnings = detect_neighbours(run, module.get_bin_path, _read_file)
    if refusal:
        raise FirewallError(refusal)
    for warning in warnings:
        module.warn(warning)


def run_present(module, nf, bins, run, result):
    params = module.params
    if params["rollback_timeout"] < 0:
        raise FirewallConfigError("rollback_timeout must be 0 (no guard) or a number of seconds")
    window, spec = plan_debug(module, params)
    check_neighbours(module, run)
    result["rules"] = {"ipv{}".format(v): render_rules(spec, v) for v in spec.ip_versions}
    result["ipsets"] = ipset_names(spec.name, spec.ip_versions)
    current = nf.read_state(spec.name, spec.ip_versions)
    diffs = differences(spec, current)
    rules_differ = bool(diffs)  # before the boot-file and block-address notes join the list
    boot = plan_persistence(module, spec, bins, diffs)
    plan_blocking(nf, spec, bins, diffs)
    debug_diffs(params, spec, window, diffs)

    result["differences"] = diffs
    result["debug_window"] = _window_result(window) if spec.debug_log else {}
    result["changed"] = bool(diffs)
    result["rollback_pending"] = guard_pending(spec.name)
    if module._diff:
        result["diff"] = {"before": describe(current, spec.name), "after": describe_desired(spec)}
    if module.check_mode:
        if rules_differ and not validate(nf, spec, current):
            module.warn("check mode: iptables-restore --test skipped because the layer's ipsets "
                        "do not exist yet (the set match needs them)")
        return

    guarded = params["rollback_timeout"] > 0 and rules_differ
    if not guarded and rules_differ and guard_pending(spec.name):
        # The pending guard would roll this apply back too, without anyone asking for it.
        raise FirewallError("a rollback guard for layer {} is pending from an earlier guarded "
                            "apply: confirm it (state: confirmed) or apply with rollback_timeout; "
                            "nothing was changed".format(spec.name))
    forget_rollback(spec.name)
    if guarded:
        # Armed before the change, so even a crash right after the apply rolls back.
        arm_guard(spec.name, current, spec, bins=bins, seconds=params["rollback_timeout"],
                  pending_boot=boot or None, run=run)
    _apply_and_time_the_window(module, nf, spec, bins, run, window, (current, rules_differ, guarded), result)
    if boot is None:
        remove_boot_files(spec.name, run)
    elif boot and not guarded:
        install_boot_files(boot, run, spec.name)
    result["blocked"], result["conntrack_deleted"] = block_addresses(nf, spec, block_members(nf, spec))
    result["rollback_pending"] = guard_pending(spec.name)


def _apply_and_time_the_window(module, nf, spec, bins, run, window, plan, result):
    """Apply the rules; a debug window is armed before (its timer also ends it when this run
    dies after the apply) and its close script follows every later apply while it is open."""
    params = module.params
    current, rules_differ, guarded = plan
    opened = params["debug_log"] == "open"
    earlier_window = debug_window(spec.name)
    if opened:
        # Also armed before the change: the window ends even if this run dies after the apply.
        window = open_debug(spec, bins, params["debug_log_ttl"], run)
        result["debug_window"] = _window_result(window)
    try:
        if rules_differ:
            apply(nf, spec, current)
    except FirewallError:
        if guarded:
            drop_guard(spec.name, run)
        if opened and not earlier_window:
            # Nothing of a window is loaded: no timer needed. (An earlier window's LOG rules are
            # still loaded: its renewed timer stays and removes them.)
            drop_debug(spec.name, run)
        raise
    if spec.debug_log and not opened:
        keep_debug(spec, bins, window)  # the window's end loads the layer as applied now
    elif not spec.debug_log:
        drop_debug(spec.name, run)


def plan_debug(module, params):
    """The debug window this run leaves open (None for none) and the spec to render."""
    mode = params["debug_log"]
    window = debug_window(params["name"]) if mode == "keep" else None
    if mode == "open":
        if not DEBUG_TTL_MIN <= params["debug_log_ttl"] <= DEBUG_TTL_MAX:
            raise FirewallConfigError("debug_log_ttl: {} is outside {}-{} seconds".format(
                params["debug_log_ttl"], DEBUG_TTL_MIN, DEBUG_TTL_MAX))
        return None, build_spec(params)
    if window and window["until"] > time.time():
        module.warn("a debug window of firewall layer {} is open until {}: its LOG rules stay until "
                    "then (debug_log: close ends it now)".format(params["name"], window.get("ends")))
        return window, build_spec(dict(params, debug_log="open", debug_log_prefix=window.get("prefix"),
                                       debug_log_rate=window.get("rate")))
    return None, build_spec(params)


def debug_diffs(params, spec, window, diffs):
    """Opening a window is always a change (its timer starts again); ending one is a change even
    when its rules are already gone (the timer and script go)."""
    if params["debug_log"] == "open":
        diffs.append("debug window opens for {} seconds".format(params["debug_log_ttl"]))
    elif not spec.debug_log and debug_files_exist(spec.name):
        diffs.append("debug window closes")


def _window_result(window):
    return {"ends": window.get("ends"), "until": window.get("until")} if window else {}


def _pending_has(name, boot):
    """True when a pending guard already holds exactly these boot files."""
    path = "{}/pending/files.json".format(guard_dir(name))
    try:
        with open(path) as handle:
            return json.load(handle) == boot
    except (IOError, OSError, ValueError):
        return False


def run_absent(module, nf, run, result):
    name = build_spec({"name": module.params["name"]}).name
    current = nf.read_state(name, required=())
    boot = boot_files_exist(name) if systemd_usable() else []
    pending = guard_pending(name) or bool(debug_files_exist(name))
    result["changed"] = current.exists() or bool(boot) or pending
    result["differences"] = ["layer objects exist"] if current.exists() else []
    if module._diff:
        result["diff"] = {"before": describe(current, name), "after": ""}
    if module.check_mode:
        return
    forget_rollback(name)
    drop_guard(name, run)
    drop_debug(name, run)
    remove_all(nf, name, current)
    if boot:
        remove_boot_files(name, run)


def run_confirmed(module, name, run, result):
    result["changed"] = guard_pending(name)
    when = rolled_back(name)
    if not result["changed"] and when:
        raise FirewallError("the guarded apply of layer {} was rolled back at {} because nobody "
                            "confirmed it in time; the previous rules are in place".format(name, when))
    if result["changed"] and not module.check_mode:
        confirm_guard(name, run)
    result["rollback_pending"] = guard_pending(name)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = dict(changed=False, rollback_pending=False, conntrack_deleted=0, differences=[])
    run = make_runner(module)
    try:
        name = build_spec({"name": module.params["name"]}).name
        with guard_lock(name):
            if module.params["state"] == "confirmed":
                run_confirmed(module, name, run, result)
            else:
                bins = find_tools(module)
                nf = Netfilter(run, bins)
                if module.params["state"] == "absent":
                    run_absent(module, nf, run, result)
                else:
                    run_present(module, nf, bins, run, result)
    except (FirewallConfigError, FirewallError) as exc:
        module.fail_json(msg=str(exc), **result)
    except (IOError, OSError) as exc:
        module.fail_json(msg="sipguard_firewall: {}".format(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
