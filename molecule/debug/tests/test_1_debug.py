"""debug: a time-boxed window on a public host turns replies, the trace and the
firewall's LOG rules on, and the host reverts by itself after the TTL, with no
controller involved (verified by waiting, not assumed). The revert puts back only
sipguard's own chains: a fail2ban-style ban another tool adds during the window
survives it."""

import os
import re
import time

import pytest
from sipcheck import add_address, rule_packets, sip_probe, trace_lines, wait_for

from testkit.ansible import ansible

TTL = 90  # the playbook itself takes 30-60 s of it on a busy machine; the checks need the rest
CONF = "/etc/sipresponder/softswitch.conf"
WINDOW = "/var/lib/sipguard/debug/window"
SAVE_TOOLS = ("iptables-save", "ip6tables-save")
F2B = "f2b-sip"  # the chain fail2ban's iptables-multiport action would create for a jail "sip"


def _reply_setting(target) -> str:
    return target.check_output(f"sed -n 's/^SS_REPLY_UNAUTHORIZED=//p' {CONF}").strip('"')


def _log_rules(target) -> list[str]:
    return [line for tool in SAVE_TOOLS
            for line in target.check_output(f"{tool} -t filter").splitlines() if "-j LOG" in line]


# A chain of sipguard's, a rule in one, or a rule of another chain that jumps to one.
_SIPGUARD_OBJECT = re.compile(r"^:sipguard-\S+|^-A sipguard-.*|^-A \S+ (.* )?-[jg] sipguard-.*")


def _sipguard_objects(target, tool: str) -> list[str]:
    """sipguard's chains, their rules and the jumps to them, without counters (in save order)."""
    lines = target.check_output(f"{tool} -t filter").splitlines()
    return [m.group(0) for m in map(_SIPGUARD_OBJECT.match, lines) if m]


def _f2b_rules(target, tool: str) -> list[str]:
    return [line for line in target.check_output(f"{tool} -t filter").splitlines() if F2B in line]


@pytest.fixture(scope="module")
def sipguard_before(topo):
    """sipguard's own objects before the window, per save tool."""
    target = topo.host("target")
    return {tool: _sipguard_objects(target, tool) for tool in SAVE_TOOLS}


@pytest.fixture(scope="module")
def window(topo, sipguard_before):
    """Open the debug window once for this module; return when it was opened."""
    target = topo.host("target")
    assert all(sipguard_before.values()), "the base profile's firewall layer is not loaded"
    assert _reply_setting(target) == "Off", "the base profile (public) should be silent before the window"
    run = ansible("-i", os.environ["MOLECULE_INVENTORY_FILE"], "playbooks/debug.yml",
                  "-e", f"sipguard_debug_hosts=mol-{topo.name}-target", "-e", f"sipguard_debug_ttl={TTL}",
                  timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return time.monotonic()


@pytest.fixture(scope="module")
def fail2ban(topo, window):
    """Another tool bans sources while the window is open, the way fail2ban's iptables
    action does: its own chain, a jump inserted at the top of INPUT, the ban inserted
    into the chain. The banned sources are extra addresses of the scanner. Removed again
    at the end of the module, so that the rollback check finds the host as before."""
    target, scanner = topo.host("target"), topo.host("scanner")
    banned = {"iptables": add_address(scanner, f"{topo.wan}.101", 24),
              "ip6tables": add_address(scanner, f"{topo.wan6}:101", 64)}
    for tool, address in banned.items():
        target.check_output(f"{tool} -N {F2B} && {tool} -A {F2B} -j RETURN"
                            f" && {tool} -I INPUT -p udp -m multiport --dports 5060 -j {F2B}"
                            f" && {tool} -I {F2B} 1 -s {address} -j REJECT")
    yield banned
    for tool in banned:
        target.run(f"{tool} -D INPUT -p udp -m multiport --dports 5060 -j {F2B}"
                   f"; {tool} -F {F2B}; {tool} -X {F2B}")


def _ban_rejects(topo, tool: str, address: str) -> bool:
    """A real SIP packet from the banned address meets the ban's REJECT (its counter grows)."""
    target, v6 = topo.host("target"), tool == "ip6tables"
    pattern = rf"^-A {F2B} -s {re.escape(address)}/\d+ -j REJECT"
    before = rule_packets(target, pattern, v6=v6)
    reply = sip_probe(topo.host("scanner"), topo.target_wan6 if v6 else topo.target_wan, source=address)
    return not reply["answered"] and rule_packets(target, pattern, v6=v6) > before


def test_another_tool_bans_during_the_window(topo, window, fail2ban):
    target = topo.host("target")
    assert target.file(WINDOW).exists and _log_rules(target), "the window should still be open"
    for tool, address in fail2ban.items():
        assert _ban_rejects(topo, tool, address), f"{tool}: the fail2ban-style ban does not work"


def test_replies_are_on_during_the_window(topo, window):
    scanner = topo.host("scanner")
    assert _reply_setting(topo.host("target")) == "On"
    assert sip_probe(scanner, topo.target_wan, method="OPTIONS")["status"] == 403
    assert sip_probe(scanner, topo.target_wan, method="REGISTER")["status"] == 401


def test_trace_records_dropped_requests(topo, window):
    # An ACK from a stranger gets nothing back even with replies on; the trace still shows it.
    reply = sip_probe(topo.host("scanner"), topo.target_wan, method="ACK")
    assert not reply["answered"]

    def dropped_ack():
        scanner_address = f"{topo.wan}.100"
        return [e for e in trace_lines(topo.host("target"))
                if (e.get("method"), e.get("decision"), e.get("src")) == ("ACK", "drop", scanner_address)]

    assert wait_for(dropped_ack, timeout=5)


def test_log_rules_exist_and_are_rate_limited(topo, window):
    rules = _log_rules(topo.host("target"))
    assert rules, "no LOG rules during the debug window"
    assert all(re.search(r"-m limit --limit \S+", rule) for rule in rules), rules


def test_host_reverts_by_itself_after_the_ttl(topo, window):
    target = topo.host("target")
    remaining = TTL - (time.monotonic() - window)
    reverted = wait_for(lambda: _reply_setting(target) == "Off" and not _log_rules(target),
                        timeout=max(remaining, 0) + 60, interval=3)
    assert reverted, f"still in debug after TTL+60s: {_reply_setting(target)}, {_log_rules(target)}"
    assert wait_for(lambda: not target.file(WINDOW).exists, timeout=10), "the revert did not finish"
    assert not sip_probe(topo.host("scanner"), topo.target_wan, method="OPTIONS")["answered"]
    before = len(trace_lines(target))
    sip_probe(topo.host("scanner"), topo.target_wan, method="ACK")
    time.sleep(1)
    assert len(trace_lines(target)) == before, "the trace is still on after the revert"


def test_revert_keeps_other_tools_rules(topo, window, sipguard_before, fail2ban):
    """The revert put back sipguard's own chains, exactly, and nothing else: the ban
    another tool added during the window is still there and still rejects."""
    target = topo.host("target")
    assert not target.file(WINDOW).exists, "the window should be closed by now"
    for tool, address in fail2ban.items():
        save = f"{tool}-save"
        assert _sipguard_objects(target, save) == sipguard_before[save], f"{tool}: sipguard's chains changed"
        rules = _f2b_rules(target, save)
        assert any(rule.startswith(f":{F2B} ") for rule in rules), f"{tool}: the {F2B} chain is gone"
        assert any(rule.startswith("-A INPUT ") and rule.endswith(f"-j {F2B}") for rule in rules), rules
        assert any(rule.startswith(f"-A {F2B} -s {address}/") for rule in rules), rules
        assert _ban_rejects(topo, tool, address), f"{tool}: the ban no longer rejects after the revert"
