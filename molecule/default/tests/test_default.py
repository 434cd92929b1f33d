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


def test_public_target_is_silent_to_a_stranger():
    for transport in ("udp", "tcp"):
        reply = sip_probe(scanner(), TARGET_WAN, method="OPTIONS", transport=transport)
        assert not reply["answered"], reply


def test_responder_runs_unprivileged(host):
    responder = host.service("sipresponder")
    assert responder.is_running
    pid = host.check_output("systemctl show -P MainPID sipresponder")
    assert host.check_output(f"ps -o user= -p {pid}") == "sipresponder"
    # CAP_NET_BIND_SERVICE (bit 10), plus CAP_NET_ADMIN (bit 12) for the ipset
    # kernel-block hook the public profile turns on; nothing else.
    effective = int(host.check_output(f"grep ^CapEff /proc/{pid}/status").split()[1], 16)
    assert effective & ~((1 << 10) | (1 << 12)) == 0, hex(effective)
