"""legacy: the public profile on a VOS3000-style Debian 11 host (python2.7, iptables-legacy),
converged by ansible-core 2.16. Silent to strangers, scanners dropped in the kernel, the LAN still
challenged, and the audit agrees."""

import pytest
from common_checks import test_audit_matches_the_profile  # noqa: F401 (collected by pytest)
from sipcheck import rule_packets, sip_probe

SCANNER_UA = "friendly-scanner"
CONF = "/home/kunshi/mbx3000/etc/softswitch.conf"


def test_iptables_is_in_legacy_mode_and_holds_the_layer(topo):
    target = topo.host("target")
    assert "legacy" in target.check_output("iptables --version")
    assert ":sipguard-INPUT" in target.check_output("iptables-legacy-save -t filter")
    assert ":sipguard-INPUT" in target.check_output("ip6tables-legacy-save -t filter")


def test_softswitch_conf_silenced_and_mbx3000d_restarted_once(topo):
    target = topo.host("target")
    assert "SS_REPLY_UNAUTHORIZED=Off" in target.file(CONF).content_string
    starts = target.file("/var/lib/fake-mbx3000d/starts").content_string.split()[1::2]
    # Started On by the fixture, restarted once by the converge, not by the idempotence run.
    assert starts == ["On", "Off"], starts


@pytest.mark.parametrize("method", ["OPTIONS", "REGISTER", "INVITE"])
def test_stranger_gets_no_answer(topo, method):
    assert not sip_probe(topo.host("scanner"), topo.target_wan, method=method)["answered"]


def test_lan_register_is_challenged(topo):
    reply = sip_probe(topo.host("phone"), topo.target_lan, method="REGISTER")
    assert reply["status"] == 401, reply


def test_scanner_user_agent_dropped_in_kernel(topo):
    # From the internet (the LAN and trunks are trusted and pass before the User-Agent rules).
    target = topo.host("target")
    # iptables versions print the pattern as text, as hex, or mixed.
    pattern = f"({SCANNER_UA}|{SCANNER_UA.encode().hex()})"
    before = rule_packets(target, pattern)
    reply = sip_probe(topo.host("scanner"), topo.target_wan, method="REGISTER", user_agent=SCANNER_UA)
    assert not reply["answered"], reply
    assert rule_packets(target, pattern) > before
