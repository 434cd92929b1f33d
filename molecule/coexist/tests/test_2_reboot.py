"""After a reboot the host's own rules (netfilter-persistent) and sipguard's layer are both
back and SIP is judged as before, although the saved ruleset references sipguard's sets:
the sets must exist before netfilter-persistent loads it (issue 9, finding 1)."""

import subprocess

import pytest
from coexist_helpers import (
    BANNED,
    HOST_DROPPED,
    JAIL,
    OPEN,
    OPEN6,
    UNBANNED,
    lan_register,
    profile_row,
    saved_rules,
    split_rules,
)
from sipcheck import wait_for

from testkit.systemd import booted

ANSWER = profile_row()["audit"]["lan"]["REGISTER"]
TOOLS = ("iptables-save", "ip6tables-save")
SETS = {"sipguard-allow4", "sipguard-allow6", "sipguard-block4", "sipguard-block6"}


def _ipsets(target) -> set[str]:
    return set(target.check_output("ipset list -n").split())


@pytest.fixture(scope="module")
def reboot(topo):
    """Save (as autosave or an admin would) with the layer loaded, then restart the container."""
    target = topo.host("f2b")
    target.check_output("netfilter-persistent save")
    saved = {v: target.check_output(f"cat /etc/iptables/rules.{v}") for v in ("v4", "v6")}
    before = {tool: split_rules(saved_rules(target, tool)) for tool in TOOLS}
    subprocess.run(["podman", "restart", "-t", "5", f"mol-{topo.name}-f2b"], check=True, capture_output=True)

    assert booted(target, timeout=90), "the target did not boot again"

    def listening():
        return target.run("ss -Hlun 'sport = :5060'").stdout.strip()

    assert wait_for(listening, timeout=20), "the responder does not listen again"
    # podman gives the restarted container new MAC addresses, a real reboot would not: the
    # phone must not keep sending to the old ones.
    phone = topo.host("phone")
    phone.check_output(f"ip neigh flush to {topo.target_lan}; ip -6 neigh flush to {topo.lan6}:10")
    assert wait_for(lambda: target.run(f"fail2ban-client status {JAIL}").rc == 0, timeout=30)
    return {"saved": saved, "before": before, "target": target}


def test_saved_ruleset_references_sipguard_sets(reboot):
    # The precondition of the boot-order bug: the host's save holds sipguard's set matches.
    assert "--match-set sipguard-block4" in reboot["saved"]["v4"]
    assert "--match-set sipguard-block6" in reboot["saved"]["v6"]
    assert ":INPUT DROP" in reboot["saved"]["v4"]


def test_boot_units_succeeded(reboot):
    target = reboot["target"]
    for unit in ("netfilter-persistent", "sipguard-firewall-sets", "sipguard-firewall", "fail2ban"):
        state = target.run(f"systemctl is-active {unit}.service").stdout.strip()
        assert state == "active", f"{unit}.service is {state}: " + target.run(
            f"journalctl -b -u {unit}.service --no-pager | tail -n 15").stdout


@pytest.mark.parametrize("tool", TOOLS)
def test_host_rules_are_back(reboot, tool):
    host_before, _ = reboot["before"][tool]
    host_after, _ = split_rules(saved_rules(reboot["target"], tool))
    assert host_after == host_before


@pytest.mark.parametrize("tool", TOOLS)
def test_sipguard_layer_is_back(reboot, tool):
    _, ours_before = reboot["before"][tool]
    _, ours_after = split_rules(saved_rules(reboot["target"], tool))
    assert ours_before, "sipguard's layer was not loaded before the reboot"
    assert any(line.startswith("-A INPUT ") for line in ours_after), "no INPUT jump to sipguard's layer"
    assert ours_after == ours_before
    assert _ipsets(reboot["target"]) >= SETS


def test_sip_is_judged_as_before(topo, reboot):
    phone = topo.host("phone")
    assert lan_register(phone, topo.target_lan, OPEN)["status"] == ANSWER
    assert lan_register(phone, topo.target_lan, UNBANNED)["status"] == ANSWER
    assert lan_register(phone, f"{topo.lan6}:10", OPEN6)["status"] == ANSWER
    assert not lan_register(phone, topo.target_lan, BANNED)["answered"], "fail2ban's ban is lost"
    assert not lan_register(phone, topo.target_lan, HOST_DROPPED)["answered"], "the host's policy is lost"
