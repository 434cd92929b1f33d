"""Independent SIP clients (sipsak, SIPp) register with digest; TCP and IPv6 behaviour on real sockets."""

import shutil
import socket
import subprocess

import pytest
from resp_live_helpers import CLIENT_ENDPOINTS, MD5_FIRST, request, sipp_register, udp_exchange

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("sipsak") is None, reason="sipsak is not installed")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("mode", ["On", "Off"])
def test_sipsak_registers_with_digest(start_responder, transport, mode):
    responder = start_responder(mode, endpoints=CLIENT_ENDPOINTS, settings=MD5_FIRST)
    done = subprocess.run(
        [
            "sipsak",
            "-v",
            "-U",
            "--transport",
            transport,
            "-s",
            f"sip:1001@127.0.0.1:{responder.port}",
            "-u",
            "1001",
            "-a",
            "s3cret-pw",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All usrloc tests completed successful" in done.stdout
    assert responder.stats()["auth_success"] >= 1


@pytest.mark.skipif(shutil.which("sipsak") is None, reason="sipsak is not installed")
def test_sipsak_with_a_wrong_password_fails(start_responder):
    responder = start_responder("On", endpoints=CLIENT_ENDPOINTS, settings=MD5_FIRST)
    done = subprocess.run(
        ["sipsak", "-U", "-s", f"sip:1001@127.0.0.1:{responder.port}", "-u", "1001", "-a", "wrong"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert responder.stats()["auth_success"] == 0


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
@pytest.mark.parametrize(("target", "transport"), [("[::1]", "u1"), ("[::1]", "t1"), ("127.0.0.1", "u1")])
def test_sipp_registers_with_digest_over_ipv6_and_tcp(start_responder, tmp_path, target, transport):
    responder = start_responder("Off", endpoints=CLIENT_ENDPOINTS, settings=MD5_FIRST)
    done = sipp_register(responder.port, tmp_path, target, transport)
    assert done.returncode == 0, done.stdout[-2000:]
    stats = responder.stats()
    assert stats["auth_success"] == 1 and stats["bindings"] == 1


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
def test_udp_on_mode_answers_strangers_per_the_table(start_responder, target):
    responder = start_responder("On")
    source = "::1" if ":" in target else "127.0.0.5"
    reply = udp_exchange(responder.port, request("OPTIONS", source=source), source, target)
    assert reply.startswith(b"SIP/2.0 403 Forbidden\r\n")
    assert f"received={source}".encode() in reply
    reply = udp_exchange(responder.port, request("REGISTER", "9999", source=source), source, target)
    assert reply.startswith(b"SIP/2.0 401 Unauthorized\r\n") and b"WWW-Authenticate: Digest" in reply
    assert udp_exchange(responder.port, request("ACK", source=source), source, target, timeout=0.3) is None


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
def test_udp_off_mode_is_silent_to_strangers_and_answers_the_trunk(start_responder, target):
    responder = start_responder("Off")
    source = "::1" if ":" in target else "127.0.0.5"
    for method in ("OPTIONS", "REGISTER", "INVITE"):
        assert (
            udp_exchange(responder.port, request(method, source=source), source, target, timeout=0.3) is None
        )
    if target == "127.0.0.1":
        reply = udp_exchange(responder.port, request("OPTIONS", source="127.0.0.20"), "127.0.0.20")
        assert reply.startswith(b"SIP/2.0 200 OK\r\n")


def _tcp(target: str, port: int, source: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(2)
    sock.connect((target, port))
    return sock


def _read_replies(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    while data.count(b"Content-Length: 0\r\n\r\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return [part for part in data.split(b"\r\n\r\n") if part]


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
def test_tcp_off_mode_closes_a_strangers_connection_without_a_byte(start_responder, target):
    responder = start_responder("Off")
    source = "::1" if ":" in target else "127.0.0.5"
    with _tcp(target, responder.port, source) as sock:
        try:
            sock.sendall(request("OPTIONS", source=source, transport="TCP"))
            assert sock.recv(65536) == b""
        except ConnectionResetError:
            pass  # closed before our bytes arrived: still not one byte of SIP back


def test_tcp_frames_by_content_length_and_answers_pipelined_requests(start_responder):
    responder = start_responder("On")
    with _tcp("127.0.0.1", responder.port, "127.0.0.20") as sock:  # the trunk
        first = request("OPTIONS", source="127.0.0.20", transport="TCP", branch="z9hG4bKa", call_id="a")
        second = request("OPTIONS", source="127.0.0.20", transport="TCP", branch="z9hG4bKb", call_id="b")
        sock.sendall(first + second[:40])  # one and a half messages
        sock.sendall(second[40:])
        replies = _read_replies(sock, 2)
    assert [r.split(b"\r\n")[0] for r in replies] == [b"SIP/2.0 200 OK"] * 2
    assert b"Call-ID: a" in replies[0] and b"Call-ID: b" in replies[1]


def test_tcp_oversize_message_closes_the_connection(start_responder):
    responder = start_responder("On", settings="[limits]\nmax_message_bytes = 2048\n")
    with _tcp("127.0.0.1", responder.port, "127.0.0.20") as sock:
        sock.sendall(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nX-Padding: " + b"a" * 4096)
        assert sock.recv(65536) == b""
    assert responder.stats()["dropped_oversize"] == 1


def test_tcp_connection_limit_and_idle_timeout(start_responder):
    responder = start_responder("On", settings="[limits]\ntcp_max_connections = 2\ntcp_idle_seconds = 1\n")
    keep = [_tcp("127.0.0.1", responder.port, "127.0.0.20") for _ in range(2)]
    try:
        extra = _tcp("127.0.0.1", responder.port, "127.0.0.5")  # a stranger: a trunk takes a silent slot
        assert extra.recv(10) == b""  # refused at the limit: closed at once
        extra.close()
        assert keep[0].recv(10) == b""  # idle for more than a second: closed
    finally:
        for sock in keep:
            sock.close()
    assert responder.stats()["tcp_connections_refused"] >= 1
