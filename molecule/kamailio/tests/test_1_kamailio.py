"""Kamailio with sipguard.cfg, profiles public and mixed: strangers get nothing, the LAN's REGISTER is
challenged, a phone that registered with digest is recognised by its address, the trunk is served,
scanners and password guessers are dropped; a kamailio.cfg without the two lines is refused."""

import pytest
from kamailio_targets import PHONE, TARGETS, lan, playbook, wan, wan6
from sipcheck import add_address, sip_probe, svmap, svwar, wait_for

PROFILES = list(TARGETS)
SCANNER_UA = "friendly-scanner"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("method", ["OPTIONS", "REGISTER", "INVITE"])
def test_stranger_outside_gets_no_answer(topo, profile, method, transport):
    reply = sip_probe(topo.host("scanner"), wan(topo, profile), method=method, transport=transport)
    assert not reply["answered"], reply


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("method", ["OPTIONS", "REGISTER"])
def test_stranger_outside_gets_no_answer_over_ipv6(topo, profile, method):
    reply = sip_probe(topo.host("scanner"), wan6(topo, profile), method=method)
    assert not reply["answered"], reply


@pytest.mark.parametrize("profile", PROFILES)
def test_svmap_from_outside_finds_nothing(topo, profile):
    assert "found nothing" in svmap(topo.host("scanner"), wan(topo, profile))


def test_svwar_from_outside_finds_no_extension(topo):
    # public only: there SIP is open to the world and Kamailio itself must keep quiet.
    report = svwar(topo.host("scanner"), wan(topo, "public"), "1000-1005")
    assert "1001" not in report, report


@pytest.mark.parametrize("profile", PROFILES)
def test_phone_registers_with_digest_and_is_then_recognised(topo, profile):
    phone = topo.host("phone")
    reply = sip_probe(phone, lan(topo, profile), method="REGISTER", **PHONE)
    assert reply["statuses"] == [401, 200], reply
    # The same address is now trusted: Kamailio's own route answers its OPTIONS.
    reply = sip_probe(phone, lan(topo, profile), method="OPTIONS")
    assert reply["answered"] and reply["status"] == 200, reply


@pytest.mark.parametrize("profile", PROFILES)
def test_unknown_lan_source_gets_the_profile_rows_answers(topo, profile):
    # public and mixed: a LAN stranger's REGISTER is challenged (401), anything else gets nothing.
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.102", 24)
    assert sip_probe(phone, lan(topo, profile), method="REGISTER", source=source)["status"] == 401
    for method in ("OPTIONS", "INVITE"):
        reply = sip_probe(phone, lan(topo, profile), method=method, user="4711", source=source)
        assert not reply["answered"], (method, reply)


@pytest.mark.parametrize("profile", PROFILES)
def test_lan_register_for_a_missing_account_looks_like_a_wrong_password(topo, profile):
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.105", 24)
    target = lan(topo, profile)
    missing = sip_probe(phone, target, method="REGISTER", user="1999", password="x", source=source)
    wrong = sip_probe(phone, target, method="REGISTER", user="1001", password="x", source=source)
    assert missing["statuses"] == wrong["statuses"] == [401, 401], (missing, wrong)


@pytest.mark.parametrize("profile", PROFILES)
def test_scanner_user_agent_dropped(topo, profile):
    # From the LAN, where the firewall layer lets SIP through to Kamailio: its route drops it.
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.106", 24)
    reply = sip_probe(phone, lan(topo, profile), method="REGISTER", user_agent=SCANNER_UA, source=source)
    assert not reply["answered"], reply
    # The same request with an ordinary User-Agent is challenged: the drop was the scanner's.
    assert sip_probe(phone, lan(topo, profile), method="REGISTER", source=source)["status"] == 401


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_trunk_invite_is_handled(topo, profile, transport):
    # "iWar" is in "Tiwari" and "SMAP" in the Call-ID: only the User-Agent header may count.
    reply = sip_probe(topo.host("trunk"), wan(topo, profile), method="INVITE", transport=transport,
                      display='"Rahul Tiwari"', call_id="a8SMAPq2x9")
    assert reply["answered"] and reply["status"] >= 200, reply


def test_password_guesser_is_banned(topo):
    # SS_AUTHENTICATION_MAX_RETRY (6) wrong passwords, each answering a nonce sent to this address.
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.104", 24)
    for _ in range(6):
        sip_probe(phone, lan(topo, "public"), method="REGISTER", user="1001", password="wrong", source=source)
    # Banned for SS_AUTHENTICATION_FAILED_SUSPEND: even the right password gets nothing now.
    assert not sip_probe(phone, lan(topo, "public"), method="REGISTER", source=source, **PHONE)["answered"]
    assert "104" in topo.host("public").check_output("kamcmd htable.dump sipguard_ban")


def test_the_phone_stays_registered_across_a_settings_change(topo):
    """A settings-only change (here the reply mode, through site.yml) is applied at run time: Kamailio is
    not restarted, so the phone's registration and its trusted address survive."""
    target, phone = topo.host("public"), topo.host("phone")
    assert sip_probe(phone, lan(topo, "public"), method="REGISTER", **PHONE)["status"] == 200
    pid = target.check_output("systemctl show -p MainPID --value kamailio")
    stranger = add_address(phone, f"{topo.lan}.107", 24)
    try:
        run = playbook(topo, "playbooks/site.yml", "-e", "sipguard_softswitch_reply_unauthorized=On",
                       hosts=("public",))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert target.check_output("systemctl show -p MainPID --value kamailio") == pid, "restarted"
        assert sip_probe(phone, lan(topo, "public"), method="OPTIONS", source=stranger)["status"] == 403
        assert sip_probe(phone, lan(topo, "public"), method="OPTIONS")["status"] == 200
        assert "1001" in target.check_output("kamcmd ul.dump")
    finally:
        run = playbook(topo, "playbooks/site.yml", hosts=("public",))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]

    def silent_again():
        return not sip_probe(phone, lan(topo, "public"), method="OPTIONS", source=stranger)["answered"]

    assert wait_for(silent_again, timeout=5)


def test_kamailio_cfg_without_the_two_lines_is_refused(topo):
    """The preflight reads the operator's kamailio.cfg (here Debian's as shipped, in a copy of the config
    directory) and refuses the host with the two lines to add, changing nothing."""
    target = topo.host("public")
    plain = "/var/lib/sipguard-test/plain"
    target.check_output(f"rm -rf {plain} && cp -a /etc/kamailio {plain} && rm -f {plain}/sipguard*.cfg"
                        f" && cp /var/lib/sipguard-test/kamailio.cfg.debian {plain}/kamailio.cfg")
    state = (f"(cd {plain} && find . -type f -print0 | sort -z | xargs -0 sha256sum);"
             " iptables-save -t filter | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; sha256sum /etc/kamailio/*;"
             " systemctl show -p MainPID --value kamailio")
    before = target.check_output(state)
    run = playbook(topo, "playbooks/site.yml", "-e", f"sipguard_softswitch_path={plain}/sipguard.cfg",
                   hosts=("public",))
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    assert 'import_file "sipguard.cfg"' in out and "route(SIPGUARD);" in out, out[-3000:]
    assert target.check_output(state) == before
    target.check_output(f"rm -rf {plain}")
