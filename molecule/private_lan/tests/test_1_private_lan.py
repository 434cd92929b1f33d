"""private_lan: standard SIP for the LAN (401/403 to unknown LAN sources),
nothing at all for the internet."""

import pytest
from sipcheck import add_address, rule_packets, sip_probe, svmap

PHONE = {"user": "1001", "password": "lab-phone-secret"}


def test_lan_phone_registers_with_digest(topo):
    reply = sip_probe(topo.host("phone"), topo.target_lan, method="REGISTER", **PHONE)
    assert reply["statuses"][:1] in ([401], [407]) and reply["status"] == 200, reply


@pytest.mark.parametrize(("method", "expected"), [("OPTIONS", 403), ("REGISTER", 401), ("INVITE", 403)])
def test_unknown_lan_source_gets_standard_replies(topo, method, expected):
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.102", 24)
    reply = sip_probe(phone, topo.target_lan, method=method, user="4711", source=source)
    assert reply["status"] == expected, reply


def test_svmap_finds_it_from_the_lan(topo):
    assert topo.target_lan in svmap(topo.host("phone"), topo.target_lan)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_outside_is_dropped_by_the_firewall(topo, transport):
    target = topo.host("target")
    before = rule_packets(target, r"sipguard.*-j (DROP|REJECT)")
    reply = sip_probe(topo.host("scanner"), topo.target_wan, transport=transport)
    assert not reply["answered"] and not reply.get("tcp_refused"), reply
    assert rule_packets(target, r"sipguard.*-j (DROP|REJECT)") > before


def test_svmap_from_outside_finds_nothing(topo):
    assert "found nothing" in svmap(topo.host("scanner"), topo.target_wan)
