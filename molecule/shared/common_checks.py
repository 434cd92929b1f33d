"""Checks every profile scenario runs after its own (imported by each scenario's
tests; the `topo` fixture comes from the scenario's conftest.py).

They restart things and finally roll sipguard back, so scenarios import them
into files that run after the profile-specific tests (test_2_*, test_3_*).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from sipcheck import add_address, wait_for

from testkit.ansible import ansible
from testkit.systemd import booted

__all__ = [  # what each profile scenario's test_2_common.py collects, in this order
    "test_audit_matches_the_profile",
    "test_connection_survives_converge",
    "test_firewall_and_responder_survive_reboot",
    "test_firewall_survives_unit_restart",
    "test_rollback_restores_the_host",
]

BEFORE = "/var/lib/sipguard-test/before"  # written by molecule/shared/prepare.yml


_EMPTY_TABLE_LINES = re.compile(r"^(#.*|\*filter|COMMIT|:(INPUT|FORWARD|OUTPUT) ACCEPT.*)$")


def _normalise(save_output: str) -> str:
    """An iptables-save of the filter table without counters, comments and the
    lines an empty table consists of (a table the kernel created on first use
    equals no table): what a rollback must restore."""
    lines = (line for line in save_output.splitlines() if not _EMPTY_TABLE_LINES.match(line))
    return "\n".join(re.sub(r"\[\d+:\d+\]", "", line) for line in lines)


def _ruleset(target, tool: str) -> str:
    return _normalise(target.check_output(f"{tool} -t filter"))


def _sipguard_rules(target) -> str:
    rules = _ruleset(target, "iptables-save").splitlines()
    return "\n".join(line for line in rules if "sipguard" in line.lower())


def test_connection_survives_converge(topo):
    # The Ansible/podman connection still works and management access is intact.
    target = topo.host("target")
    assert target.run("true").rc == 0
    assert _sipguard_rules(target), "the sipguard firewall layer is not loaded"


def run_playbook(topo, playbook: str, *extra: str, target: str = "") -> subprocess.CompletedProcess:
    """Run one of the project's playbooks against one of this scenario's hosts (its target by default)."""
    target = target or f"mol-{topo.name}-target"
    return ansible("-i", os.environ["MOLECULE_INVENTORY_FILE"], playbook,
                   "--limit", f"{target},localhost", *extra, timeout=600)


def run_audit(topo, report_dir, *, target: str = "", wan: str = "", lan: str = "") -> dict:
    """playbooks/audit.yml against one host from the scenario's scanner and from a stranger beside the
    phone; it must pass. The host's one report row."""
    target = target or f"mol-{topo.name}-target"
    # The phone's own address holds a registration by now: probe as a stranger beside it.
    stranger = add_address(topo.host("phone"), f"{topo.lan}.103", 24)
    run = run_playbook(topo, "playbooks/audit.yml",
                       "-e", f"sipguard_audit_lan_source={stranger}",
                       "-e", f"sipguard_audit_outside_host=mol-{topo.name}-scanner",
                       "-e", f"sipguard_audit_lan_host=mol-{topo.name}-phone",
                       "-e", f"sipguard_audit_outside_address={wan or topo.target_wan}",
                       "-e", f"sipguard_audit_lan_address={lan or topo.target_lan}",
                       "-e", f"sipguard_audit_report_dir={report_dir}", target=target)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    (row,) = json.loads((report_dir / "audit.json").read_text())
    assert row["host"] == target and row["passed"] and not row["problems"], row
    return row


def test_audit_matches_the_profile(topo, tmp_path):
    """playbooks/audit.yml, from the scenario's scanner and phone, finds the exposure
    the profile table promises (and would exit non-zero otherwise)."""
    row = run_audit(topo, tmp_path)
    for vantage in ("outside", "lan"):
        for method, status in row["expected"][vantage].items():
            assert set(row["observed"][vantage][method].values()) == {status}, (vantage, method, row)


def test_firewall_survives_unit_restart(topo):
    target = topo.host("target")
    before = _sipguard_rules(target)
    assert target.run("systemctl restart sipguard-firewall.service").rc == 0
    assert _sipguard_rules(target) == before


def test_firewall_and_responder_survive_reboot(topo):
    target = topo.host("target")
    before = _sipguard_rules(target)
    subprocess.run(["podman", "restart", "-t", "5", f"mol-{topo.name}-target"],
                   check=True, capture_output=True)
    assert booted(target, timeout=60), "target did not boot again"
    assert _sipguard_rules(target) == before
    assert wait_for(lambda: target.service("sipresponder").is_running, timeout=20)


def test_rollback_restores_the_host(topo):
    """playbooks/rollback.yml leaves rules and softswitch parameters as before sipguard."""
    target = topo.host("target")
    run = run_playbook(topo, "playbooks/rollback.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for tool in ("iptables-save", "ip6tables-save"):
        assert _ruleset(target, tool) == _normalise(target.check_output(f"cat {BEFORE}/{tool}.txt")), tool
    assert target.check_output("ipset list -n") == target.check_output(f"cat {BEFORE}/ipsets.txt").strip()
    params_now = target.run("grep -h '^SS_' /etc/sipresponder/softswitch.conf 2>/dev/null").stdout
    params_before = target.run(f"cat {BEFORE}/softswitch.txt 2>/dev/null").stdout
    assert sorted(params_now.split()) == sorted(params_before.split())
