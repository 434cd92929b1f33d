"""sipguard_sip_dns without a network: input checks, IP literals, NAPTR selection and ordering.

The lookups against a real DNS server are in tests/integration/test_sip_dns_real.py.
"""

from __future__ import annotations

import dns.rdata
import pytest


@pytest.fixture
def dns_module(library_module):
    return library_module("sip_dns")


def naptr(text):
    return dns.rdata.from_text("IN", "NAPTR", text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": ""}, "name must not be empty"),
        ({"name": "trunk.example.test", "nameservers": ["ns1.example.test"]}, "is not an IP address"),
        ({"name": "trunk.example.test", "families": [5]}, "families [5] must list 4, 6 or both"),
        ({"name": "trunk.example.test", "families": []}, "must list 4, 6 or both"),
        ({"name": "trunk.example.test", "port": 0}, "port 0 is outside"),
        ({"name": "trunk.example.test", "timeout": -1}, "timeout -1"),
        ({"name": "trunk.example.test", "lookup": "mx"}, "value of lookup must be one of"),
        (
            {"name": "_xmpp._tcp.example.test", "lookup": "srv", "nameservers": ["127.0.0.1"]},
            "not a SIP service",
        ),
    ],
)
def test_bad_input_is_a_clear_failure(run_module, args, message):
    result = run_module("sip_dns", args)
    assert result["failed"]
    assert message in result["msg"]


@pytest.mark.parametrize(
    ("name", "network", "family"),
    [
        ("198.18.7.7", "198.18.7.7/32", 4),
        ("2001:2::7", "2001:2::7/128", 6),
        ("[2001:2::7]", "2001:2::7/128", 6),
    ],
)
def test_ip_literal_needs_no_dns(run_module, name, network, family):
    # The nameserver is a port where nothing listens: any query would time out and fail the test.
    result = run_module(
        "sip_dns",
        {"name": name, "nameservers": ["127.0.0.1"], "port": 9, "timeout": 0.2, "default_port": 5080},
        check=True,
    )
    assert result["changed"] is False
    assert result["networks"] == [network]
    assert result["targets"] == [
        {
            "host": name.strip("[]"),
            "address": name.strip("[]"),
            "port": 5080,
            "transport": "udp",
            "family": family,
            "priority": None,
            "weight": None,
            "via": "host",
        }
    ]


def test_ip_literal_of_an_excluded_family_fails(run_module):
    result = run_module("sip_dns", {"name": "2001:2::7", "families": [4]})
    assert result["failed"]
    assert "no SIP targets for '2001:2::7'" in result["msg"]


def test_naptr_records_are_filtered_and_ordered(dns_module):
    records = [
        naptr('20 10 "S" "SIP+D2T" "" _sip._tcp.example.test.'),
        naptr('10 20 "S" "SIP+D2U" "" _sip._udp.b.example.test.'),
        naptr('10 10 "s" "SIP+D2U" "" _sip._udp.a.example.test.'),
        naptr('5 10 "S" "SIP+D2S" "" _sip._sctp.example.test.'),  # SCTP: not a transport we offer
        naptr('5 10 "U" "E2U+sip" "!^.*$!sip:x@example.test!" .'),  # ENUM-style rewrite, not SRV
        naptr('30 10 "S" "SIPS+D2T" "" _sips._tcp.example.test.'),
    ]
    assert dns_module.usable_naptrs(records, "any") == [
        ("udp", "_sip._udp.a.example.test."),
        ("udp", "_sip._udp.b.example.test."),
        ("tcp", "_sip._tcp.example.test."),
        ("tls", "_sips._tcp.example.test."),
    ]
    assert dns_module.usable_naptrs(records, "tls") == [("tls", "_sips._tcp.example.test.")]


def test_srv_names_per_transport(dns_module):
    assert dns_module.srv_names("example.test", "any") == [
        ("udp", "_sip._udp.example.test"),
        ("tcp", "_sip._tcp.example.test"),
        ("tls", "_sips._tcp.example.test"),
    ]
    assert dns_module.srv_names("_sips._tcp.example.test", "any") == [("tls", "_sips._tcp.example.test")]


def test_documentation_matches_the_argument_spec(documentation_check):
    documentation_check("sip_dns")
