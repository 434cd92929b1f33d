"""Operating a running responder: SIGHUP reload, trace switching, stats, Prometheus, the ipset hook."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from resp_live_helpers import (
    CLIENT_ENDPOINTS,
    ENDPOINTS,
    MD5_FIRST,
    free_port,
    request,
    sipp_register,
    udp_exchange,
)

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
def test_sighup_applies_valid_config_keeps_bindings_refuses_invalid(start_responder, tmp_path):
    responder = start_responder("On", endpoints=CLIENT_ENDPOINTS, settings=MD5_FIRST)
    assert sipp_register(responder.port, tmp_path).returncode == 0
    assert responder.stats()["bindings"] == 1
    assert udp_exchange(responder.port, request("OPTIONS", source="127.0.0.5"), "127.0.0.5") is not None

    responder.softswitch.write_text(f"SS_REPLY_UNAUTHORIZED=Off\nSS_SIP_PORT={responder.port}\n")
    responder.proc.send_signal(signal.SIGHUP)
    responder.wait_log("configuration reloaded")
    stats = responder.stats()
    assert stats["bindings"] == 1 and stats["reloads"] == 1
    assert (
        udp_exchange(responder.port, request("OPTIONS", source="127.0.0.5"), "127.0.0.5", timeout=0.3) is None
    )
    registered = udp_exchange(responder.port, request("OPTIONS", source="127.0.0.1"), "127.0.0.1")
    assert registered.startswith(b"SIP/2.0 200 OK")  # still recognised by its registration

    responder.softswitch.write_text("SS_REPLY_UNAUTHORIZED=sometimes\n")
    responder.proc.send_signal(signal.SIGHUP)
    line = responder.wait_log("reload refused")
    assert "SS_REPLY_UNAUTHORIZED" in line
    assert responder.proc.poll() is None
    assert (
        udp_exchange(responder.port, request("OPTIONS", source="127.0.0.5"), "127.0.0.5", timeout=0.3) is None
    )
    assert responder.stats()["reload_failures"] == 1


def test_trace_switched_at_run_time_records_dropped_requests(start_responder):
    responder = start_responder("Off")
    assert (
        udp_exchange(responder.port, request("OPTIONS", source="127.0.0.5"), "127.0.0.5", timeout=0.2) is None
    )
    switched = responder.cli("trace", "on")
    assert switched.returncode == 0 and switched.stdout.strip() == "trace on"
    scan = request("REGISTER", "100", source="127.0.0.6").replace(b"integration-test", b"friendly-scanner")
    udp_exchange(responder.port, scan, "127.0.0.6", timeout=0.2)
    udp_exchange(responder.port, request("INVITE", source="127.0.0.7", headers='Authorization: Digest x="y"'),
                 "127.0.0.7", timeout=0.2)  # fmt: skip
    assert responder.cli("trace", "off").stdout.strip() == "trace off"
    udp_exchange(responder.port, request("OPTIONS", source="127.0.0.8"), "127.0.0.8", timeout=0.2)
    events = [json.loads(line) for line in responder.trace.read_text().splitlines()]
    assert [(e["src"], e["method"], e["decision"], e["reason"]) for e in events] == [
        ("127.0.0.6", "REGISTER", "drop", "scanner"),
        ("127.0.0.7", "INVITE", "drop", "unknown"),
    ]
    assert events[0]["ua"] == "friendly-scanner"
    assert "Digest" not in responder.trace.read_text()


def test_stats_and_prometheus_count_what_happened(start_responder):
    port = free_port()
    responder = start_responder("On", settings=f'[stats]\nprometheus_listen = "127.0.0.1:{port}"\n')
    udp_exchange(responder.port, request("OPTIONS", source="127.0.0.5"), "127.0.0.5")
    stats = responder.stats()
    assert stats["received"] == 1 and stats["replied_forbidden"] == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    assert "sipresponder_replied_forbidden_total 1" in text
    as_json = json.loads(responder.cli("stats", "--json").stdout)
    assert as_json["received"] == 1


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sipresponder", "stats", "--socket", str(tmp_path / "missing.sock")],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "is sipresponder running?" in done.stderr and "Traceback" not in done.stderr
    bad = tmp_path / "softswitch.conf"
    bad.write_text("SS_SIP_PORT=99999\n")
    done = subprocess.run(
        [sys.executable, "-m", "sipresponder", "run", "--softswitch", str(bad), "--endpoints",
         str(tmp_path / "none.toml"), "--config", str(tmp_path / "none.toml")],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "SS_SIP_PORT" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def netns():
    """A fresh network namespace with only loopback up (its own ipsets and firewall)."""
    if shutil.which("ipset") is None or shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and ip/ipset for a network namespace")
    name = f"sgresp-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


# stdin: a REGISTER, then answers to its challenge with NONCE in place of the nonce, NUL-separated.
ANSWER_WRONGLY = """
import re, socket, sys
server = ("127.0.0.1", int(sys.argv[1]))
first, *attempts = sys.stdin.buffer.read().split(b"\\0")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(first, server)
nonce = re.search(rb'nonce="([^"]+)"', s.recv(9999)).group(1)
for attempt in attempts:
    s.sendto(attempt.replace(b"NONCE", nonce), server)
    s.recv(9999)
"""


def test_suspension_adds_the_source_to_the_kernel_block_set(start_responder, netns):
    inside = ("ip", "netns", "exec", netns)
    subprocess.run([*inside, "ipset", "create", "sgtest-block4", "hash:ip", "timeout", "0"], check=True)
    responder = start_responder(
        "On",
        softswitch="SS_AUTHENTICATION_MAX_RETRY=2\nSS_AUTHENTICATION_FAILED_SUSPEND=120\n",
        settings='[blocking]\nipset4 = "sgtest-block4"\n',
        prefix=inside,
    )
    # From inside the namespace, a stranger gets a challenge and answers it twice with a wrong password
    # (only answers to a nonce sent to that address count toward a suspension).
    first = request("REGISTER", "1001", branch="z9hG4bKs", call_id="s")
    attempts = [
        request("REGISTER", "1001", branch=f"z9hG4bKs{attempt}", call_id="s", cseq=attempt + 2,
                headers='Authorization: Digest username="1001", realm="sipguard", nonce="NONCE", '
                        f'uri="sip:x", response="00", qop=auth, nc=0000000{attempt + 1}, cnonce="c"')
        for attempt in range(2)
    ]  # fmt: skip
    subprocess.run(
        [*inside, sys.executable, "-c", ANSWER_WRONGLY, str(responder.port)],
        input=b"\0".join([first, *attempts]), check=True, timeout=10,
    )  # fmt: skip

    def listed() -> bool:
        out = subprocess.run(
            [*inside, "ipset", "list", "sgtest-block4"], capture_output=True, text=True, check=False
        ).stdout
        return "127.0.0.1 timeout" in out

    wait_for(listed)
    assert responder.stats()["block_hook_calls"] == 1


def test_a_bug_meeting_a_packet_is_counted_and_the_loop_goes_on(tmp_path):
    from sipresponder import config  # noqa: PLC0415
    from sipresponder.server import Server  # noqa: PLC0415

    (tmp_path / "s.conf").write_text("SS_REPLY_UNAUTHORIZED=On\n")
    (tmp_path / "e.toml").write_text(ENDPOINTS)
    (tmp_path / "r.toml").write_text('[stats]\nprometheus_listen = ""\ncontrol_socket = ""\n')
    paths = (str(tmp_path / "s.conf"), str(tmp_path / "e.toml"), str(tmp_path / "r.toml"))
    server = Server(config.load(*paths), paths)

    def broken(*_):
        raise ValueError("a bug")

    server.core.handle = broken
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        listener.bind(("127.0.0.1", 0))
        listener.setblocking(False)
        for _ in range(3):
            client.sendto(b"OPTIONS", listener.getsockname())
        time.sleep(0.1)
        server.on_udp(listener)  # must return normally
    assert server.core.stats.counts["internal_errors"] == 3
