"""What the coexist tests share: the jail, the addresses, reading rules, running site.yml."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml
from sipcheck import rule_packets, sip_probe

from testkit.ansible import REPO as PROJECT
from testkit.ansible import ansible
from testkit.topology import Topology

JAIL = "sip-coexist"  # molecule/coexist/prepare.yml
PROFILE = "public"  # host_vars of mol-coexist-f2b in molecule.yml
LAN = Topology.of("coexist").lan  # 198.19.11
# Sources on the phone (molecule.yml, prepare.yml): the host accepts SIP from .0/25 only.
OPEN = f"{LAN}.100"  # the phone itself; never banned
UNBANNED = f"{LAN}.101"  # banned by prepare, unbanned by the verifier
BANNED = f"{LAN}.102"  # banned by prepare, stays banned (across the reboot too)
FED = f"{LAN}.103"  # banned by the jail's filter from log lines during verify
HOST_DROPPED = f"{LAN}.200"  # LAN for sipguard's profile, outside the host's /25
OPEN6 = "2001:2:0:10b::100"  # inside the host's 2001:2:0:10b::100/120

_COUNTERS = re.compile(r"\[\d+:\d+\]")


def profile_row(name: str = PROFILE) -> dict:
    """One row of the profile table (roles/sipguard_profile/vars/main.yml)."""
    table = yaml.safe_load((PROJECT / "roles/sipguard_profile/vars/main.yml").read_text())
    return table["sipguard_profiles"][name]


def lan_register(phone, target_address: str, source: str) -> dict:
    """A REGISTER for a user that is no account, from `source` on the LAN: the profile table's
    `lan` vantage. Fresh socket, fresh source port: no conntrack flow carries over."""
    if source == OPEN6:
        # The phone's only IPv6 address: vantage_probe.py writes a given source into Via
        # unbracketed, which an IPv6 address makes malformed ("Bad Via Port"), so let the
        # kernel choose it.
        source = ""
    return sip_probe(phone, target_address, method="REGISTER", user="4711", source=source)


def saved_rules(target, tool: str) -> list[str]:
    """`iptables-save`/`ip6tables-save` of the filter table without comments and counters."""
    out = target.check_output(f"{tool} -t filter")
    return [_COUNTERS.sub("", line).rstrip() for line in out.splitlines() if not line.startswith("#")]


def split_rules(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the host's own rules, sipguard's rules); fail2ban's lines belong to neither: after a
    reboot fail2ban re-adds bans that netfilter-persistent restored already."""
    ours = [line for line in lines if "sipguard" in line]
    host = [line for line in lines if "sipguard" not in line and "f2b-" not in line]
    return host, ours


def input_jumps(target) -> list[str]:
    """The targets of INPUT's jumps, in order."""
    rules = target.check_output("iptables -S INPUT").splitlines()
    return [m.group(1) for m in (re.search(r" -j (\S+)", rule) for rule in rules) if m]


def policy_drops(target, tool: str = "iptables") -> int:
    """Packets INPUT's policy dropped so far."""
    head = target.check_output(f"{tool} -L INPUT -n -v -x").splitlines()[0]
    m = re.search(r"policy DROP (\d+) packets", head)
    assert m, f"INPUT's policy is not DROP: {head}"
    return int(m.group(1))


def jail_drops(target, address: str) -> int:
    return rule_packets(target, rf"^-A f2b-{JAIL} -s {re.escape(address)}/32 -j DROP")


def banned(target) -> set[str]:
    out = target.check_output(f"fail2ban-client get {JAIL} banned")
    return set(re.findall(r"\d+\.\d+\.\d+\.\d+", out))


def run_site(host: str, *extra_inventories: Path, json_output: bool = False,
             tags: str = "") -> subprocess.CompletedProcess:
    """playbooks/site.yml with the Molecule inventory (plus `extra_inventories`), limited to `host`
    (and to `tags`)."""
    inventories = [os.environ["MOLECULE_INVENTORY_FILE"], *map(str, extra_inventories)]
    return ansible(*(arg for inv in inventories for arg in ("-i", inv)),
                   "playbooks/site.yml", "--limit", f"{host},localhost", *(["--tags", tags] if tags else []),
                   callback="ansible.posix.json" if json_output else None, timeout=600)


def recap_changed(run: subprocess.CompletedProcess, host: str) -> int:
    m = re.search(rf"^{re.escape(host)}\s*:.*\bchanged=(\d+)", run.stdout, re.MULTILINE)
    assert m, run.stdout[-3000:]
    return int(m.group(1))


def failed_results(run: subprocess.CompletedProcess) -> list[dict]:
    """The failed task results of an ansible.posix.json run, each with its task's name."""
    report = json.loads(run.stdout[run.stdout.index("{"):])
    return [dict(result, task=task["task"]["name"])
            for play in report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]
