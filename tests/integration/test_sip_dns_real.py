"""sipguard.hardening.sip_dns against a real DNS server: dnsmasq on loopback, started by this test.

Every lookup goes through `ansible localhost -m sipguard.hardening.sip_dns`, the way a playbook runs it on the
controller. The zone below has NAPTR, SRV, A and AAAA records; all addresses are documentation-style
benchmark addresses (198.18.0.0/15, 2001:2::/48) that are only ever returned, never contacted.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns.resolver
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LISTEN = "127.0.83.1"
# The in-process and ad hoc module runners live with the module tests; load them from there.
_spec = importlib.util.spec_from_file_location("sipguard_module_helpers", ROOT / "tests/modules/conftest.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)
ZONE = [
    "--local=/example.test/",  # answer NXDOMAIN for unknown names instead of REFUSED
    # example.test: NAPTR -> SRV for every transport (RFC 3263 section 4.1)
    "--naptr-record=example.test,10,50,S,SIP+D2U,,_sip._udp.example.test",
    "--naptr-record=example.test,20,50,S,SIP+D2T,,_sip._tcp.example.test",
    "--naptr-record=example.test,30,50,S,SIPS+D2T,,_sips._tcp.example.test",
    "--srv-host=_sip._udp.example.test,sip1.example.test,5060,10,60",
    "--srv-host=_sip._udp.example.test,sip2.example.test,5060,20,10",
    "--srv-host=_sip._tcp.example.test,sip2.example.test,5070,10,10",
    "--srv-host=_sips._tcp.example.test,sip1.example.test,5061,10,10",
    "--host-record=sip1.example.test,198.18.5.1,2001:2::1",
    "--host-record=sip2.example.test,198.18.5.2",
    # srvonly.example.test: SRV records and no NAPTR (section 4.2)
    "--srv-host=_sip._udp.srvonly.example.test,sip3.example.test,5080,10,10",
    "--host-record=sip3.example.test,198.18.5.3",
    # plain.example.test: only addresses (section 4.2, last paragraph)
    "--host-record=plain.example.test,198.18.5.4,2001:2::4",
]


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((LISTEN, 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def nameserver():
    """dnsmasq serving ZONE on LISTEN:<high port>; yields the port."""
    if shutil.which("dnsmasq") is None:
        pytest.fail("dnsmasq is not installed (Debian package dnsmasq-base)")
    port = free_port()
    process = subprocess.Popen(
        [
            "dnsmasq",
            "--keep-in-foreground",
            "--log-facility=-",
            f"--port={port}",
            f"--listen-address={LISTEN}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            *ZONE,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_answering(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until_answering(port, process):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = [LISTEN], port, 0.2
    for _ in range(50):
        if process.poll() is not None:
            pytest.fail(f"dnsmasq exited: {process.stdout.read()}")
        try:
            resolver.resolve("plain.example.test", "A")
            return
        except dns.exception.DNSException:
            time.sleep(0.1)
    pytest.fail("dnsmasq did not answer within 5 seconds")


def sip_dns(port, **args):
    """Run the module through ansible, as a playbook would on the controller; return its result."""
    return helpers.run_adhoc(
        "sip_dns", {"nameservers": [LISTEN], "port": port, "timeout": 2.0, **args}
    )


def summary(result):
    return [(t["address"], t["port"], t["transport"], t["via"]) for t in result["targets"]]


def test_naptr_to_srv_to_addresses(nameserver):
    result = sip_dns(nameserver, name="example.test")

    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert summary(result) == [
        ("198.18.5.1", 5060, "udp", "naptr"),
        ("2001:2::1", 5060, "udp", "naptr"),
        ("198.18.5.2", 5060, "udp", "naptr"),
        ("198.18.5.2", 5070, "tcp", "naptr"),
        ("198.18.5.1", 5061, "tls", "naptr"),
        ("2001:2::1", 5061, "tls", "naptr"),
    ]
    assert result["targets"][0] == {
        "host": "sip1.example.test",
        "address": "198.18.5.1",
        "port": 5060,
        "transport": "udp",
        "family": 4,
        "priority": 10,
        "weight": 60,
        "via": "naptr",
    }
    assert result["addresses"] == ["198.18.5.1", "2001:2::1", "198.18.5.2"]
    assert result["networks"] == ["198.18.5.1/32", "2001:2::1/128", "198.18.5.2/32"]


def test_transport_and_family_filters(nameserver):
    result = sip_dns(nameserver, name="example.test", transport="tls", families=[6])
    assert summary(result) == [("2001:2::1", 5061, "tls", "naptr")]


def test_srv_without_naptr(nameserver):
    result = sip_dns(nameserver, name="srvonly.example.test")
    assert summary(result) == [("198.18.5.3", 5080, "udp", "srv")]
    assert result["targets"][0]["host"] == "sip3.example.test"


def test_plain_host(nameserver):
    result = sip_dns(nameserver, name="plain.example.test", transport="tcp", default_port=5090)
    assert summary(result) == [("198.18.5.4", 5090, "tcp", "host"), ("2001:2::4", 5090, "tcp", "host")]
    assert result["networks"] == ["198.18.5.4/32", "2001:2::4/128"]


def test_strict_lookup_does_not_fall_back(nameserver):
    result = sip_dns(nameserver, name="plain.example.test", lookup="naptr")
    assert result["failed"]
    assert "NAPTR plain.example.test: no answer" in result["msg"]


def test_nxdomain_names_the_name_and_the_nameserver(nameserver):
    result = sip_dns(nameserver, name="nope.example.test")
    assert result["failed"]
    assert "nope.example.test" in result["msg"]
    assert "NXDOMAIN" in result["msg"]
    assert f"{LISTEN}:{nameserver}" in result["msg"]
    assert "Traceback" not in result["msg"]


def test_timeout_is_a_clear_failure():
    # A bound UDP socket that never answers: the query is received and ignored.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LISTEN, 0))
        port = silent.getsockname()[1]
        result = sip_dns(port, name="example.test", timeout=0.5)
    assert result["failed"]
    assert "timed out after 0.5s" in result["msg"]
    assert f"{LISTEN}:{port}" in result["msg"]
