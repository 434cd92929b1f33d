"""mixed: the LAN and the trunk (given by DNS name, resolved through the
scenario's own DNS server) work; everything else gets nothing."""

import pytest
from sipcheck import add_address, flood_from_the_phone, sip_probe, svmap

PHONE = {"user": "1001", "password": "lab-phone-secret"}


def test_lan_phone_registers_with_digest(topo):
    reply = sip_probe(topo.host("phone"), topo.target_lan, method="REGISTER", **PHONE)
    assert reply["statuses"][:1] in ([401], [407]) and reply["status"] == 200, reply


def test_trunk_resolved_by_dns_gets_its_invite_handled(topo):
    reply = sip_probe(topo.host("trunk"), topo.target_wan, method="INVITE")
    assert reply["answered"] and reply["status"] >= 200, reply


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_trunk_call_with_scanner_names_in_its_headers_is_handled(topo, transport):
    # "iWar" is in "Tiwari" and "SMAP" in the Call-ID: only the User-Agent header may count.
    reply = sip_probe(topo.host("trunk"), topo.target_wan, method="INVITE", transport=transport,
                      display='"Rahul Tiwari"', call_id="a8SMAPq2x9")
    assert reply["answered"] and reply["status"] >= 200, reply


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("method", ["OPTIONS", "REGISTER", "INVITE"])
def test_outside_gets_no_answer(topo, method, transport):
    reply = sip_probe(topo.host("scanner"), topo.target_wan, method=method, transport=transport)
    assert not reply["answered"], reply


def test_unknown_lan_source_gets_no_answer(topo):
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.102", 24)
    assert not sip_probe(phone, topo.target_lan, user="4711", source=source)["answered"]


def test_svmap_from_outside_finds_nothing(topo):
    assert "found nothing" in svmap(topo.host("scanner"), topo.target_wan)


def test_a_flood_with_the_lan_phones_address_bans_nobody(topo):
    # What a spoofer would send with a trusted address: limited at most, never a ban of the phone.
    banned, registers = flood_from_the_phone(topo, PHONE)
    assert not banned
    assert registers, "the phone must register again right after the flood"
