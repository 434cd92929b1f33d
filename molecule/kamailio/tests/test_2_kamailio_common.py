"""The shared checks, in their Kamailio form (molecule/shared/common_checks.py's assume one target named
mol-SCENARIO-target running the responder): the audit finds each profile's exposure, and rollback.yml
leaves the rules, the ipsets and /etc/kamailio as they were before sipguard. Last: they roll back."""

import json
import re
import subprocess

import pytest
from common_checks import BEFORE, _normalise, _ruleset, _sipguard_rules
from kamailio_targets import PHONE, TARGETS, lan, playbook, wan
from sipcheck import add_address, sip_probe, wait_for

from testkit.systemd import booted

PROFILES = list(TARGETS)


@pytest.mark.parametrize("profile", PROFILES)
def test_audit_matches_the_profile(topo, profile, tmp_path):
    """playbooks/audit.yml, from the scanner and the phone, finds the exposure the profile table
    promises (sipguard_profile_backends.kamailio has no differences)."""
    audit_vars = {
        "lan_source": add_address(topo.host("phone"), f"{topo.lan}.103", 24),
        "outside_host": f"mol-{topo.name}-scanner", "lan_host": f"mol-{topo.name}-phone",
        "outside_address": wan(topo, profile), "lan_address": lan(topo, profile), "report_dir": str(tmp_path),
    }
    extra = [arg for name, value in audit_vars.items() for arg in ("-e", f"sipguard_audit_{name}={value}")]
    run = playbook(topo, "playbooks/audit.yml", *extra, hosts=(profile,))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    (row,) = json.loads((tmp_path / "audit.json").read_text())
    assert row["host"] == f"mol-{topo.name}-{profile}" and row["passed"] and not row["problems"], row
    observed = {(vantage, method): set(row["observed"][vantage][method].values())
                for vantage in ("outside", "lan") for method in row["expected"][vantage]}
    assert observed == {(vantage, method): {status} for vantage in ("outside", "lan")
                        for method, status in row["expected"][vantage].items()}, row


def test_kamailio_and_firewall_survive_reboot(topo):
    """After a reboot Kamailio starts with sipguard.cfg (the in-memory registrations are gone: the phone
    registers again) and the firewall layer is back."""
    target, phone = topo.host("mixed"), topo.host("phone")
    rules = _sipguard_rules(target)
    name = f"mol-{topo.name}-mixed"
    subprocess.run(["podman", "restart", "-t", "5", name], check=True, capture_output=True)
    assert booted(target, timeout=60), "target did not boot again"
    assert _sipguard_rules(target) == rules
    assert wait_for(lambda: target.service("kamailio").is_running, timeout=20)
    # The restarted container has a new MAC address; a real host keeps its own.
    phone.run(f"ip neigh flush to {lan(topo, 'mixed')}")
    stranger = add_address(phone, f"{topo.lan}.108", 24)
    assert not sip_probe(phone, lan(topo, "mixed"), method="OPTIONS", source=stranger)["answered"]
    assert sip_probe(phone, lan(topo, "mixed"), method="REGISTER", **PHONE)["statuses"] == [401, 200]


def test_rollback_restores_the_host(topo):
    """playbooks/rollback.yml removes the firewall layer and sipguard's files, puts /etc/kamailio back
    as it was (names, modes, owners, bytes), and Kamailio runs on without sipguard's route."""
    run = playbook(topo, "playbooks/rollback.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for profile in PROFILES:
        target = topo.host(profile)
        for tool in ("iptables-save", "ip6tables-save"):
            before = _normalise(target.check_output(f"cat {BEFORE}/{tool}.txt"))
            assert _ruleset(target, tool) == before, (profile, tool)
        assert target.check_output("ipset list -n") == target.check_output(f"cat {BEFORE}/ipsets.txt").strip()
        files = target.check_output("cd /etc/kamailio && find . -printf '%p %m %u:%g\\n' | sort")
        assert files == target.check_output(f"cat {BEFORE}/kamailio-files.txt"), profile
        sums = target.run(f"cd /etc/kamailio && sha256sum --quiet -c {BEFORE}/kamailio.sha256")
        assert sums.rc == 0, (profile, sums.stdout)
        assert not target.file("/var/lib/sipguard/kamailio").exists
        assert wait_for(lambda t=target: t.service("kamailio").is_running, timeout=20), profile
        # Debian's own route again: it answers a LAN stranger's OPTIONS itself.
        address = lan(topo, profile)
        assert wait_for(lambda a=address: sip_probe(topo.host("phone"), a, method="OPTIONS")["answered"],
                        timeout=20), profile
    again = playbook(topo, "playbooks/rollback.yml")
    changes = re.findall(r"changed=(\d+)", again.stdout.split("PLAY RECAP")[-1])
    assert again.returncode == 0 and changes and set(changes) == {"0"}, again.stdout[-3000:]
