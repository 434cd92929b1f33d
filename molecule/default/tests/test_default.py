"""Smoke checks of the default scenario: a booted target, reachable over the
scenario network, whose SIP behaviour matches the public profile."""

import testinfra
from sipcheck import sip_probe

testinfra_hosts = ["mol-default-target"]

TARGET_WAN = "198.19.0.10"
TARGET_WAN6 = "2001:2:0:100::10"


def scanner():
    return testinfra.get_host("podman://mol-default-scanner")


def test_systemd_is_pid1_and_booted(host):
    assert host.run("systemctl is-system-running").stdout.strip() in {"running", "degraded"}


def test_scanner_reaches_target_over_ipv4_and_ipv6():
    # A TCP connect to a closed port is answered with RST: proves routing both ways.
    for addr in (TARGET_WAN, TARGET_WAN6):
        reply = sip_probe(scanner(), addr, port=9, transport="tcp", timeout=2)
        assert reply.get("tcp_refused"), f"{addr} not reachable from the scanner: {reply}"
