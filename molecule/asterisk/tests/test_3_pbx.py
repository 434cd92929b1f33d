"""Each PBX in turn (pytest groups the module's tests by the fixture's parameter): the audit, a reboot, the
rollback and a second one. Asterisk's equivalents of the shared checks that wait for the responder or compare
softswitch.conf (molecule/shared/common_checks.py).
"""

from __future__ import annotations

import re
import subprocess

from common_checks import BEFORE, _normalise, _ruleset, _sipguard_rules, run_audit, run_playbook
from sipcheck import sip_probe, wait_for

from testkit.systemd import booted

PHONE = {"user": "1001", "password": "lab-phone-secret"}


def test_audit_matches_the_backend_table(topo, pbx, tmp_path):
    """playbooks/audit.yml passes on each PBX, and what it saw is the backend table's row."""
    row = run_audit(topo, tmp_path, target=pbx.name, wan=pbx.wan, lan=pbx.lan)
    assert row["expected"] == pbx.expected["audit"], row
    assert row["reply_unauthorized"] == pbx.expected["reply_unauthorized"] == "On", row


def test_firewall_and_asterisk_survive_reboot(topo, pbx):
    before = _sipguard_rules(pbx.host)
    subprocess.run(["podman", "restart", "-t", "5", pbx.name], check=True, capture_output=True)
    assert booted(pbx.host, timeout=60), "the PBX did not boot again"
    assert _sipguard_rules(pbx.host) == before
    # The restarted container has a new MAC address: the phone must not wait out its stale neighbour entry.
    topo.host("phone").run(f"ip neigh flush to {pbx.lan}")

    def registers():
        return sip_probe(topo.host("phone"), pbx.lan, method="REGISTER", **PHONE)["status"] == 200

    assert wait_for(registers, timeout=90), "the phone does not register after the reboot"


def _etc_asterisk(host) -> str:
    return host.check_output("cd /etc/asterisk && find . -type f -print0 | sort -z | xargs -0 sha256sum")


def test_rollback_restores_etc_asterisk_byte_for_byte(topo, pbx):
    run = run_playbook(topo, "playbooks/rollback.yml", target=pbx.name)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert _etc_asterisk(pbx.host) == pbx.host.check_output(f"cat {BEFORE}/asterisk.sha256")
    stat = pbx.host.check_output("cd /etc/asterisk && find . -printf '%p %u:%g %m\\n' | sort")
    assert stat == pbx.host.check_output(f"cat {BEFORE}/asterisk.stat")
    for tool in ("iptables-save", "ip6tables-save"):
        assert _ruleset(pbx.host, tool) == _normalise(pbx.host.check_output(f"cat {BEFORE}/{tool}.txt")), tool
    assert not pbx.host.file("/var/lib/sipguard/asterisk").exists
    # Asterisk runs on with the operator's configuration alone: sipguard's endpoint is gone.
    endpoints = pbx.host.check_output("asterisk -rx 'pjsip show endpoints' 2>/dev/null")
    assert " 1001 " not in endpoints, endpoints


def test_a_second_rollback_changes_nothing(topo, pbx):
    run = run_playbook(topo, "playbooks/rollback.yml", target=pbx.name)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout)  # Molecule's environment may force colour
    recap = re.search(rf"^{pbx.name}\s+: ok=\d+\s+changed=(\d+)\s", plain, flags=re.MULTILINE)
    assert recap and recap.group(1) == "0", run.stdout[-3000:]
    assert _etc_asterisk(pbx.host) == pbx.host.check_output(f"cat {BEFORE}/asterisk.sha256")
