"""Other firewall managers on the target, and what the layer does beside them.

The layer is plain iptables/ip6tables chains that only remove traffic. Beside it:
- firewalld removes third-party iptables chains on every ``firewall-cmd --reload``,
  with either backend (measured with Debian 12's firewalld 1.3.3 and its default
  nftables backend, FlushAllOnReload=no included): refused, nothing changed.
- a native nftables table whose input chain drops by policy filters in a hook of its
  own: a packet must pass both, so the layer keeps working and that table still
  decides over what it lets pass (a warning says so, since ``accept_sip`` cannot open
  anything through it).
Parsing is pure; ``detect`` runs the commands through the module's runner.
"""

from __future__ import absolute_import, division, print_function

import json

__metaclass__ = type

# iptables-nft keeps its rules in these tables: they are the layer's own backend, not a neighbour.
IPTABLES_NFT_TABLES = {"filter", "mangle", "raw", "nat", "security"}
FIREWALLD_CONF = "/etc/firewalld/firewalld.conf"


def firewalld_backend(conf_text):
    """FirewallBackend from firewalld.conf; nftables when unset (firewalld 0.6 and later)."""
    for raw in conf_text.splitlines():
        line = raw.strip()
        if line.startswith("FirewallBackend="):
            return line.split("=", 1)[1].strip().strip('"').lower() or "nftables"
    return "nftables"


def native_drop_chains(nft_json):
    """'family table/chain' of native nftables input chains with a drop policy, from
    ``nft -j list ruleset``; iptables-nft's and firewalld's own tables are not counted."""
    try:
        items = json.loads(nft_json).get("nftables", [])
    except (ValueError, AttributeError):
        return []
    found = []
    for item in items:
        chain = item.get("chain") if isinstance(item, dict) else None
        if not chain or chain.get("hook") != "input" or chain.get("policy") != "drop":
            continue
        family, table = chain.get("family"), chain.get("table")
        if (family in ("ip", "ip6") and table in IPTABLES_NFT_TABLES) or table == "firewalld":
            continue
        found.append("{} {}/{}".format(family, table, chain.get('name')))
    return found


def detect(run, which, read_file):
    """(refusal or None, [warnings]) for the managers found on this host.

    ``which(tool)`` gives a path or None, ``read_file(path)`` the text or None."""
    warnings = []
    firewall_cmd = which("firewall-cmd")
    if firewall_cmd:
        rc, out, _err = run([firewall_cmd, "--state"])
        if rc == 0 and out.strip() == "running":
            backend = firewalld_backend(read_file(FIREWALLD_CONF) or "")
            return ("firewalld is running (FirewallBackend={}): every firewall-cmd --reload removes "
                    "other tools' iptables chains, so sipguard's layer would silently disappear. Nothing "
                    "was changed. Filter SIP with firewalld itself, or stop and disable firewalld and "
                    "re-run; see docs/firewall.md 'Beside other firewalls'.".format(backend)), warnings
    nft = which("nft")
    if nft:
        rc, out, _err = run([nft, "-j", "list", "ruleset"])
        chains = native_drop_chains(out) if rc == 0 else []
        if chains:
            warnings.append("native nftables input chains with policy drop ({}) also filter this host: "
                            "they still drop what sipguard lets pass, accept_sip included"
                            .format(", ".join(chains)))
    return None, warnings
