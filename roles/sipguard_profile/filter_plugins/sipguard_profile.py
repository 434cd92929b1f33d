"""Filters that check a host's profile inputs before anything changes.

They are pure functions (no Ansible imports beyond the FilterModule shim) so the
unit tests call them directly; the role calls them from its validate tasks.
"""

import ipaddress


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


def sipguard_allowed_networks(settings, lan_networks, trunk_table):
    """Where SIP may come from for a profile row: ``[]`` means the whole world."""
    if settings["firewall"]["allow"] == "world":
        return []
    networks = list(lan_networks or [])
    for trunk in trunk_table or []:
        networks += [a for a in trunk["addresses"] if a not in networks]
    return networks


class FilterModule:
    def filters(self):
        return {
            "sipguard_invalid_networks": sipguard_invalid_networks,
            "sipguard_trunk_problems": sipguard_trunk_problems,
            "sipguard_account_problems": sipguard_account_problems,
            "sipguard_trunk_table": sipguard_trunk_table,
            "sipguard_allowed_networks": sipguard_allowed_networks,
        }
