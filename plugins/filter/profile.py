"""Filters that check a host's profile inputs before anything changes.

They are pure functions (the only Ansible import is its own truth table for a
yes/no input) so the unit tests call them directly; the role calls them from its validate tasks.
The one exception is ``sipguard_known_variables``, which reads the roles' own
YAML files (on the controller) to learn every variable name they use.
"""

import difflib
import ipaddress
import json
import re
from pathlib import Path

import yaml
from ansible.module_utils.parsing.convert_bool import boolean

PREFIX = "sipguard_"
SET_FACT = {"set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact"}
TASK_LISTS = ("block", "rescue", "always")


def network_problem(value):
    """Return why ``value`` is not an IPv4/IPv6 network or address, or None if it is one."""
    if not isinstance(value, str) or not value.strip():
        return "not a network (expected an address or CIDR such as 198.18.10.0/24)"
    try:
        ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as err:
        # ipaddress says e.g. "198.18.10.5/24 has host bits set": clear enough to show.
        return str(err)
    return None


def sipguard_invalid_networks(values):
    """List ``"value: reason"`` for every entry of ``values`` that is not a valid network."""
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, list):
        return [f"{values!r}: expected a list of networks, got {type(values).__name__}"]
    problems = []
    for value in values:
        reason = network_problem(value)
        if reason:
            problems.append(f"{value!r}: {reason}")
    return problems


def sipguard_trunk_problems(trunks):
    """List what is wrong with ``sipguard_trunks`` entries (shape only; DNS is checked later).

    A trunk is ``{name, addresses: [...]}`` or ``{name, dns: NAME}``, not both.
    """
    if not trunks:
        return []
    if not isinstance(trunks, list):
        return [f"sipguard_trunks must be a list, got {type(trunks).__name__}"]
    problems = []
    for index, trunk in enumerate(trunks):
        if not isinstance(trunk, dict) or not trunk.get("name"):
            problems.append(f"trunk #{index + 1} ({trunk!r}): needs a name")
            continue
        has_addresses, has_dns = "addresses" in trunk, "dns" in trunk
        if has_addresses == has_dns:
            problems.append(f"trunk {trunk['name']!r}: give exactly one of addresses or dns")
        elif has_addresses:
            bad = sipguard_invalid_networks(trunk["addresses"])
            problems += [f"trunk {trunk['name']!r}: {p}" for p in bad]
        elif not isinstance(trunk["dns"], str) or not trunk["dns"].strip():
            problems.append(f"trunk {trunk['name']!r}: dns must be a host name, got {trunk['dns']!r}")
    return problems


def sipguard_account_problems(accounts):
    """List what is wrong with ``sipguard_accounts`` entries, never echoing a secret."""
    if not accounts:
        return []
    if not isinstance(accounts, list):
        return [f"sipguard_accounts must be a list, got {type(accounts).__name__}"]
    problems = []
    for index, account in enumerate(accounts):
        if not isinstance(account, dict) or not account.get("username"):
            problems.append(f"account #{index + 1}: needs a username")
            continue
        name = account["username"]
        secrets = [k for k in ("password", "ha1_md5", "ha1_sha256") if account.get(k)]
        if len(secrets) != 1:
            problems.append(f"account {name!r}: give exactly one of password, ha1_md5, ha1_sha256")
        networks = account.get("networks")
        if networks is not None and networks != ["any"]:
            problems += [f"account {name!r}: {p}" for p in sipguard_invalid_networks(networks)]
    return problems


def sipguard_trunk_table(trunks, dns_results=None):
    """Merge static trunks and DNS answers into ``[{name, addresses}]``, in inventory order.

    ``dns_results`` is the registered loop result of the sipguard_sip_dns task:
    each entry has ``item`` (the trunk) and ``addresses``.
    """
    resolved = {r["item"]["name"]: list(r.get("addresses") or []) for r in (dns_results or []) if "item" in r}
    table = []
    for trunk in trunks or []:
        addresses = trunk["addresses"] if "addresses" in trunk else resolved.get(trunk["name"], [])
        table.append({"name": trunk["name"], "addresses": list(addresses)})
    return table


# --- typed lists ---------------------------------------------------------------------------------


def _looks_like_text(value):
    # Ansible hands templated strings over as str subclasses: isinstance covers them.
    return isinstance(value, str)


def _as_list_hint(text):
    """Suggest the YAML list a comma/space separated string probably meant, or None."""
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    if parts and all(p.isdigit() for p in parts):
        return "[" + ", ".join(str(int(p)) for p in parts) + "]"
    return None


def sipguard_port_problems(ports, allow_empty=False):
    """List why ``ports`` is not a YAML list of port numbers (integers 1-65535).

    A string such as ``"5060,5070"`` is refused outright: the roles would iterate
    over its characters (``SS_SIP_PORT=5,0,6,0,,,5,0,7,0``).
    """
    if _looks_like_text(ports):
        hint = _as_list_hint(ports)
        example = f", e.g. {hint}" if hint else " such as [5060, 5070]"
        return [f"{ports!r} is a string: write a YAML list of port numbers{example}"]
    if not isinstance(ports, list):
        return [f"{ports!r}: expected a YAML list of port numbers, got {type(ports).__name__}"]
    if not ports and not allow_empty:
        return ["is empty: give at least one port"]
    problems = []
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int):
            if _looks_like_text(port) and port.strip().isdigit():
                problems.append(f"{port!r} is a string: write the number without quotes ({int(port)})")
            else:
                problems.append(f"{port!r} is not a port number (an integer 1-65535)")
        elif not 1 <= port <= 65535:
            problems.append(f"{port} is out of range (1-65535)")
    return problems


def _port_number(value):
    """``value`` as a port number when it is one (an int or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if _looks_like_text(value) and value.strip().isdigit():
        return int(value)
    return None


def sipguard_port_overlap(sip_ports, management_ports, ansible_port=None):
    """List every SIP port that is also a management port (or the Ansible connection's port).

    The firewall layer filters SIP ports and never touches management ports: a port
    in both lists is a contradiction that would cut SSH or leave SIP unguarded.
    Only well-typed lists are compared (``sipguard_port_problems`` reports the rest).
    """
    if not isinstance(sip_ports, list) or not isinstance(management_ports, list):
        return []
    management = {}
    for port in management_ports:
        management.setdefault(_port_number(port), "sipguard_management_ports")
    connection_port = _port_number(ansible_port)
    if connection_port is not None:
        management.setdefault(connection_port, "ansible_port")
    problems = []
    for port in dict.fromkeys(_port_number(p) for p in sip_ports):
        if port is not None and port in management:
            problems.append(
                f"port {port} is both a SIP port (sipguard_sip_ports) and a management port "
                f"({management[port]}): the SIP firewall rules would filter the host's management "
                f"access; take it out of sipguard_sip_ports"
            )
    return problems


def sipguard_choice_problems(values, choices):
    """List why ``values`` is not a non-empty YAML list whose entries are all among ``choices``."""
    if _looks_like_text(values):
        return [f"{values!r} is a string: write a YAML list such as {list(choices)!r}"]
    if not isinstance(values, list):
        return [f"{values!r}: expected a YAML list, got {type(values).__name__}"]
    if not values:
        return [f"is empty: give at least one of {list(choices)!r}"]
    return [f"{v!r} is not one of {list(choices)!r}" for v in values
            if isinstance(v, bool) or v not in choices]


def sipguard_user_agent_problems(user_agents):
    """List why ``user_agents`` is not a YAML list of printable, non-empty User-Agent substrings.

    An empty list is well-typed; whether the profile allows it is decided in the role.
    """
    if _looks_like_text(user_agents):
        return [f"{user_agents!r} is a string: write a YAML list such as [friendly-scanner, sipvicious]"]
    if not isinstance(user_agents, list):
        return [f"{user_agents!r}: expected a YAML list, got {type(user_agents).__name__}"]
    problems = []
    for agent in user_agents:
        if not _looks_like_text(agent) or not agent.strip():
            problems.append(f"{agent!r} is not a User-Agent substring (a non-empty string)")
        elif not agent.isprintable():
            problems.append(f"{agent!r} contains control characters (a newline, a tab...)")
    return problems


# --- unknown variables ---------------------------------------------------------------------------


class _TolerantLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """A safe loader (the C one when PyYAML has it) that reads Ansible's tags (!vault, !unsafe) as values."""


def _tagged_value(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_TolerantLoader.add_multi_constructor("!", _tagged_value)


def load_yaml(text):
    """Parse one YAML document of a role or an inventory, Ansible's tags included."""
    return yaml.load(text, Loader=_TolerantLoader)  # noqa: S506 - a SafeLoader subclass


def _task_variables(tasks):
    """Names a task list registers or sets as facts, through blocks."""
    names = set()
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        if isinstance(task.get("register"), str):
            names.add(task["register"])
        for key, args in task.items():
            if key in SET_FACT and isinstance(args, dict):
                names.update(k for k in args if isinstance(k, str) and k != "cacheable")
            elif key in TASK_LISTS:
                names |= _task_variables(args)
    return names


def variable_names(kind, document):
    """The sipguard_* variable names one parsed role file defines.

    ``kind`` is where the file lives in the role: ``defaults`` or ``vars`` (top-level keys),
    ``meta/argument_specs`` (the options of every entry point), ``tasks`` or ``handlers``
    (registered results and set_fact names).
    """
    names = set()
    if kind in ("defaults", "vars") and isinstance(document, dict):
        names = set(document)
    elif kind == "meta/argument_specs" and isinstance(document, dict):
        for entry in (document.get("argument_specs") or {}).values():
            names |= set((entry or {}).get("options") or {})
    elif kind in ("tasks", "handlers"):
        names = _task_variables(document)
    return {n for n in names if isinstance(n, str) and n.startswith(PREFIX)}


def sipguard_known_variables(roles_dir, also_known=()):
    """Every sipguard_* name the roles under ``roles_dir`` define, plus ``also_known``, sorted.

    Read from the files themselves (defaults, vars, argument specs, registered results and
    facts), so a variable added to a role is known without a second list to update.
    """
    names = {n for n in also_known or () if isinstance(n, str)}
    for role in sorted(Path(roles_dir).iterdir()):
        files = [("meta/argument_specs", role / "meta/argument_specs.yml")]
        files += [(kind, path) for kind in ("defaults", "vars", "tasks", "handlers")
                  for path in sorted((role / kind).glob("**/*.y*ml"))]
        for kind, path in files:
            if path.is_file():
                names |= variable_names(kind, load_yaml(path.read_text()))
    return sorted(names)


def _closest(name, known):
    """The known name closest to ``name`` (compared without the shared prefix), or None."""
    def tail(n):
        n = n.lower()
        return n[len(PREFIX):] if n.startswith(PREFIX) else n
    tails = {}
    for candidate in known:
        tails.setdefault(tail(candidate), candidate)
    match = difflib.get_close_matches(tail(name), list(tails), n=1, cutoff=0.6)
    return tails[match[0]] if match else None


def sipguard_unknown_variables(names, known):
    """List a problem for every variable in ``names`` that looks like sipguard's but is not known.

    Every ``sipguard_*`` name must be known; any other name only when it is a near miss of a
    known one (``sipgaurd_profile``). Each problem names the closest known variable.
    """
    known = sorted(set(known))
    known_set = set(known)
    problems = []
    for name in sorted({n for n in names if isinstance(n, str)} - known_set):
        if name.lower().startswith(PREFIX):
            closest = _closest(name, known)
        else:
            near = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.85)
            if not near:
                continue
            closest = near[0]
        hint = f"did you mean {closest}?" if closest else "no sipguard role reads it"
        problems.append(f"unknown variable {name} ({hint})")
    return problems


# --- all the checks at once ----------------------------------------------------------------------


def _softswitch_problems(inputs):
    backends = inputs.get("backends") or {}
    softswitch = inputs.get("softswitch")
    if inputs.get("softswitch_set") and isinstance(softswitch, str) and softswitch in backends:
        return []
    if inputs.get("softswitch_set"):
        found = f"unknown sipguard_softswitch {json.dumps(softswitch)}"
    else:
        found = "sipguard_softswitch is not set"
    choices = "; ".join(f"sipguard_softswitch: {name} ({backend.get('description', '')})"
                        for name, backend in backends.items())
    return [f"{found}; say in the inventory what runs SIP on this host, one of: {choices}"]


def _honour_problems(profile, softswitch, backends):
    backend = backends[softswitch]
    if backend.get("profiles", {}).get(profile) != "refused":
        return []
    refusal = " ".join(str(backend.get("refusal") or "the product cannot behave as the profile says").split())
    can = ", ".join(name for name, how in backend.get("profiles", {}).items() if how != "refused")
    return [f"sipguard_profile {profile} cannot be honoured on sipguard_softswitch {softswitch}: {refusal}."
            f" Profiles it can honour: {can} (docs/backends.md)"]


def sipguard_softswitch_problems(inputs):
    """What is wrong with the host's sipguard_softswitch: not set, unknown, or a product that cannot honour
    the host's profile (judged only when the profile is a known one). The keys of ``inputs`` are
    profile_problems' ``softswitch``, ``softswitch_set``, ``backends``, ``profile`` and ``profiles``.
    """
    problems = _softswitch_problems(inputs)
    profile = inputs.get("profile")
    if not problems and isinstance(profile, str) and profile in (inputs.get("profiles") or {}):
        problems = _honour_problems(profile, inputs["softswitch"], inputs.get("backends") or {})
    return problems


def _named(name, problems):
    return [f"{name} {problem}" for problem in problems]


def sipguard_profile_problems(inputs):
    """Every problem with a host's profile inputs, as one list (empty when the host may go on).

    ``inputs`` holds the host's values under short names (see the role's validate.yml). One
    task and one list, not a task per check: each task costs the controller a worker per
    host, and a user with three mistakes sees all three at once. Misspelt variables come
    alone, so ``sipguard_profle`` is named as such rather than as a missing profile.
    """
    unknown = sipguard_unknown_variables(inputs.get("host_variables") or [],
                                         inputs.get("known_variables") or [])
    if unknown:
        return unknown
    profiles = inputs.get("profiles") or {}
    profile = inputs.get("profile")
    known_profile = isinstance(profile, str) and profile in profiles
    problems = []
    if not known_profile:
        problems.append(f"unknown sipguard_profile {json.dumps(profile)};"
                        f" known profiles: {', '.join(sorted(profiles))}")
    problems += sipguard_softswitch_problems(inputs)
    lan, trunks = inputs.get("lan_networks"), inputs.get("trunks")
    problems += _named("sipguard_lan_networks", sipguard_invalid_networks(lan))
    problems += _named("sipguard_trunks", sipguard_trunk_problems(trunks))
    problems += _named("sipguard_accounts", sipguard_account_problems(inputs.get("accounts")))
    sip_ports, management_ports = inputs.get("sip_ports"), inputs.get("management_ports")
    problems += _named("sipguard_sip_ports", sipguard_port_problems(sip_ports))
    problems += _named("sipguard_management_ports",
                       sipguard_port_problems(management_ports, allow_empty=True))
    problems += sipguard_port_overlap(sip_ports, management_ports, inputs.get("ansible_port"))
    problems += _named("sipguard_sip_transports",
                       sipguard_choice_problems(inputs.get("sip_transports"), ["udp", "tcp"]))
    problems += _named("sipguard_ip_versions", sipguard_choice_problems(inputs.get("ip_versions"), [4, 6]))
    user_agents = inputs.get("scanner_user_agents")
    problems += _named("sipguard_scanner_user_agents", sipguard_user_agent_problems(user_agents))
    if known_profile:
        row = profiles[profile]
        # An empty allow list means "open to the world" to the firewall module: a LAN-only
        # profile with no LAN and no trunk would silently become public.
        if row.get("firewall", {}).get("allow") != "world" and not lan and not trunks:
            problems.append(f"profile {profile} allows SIP only from the LAN and trunks, but"
                            " sipguard_lan_networks and sipguard_trunks are both empty")
        # An empty scanner list would drop nothing while the profile claims to drop scanners.
        empty_ok = boolean(inputs.get("scanner_user_agents_empty_ok") or False, strict=False)
        if row.get("scanner_drop") and not user_agents and not empty_ok:
            problems.append(
                f"profile {profile} drops scanner User-Agents, but sipguard_scanner_user_agents is empty, so"
                " nothing would be dropped; list the scanners, or set"
                " sipguard_scanner_user_agents_empty_ok: true to run without a scanner list on purpose")
    return problems


class FilterModule:
    def filters(self):
        return {
            "invalid_networks": sipguard_invalid_networks,
            "trunk_problems": sipguard_trunk_problems,
            "account_problems": sipguard_account_problems,
            "trunk_table": sipguard_trunk_table,
            "port_problems": sipguard_port_problems,
            "port_overlap": sipguard_port_overlap,
            "choice_problems": sipguard_choice_problems,
            "user_agent_problems": sipguard_user_agent_problems,
            "known_variables": sipguard_known_variables,
            "unknown_variables": sipguard_unknown_variables,
            "profile_problems": sipguard_profile_problems,
            "softswitch_problems": sipguard_softswitch_problems,
        }
