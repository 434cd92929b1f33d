"""Issue 11: no source holds the server (the core's and the config's part), tracked_sources within its cap."""

import pytest
from resp_unit_helpers import SETTINGS, answer_challenge, make_config, sip

from sipresponder import config
from sipresponder.core import Core
from sipresponder.server import _source_group

LAN = "198.18.10.5"
GATEWAY = "198.18.20.50"
STRANGER = "203.0.113.7"
NOW = 1_000_000.0


def core(mode: str = "On", settings: str = SETTINGS) -> Core:
    return Core(make_config(f"SS_REPLY_UNAUTHORIZED={mode}", settings=settings), b"k" * 32, NOW)


def kinds(actions) -> list[str]:
    return [a[1][:11].decode() if a[0] == "send" else a[0] for a in actions]


def test_in_on_mode_a_strangers_tcp_connection_is_closed_after_its_401_or_403():
    c = core("On")
    assert kinds(c.handle(sip("OPTIONS"), STRANGER, 5060, "tcp", NOW)) == ["SIP/2.0 403", "close"]
    assert kinds(c.handle(sip("REGISTER"), STRANGER, 5060, "tcp", NOW)) == ["SIP/2.0 401", "close"]
    assert kinds(c.handle(sip("OPTIONS"), STRANGER, 5060, "udp", NOW)) == ["SIP/2.0 403"]


def test_a_phone_gateway_or_account_network_keeps_its_connection():
    c = core("On")
    assert kinds(c.handle(sip("REGISTER"), LAN, 5060, "tcp", NOW)) == ["SIP/2.0 401"]
    assert kinds(c.handle(sip("OPTIONS"), GATEWAY, 5060, "tcp", NOW)) == ["SIP/2.0 200"]


def test_tracked_sources_never_reports_more_than_its_cap():
    settings = SETTINGS.replace("rate_per_source = 0", "rate_per_source = 50\nmax_tracked_sources = 16")
    c = core("On", settings)
    # 16 sources fill the rate table; 10 others each fail once against a nonce sent to them.
    for i in range(16):
        c.handle(sip("OPTIONS", call_id=f"o{i}"), f"203.0.113.{i + 1}", 5060, "udp", NOW)
    for i in range(10):
        source = f"198.51.100.{i + 1}"
        first = c.handle(sip("REGISTER", call_id=f"r{i}"), source, 5060, "udp", NOW)
        auth = answer_challenge(first[0][1], "1001", "wrong", "REGISTER")
        c.handle(sip("REGISTER", cseq=2, headers=auth, call_id=f"r{i}"), source, 5060, "udp", NOW)
    assert len(c.suspensions.failures) == 10  # the failures really are tracked
    c.tick(NOW)
    assert c.stats.gauges["tracked_sources"] == 16


def test_the_tcp_cap_counts_an_ipv6_source_per_64():
    assert _source_group("2001:db8:1:2::1") == _source_group("2001:db8:1:2:ffff::9")
    assert _source_group("2001:db8:1:2::1") != _source_group("2001:db8:1:3::1")
    assert _source_group("fe80::1%eth0") == _source_group("fe80::2")
    assert _source_group("198.51.100.7") == "198.51.100.7"


def test_the_tcp_limits_have_defaults_and_ranges():
    settings = make_config().settings
    assert (settings.limits_tcp_max_per_source, settings.limits_tcp_max_per_gateway) == (16, 128)
    assert settings.limits_tcp_first_message_seconds == 10
    for key in ("tcp_max_per_source", "tcp_max_per_gateway", "tcp_first_message_seconds"):
        with pytest.raises(config.ConfigError):
            config.parse_settings(f"[limits]\n{key} = 0\n")
