"""public: silent to strangers, scanners dropped in the kernel, floods limited (never turned into
bans), password guessers blocked, while configured phones and the trunk still work."""

import pytest
from sipcheck import (
    add_address,
    flood,
    flood_from_the_phone,
    in_ipset,
    rule_packets,
    sip_probe,
    svmap,
    svwar,
    trace_lines,
    wait_for,
)

SCANNER_UA = "friendly-scanner"
PHONE = {"user": "1001", "password": "lab-phone-secret"}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("method", ["OPTIONS", "REGISTER", "INVITE"])
def test_stranger_gets_no_answer(topo, method, transport):
    reply = sip_probe(topo.host("scanner"), topo.target_wan, method=method, transport=transport)
    assert not reply["answered"], reply


def test_stranger_gets_no_answer_over_ipv6(topo):
    assert not sip_probe(topo.host("scanner"), topo.target_wan6)["answered"]


def test_svmap_finds_nothing(topo):
    assert "found nothing" in svmap(topo.host("scanner"), topo.target_wan)


def test_svwar_finds_no_extension(topo):
    report = svwar(topo.host("scanner"), topo.target_wan, "1000-1005")
    assert "1001" not in report, report


def test_scanner_user_agent_dropped_in_kernel(topo):
    target, scanner = topo.host("target"), topo.host("scanner")
    # The User-Agent rules are printed as hex (they match the header, not any substring).
    before = rule_packets(target, r"--hex-string .*-j DROP")
    # From the internet, with the trace on: the kernel must eat the packet before the
    # responder sees it (the LAN and trunks are trusted and pass to the responder, which
    # drops scanners itself).
    target.check_output("PYTHONPATH=/opt/sipresponder python3 -m sipresponder trace on")
    reply = sip_probe(scanner, topo.target_wan, user_agent=SCANNER_UA, method="REGISTER")
    assert not reply["answered"], reply
    assert rule_packets(target, r"--hex-string .*-j DROP") > before
    # The same request with an ordinary User-Agent does reach the trace (as a silent drop
    # of a stranger), so the trace is on and read: the scanner's absence means something.
    sip_probe(scanner, topo.target_wan, method="OPTIONS", user_agent="sipguard-trace-marker")

    def marker_traced():
        return [e for e in trace_lines(target) if e.get("ua") == "sipguard-trace-marker"]

    assert wait_for(marker_traced, timeout=5)
    assert not [e for e in trace_lines(target) if SCANNER_UA in str(e.get("ua", ""))]


def test_phone_registers_with_digest(topo):
    reply = sip_probe(topo.host("phone"), topo.target_lan, method="REGISTER", **PHONE)
    assert reply["statuses"][:1] in ([401], [407]) and reply["status"] == 200, reply


def test_trunk_invite_is_handled(topo):
    reply = sip_probe(topo.host("trunk"), topo.target_wan, method="INVITE")
    assert reply["answered"] and reply["status"] >= 200, reply


def test_trunk_call_with_scanner_names_in_its_headers_is_handled(topo):
    # "iWar" is in "Tiwari" and "SMAP" in the Call-ID: only the User-Agent header may count.
    reply = sip_probe(topo.host("trunk"), topo.target_wan, method="INVITE", display='"Rahul Tiwari"',
                      call_id="a8SMAPq2x9")
    assert reply["answered"] and reply["status"] >= 200, reply


def test_a_flood_is_rate_limited_but_bans_nobody(topo):
    # The source of a UDP packet can be forged: a flood must never turn into a ban of that address.
    scanner, target = topo.host("scanner"), topo.host("target")
    source = add_address(scanner, f"{topo.wan}.101", 24)
    dropped_before = rule_packets(target, r"hashlimit.*-j DROP")
    flood(scanner, topo.target_wan, count=3000, source=source, seconds=5)
    assert rule_packets(target, r"hashlimit.*-j DROP") - dropped_before > 1000, "the rate limit must bite"
    assert not in_ipset(target, "sipguard-block4", source)


def test_password_guesser_is_suspended_and_blocked_in_kernel(topo):
    phone, target = topo.host("phone"), topo.host("target")
    source = add_address(phone, f"{topo.lan}.101", 24)
    for _ in range(8):  # SS_AUTHENTICATION_MAX_RETRY defaults to 6
        sip_probe(phone, topo.target_lan, method="REGISTER", user="1001", password="wrong", source=source)
    assert wait_for(lambda: in_ipset(target, "sipguard-block4", source), timeout=5)
    # Now even the right password gets nothing back: the responder refuses the suspended source
    # (the kernel's block set spares the trusted LAN, so a forged failure could not ban it there).
    assert not sip_probe(phone, topo.target_lan, method="REGISTER", source=source, **PHONE)["answered"]


def test_a_flood_with_the_lan_phones_address_bans_nobody(topo):
    # What a spoofer would send with a trusted address: limited at most, never a ban of the phone.
    banned, registers = flood_from_the_phone(topo, PHONE)
    assert not banned
    assert registers, "the phone must register again right after the flood"
