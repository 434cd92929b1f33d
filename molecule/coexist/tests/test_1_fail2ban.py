"""A public-profile host with a firewall of its own (INPUT policy DROP, SIP only from
198.19.11.0/25) and a real fail2ban jail on the SIP port: sipguard's layer only removes
traffic, so what fail2ban banned stays banned and what the host drops stays dropped,
through the converge, the idempotence step and a re-run after fail2ban put its jumps on top."""

import pytest
from coexist_helpers import (
    BANNED,
    FED,
    HOST_DROPPED,
    JAIL,
    OPEN,
    OPEN6,
    UNBANNED,
    banned,
    input_jumps,
    jail_drops,
    lan_register,
    policy_drops,
    profile_row,
    recap_changed,
    run_site,
)
from sipcheck import add_address, wait_for

ANSWER = profile_row()["audit"]["lan"]["REGISTER"]  # what the profile promises the LAN: 401


@pytest.fixture(scope="module")
def f2b(topo):
    return topo.host("f2b")


@pytest.fixture(scope="module")
def phone(topo):
    phone = topo.host("phone")
    for address in (UNBANNED, BANNED, FED, HOST_DROPPED):
        add_address(phone, address, 24)
    return phone


def test_open_source_is_answered_as_the_profile_says(topo, phone):
    assert ANSWER == 401
    assert lan_register(phone, topo.target_lan, OPEN)["status"] == ANSWER
    assert lan_register(phone, f"{topo.lan6}:10", OPEN6)["status"] == ANSWER


def test_source_banned_before_site_yml_stays_banned(topo, f2b, phone):
    assert {UNBANNED, BANNED} <= banned(f2b)
    before = jail_drops(f2b, BANNED)
    reply = lan_register(phone, topo.target_lan, BANNED)
    assert not reply["answered"], f"fail2ban banned {BANNED} but it was answered: {reply}"
    assert jail_drops(f2b, BANNED) > before, "fail2ban's rule did not see the packet"


def test_host_policy_drops_what_the_profile_would_open(topo, f2b, phone):
    # public opens SIP to the world; the host accepts SIP only from .0/25 and drops the rest.
    before = policy_drops(f2b)
    reply = lan_register(phone, topo.target_lan, HOST_DROPPED)
    assert not reply["answered"], f"the host's policy drops {HOST_DROPPED}, but it was answered: {reply}"
    assert policy_drops(f2b) > before, "the packet was not dropped by the host's INPUT policy"


@pytest.fixture(scope="module")
def rerun(topo, f2b):
    """fail2ban restarted (its jumps now sit above sipguard's, as after its first ban on a host
    where sipguard came first), then site.yml's firewall part again. The whole site.yml with
    fail2ban active ran twice already: the converge and the idempotence step."""
    f2b.check_output("systemctl restart fail2ban")
    assert wait_for(lambda: f"f2b-{JAIL}" in input_jumps(f2b), timeout=20), input_jumps(f2b)
    jumps = input_jumps(f2b)
    ours = [i for i, j in enumerate(jumps) if j.startswith("sipguard")]
    assert ours and jumps.index(f"f2b-{JAIL}") < ours[0], f"fail2ban's jump is not above sipguard's: {jumps}"
    return run_site(f"mol-{topo.name}-f2b", tags="firewall")


def test_rerun_with_fail2ban_active_changes_nothing(topo, rerun):
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-2000:]
    changed = recap_changed(rerun, f"mol-{topo.name}-f2b")
    tasks = [line for line in rerun.stdout.splitlines() if line.startswith("changed:")]
    assert changed == 0, tasks


def test_banned_source_stays_banned_after_the_rerun(topo, f2b, phone, rerun):
    assert not lan_register(phone, topo.target_lan, BANNED)["answered"]
    assert not lan_register(phone, topo.target_lan, HOST_DROPPED)["answered"]


def test_unbanned_source_is_answered(topo, f2b, phone, rerun):
    f2b.check_output(f"fail2ban-client set {JAIL} unbanip {UNBANNED}")
    assert lan_register(phone, topo.target_lan, UNBANNED)["status"] == ANSWER


def test_jail_bans_from_its_log(topo, f2b, phone, rerun):
    """The jail's own path: failures in its log ban the source, and sipguard does not undo it."""
    assert lan_register(phone, topo.target_lan, FED)["status"] == ANSWER
    # maxretry = 3; the target's own clock, as a daemon writing the log would stamp it.
    f2b.check_output(f"for i in 1 2 3; do echo \"$(date '+%F %T') sip auth failure from {FED}\"; done"
                     " >> /var/log/sip-coexist.log")
    assert wait_for(lambda: FED in banned(f2b), timeout=15), "the jail did not ban from its log"
    assert not lan_register(phone, topo.target_lan, FED)["answered"]
