"""sipguard_sip_probe against tiny SIP responders on loopback that this test starts itself."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_sip import (
    frame,
    parse_response,
    probe_request,
)


def answer_for(request: bytes, status: str) -> bytes:
    """A response echoing the request's dialog headers, as any SIP server would."""
    lines = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    echo = [line for line in lines[1:] if line.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
    return "\r\n".join(
        [f"SIP/2.0 {status}", *echo, "Server: test-responder", "Content-Length: 0", "", ""]
    ).encode()


class Responder:
    """Answers every request on loopback with fixed responses; records what it received."""

    def __init__(self, family, kind, statuses):
        self.sock = socket.socket(family, kind)
        self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.kind = kind
        self.statuses = statuses
        self.received = []
        if kind == socket.SOCK_STREAM:
            self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop.is_set():
            try:
                if self.kind == socket.SOCK_DGRAM:
                    data, peer = self.sock.recvfrom(65535)
                    self.received.append(data)
                    if not data.startswith(b"ACK"):
                        for status in self.statuses:
                            self.sock.sendto(answer_for(data, status), peer)
                else:
                    conn, _ = self.sock.accept()
                    with conn:
                        conn.settimeout(2)
                        data = conn.recv(65535)
                        self.received.append(data)
                        for status in self.statuses:
                            conn.sendall(answer_for(data, status))
            except (TimeoutError, OSError):
                continue

    def close(self):
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def responder():
    started = []

    def start(family=socket.AF_INET, kind=socket.SOCK_DGRAM, statuses=("403 Forbidden",)):
        started.append(Responder(family, kind, statuses))
        return started[-1]

    yield start
    for item in started:
        item.close()


def wait_for(server, count):
    """The ACK/BYE go out just before the module returns; give the responder thread a moment to read them."""
    for _ in range(50):
        if len(server.received) >= count:
            return
        time.sleep(0.02)


def probe(run_module, **args):
    return run_module("sip_probe", {"timeout": 1.0, **args})


@pytest.mark.parametrize("method", ["OPTIONS", "REGISTER", "INVITE"])
def test_udp_answer_is_reported(run_module, responder, method):
    server = responder()
    result = probe(run_module, host="127.0.0.1", port=server.port, method=method)

    assert result["answered"] is True
    assert result["changed"] is False
    assert result["status_code"] == 403
    assert result["reason"] == "Forbidden"
    assert result["server"] == "test-responder"
    assert result["user_agent_header"] is None
    assert result["rtt_ms"] > 0
    assert result["response_lines"][0] == "SIP/2.0 403 Forbidden"
    assert result["target"] == f"127.0.0.1:{server.port}/udp"
    sent = parse_request(server.received[0])
    assert sent["method"] == method
    assert sent["headers"]["user-agent"] == "friendly-scanner"


def parse_request(data: bytes) -> dict:
    head = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return {"method": head[0].split(" ")[0], "uri": head[0].split(" ")[1], "headers": headers}


def test_tcp_answer_and_chosen_user_agent(run_module, responder):
    server = responder(kind=socket.SOCK_STREAM)
    result = probe(run_module, host="127.0.0.1", port=server.port, transport="tcp", user_agent="sipcli/v1.8")
    assert result["status_code"] == 403
    assert result["target"].endswith("/tcp")
    assert parse_request(server.received[0])["headers"]["user-agent"] == "sipcli/v1.8"


def test_ipv6_udp(run_module, responder):
    server = responder(family=socket.AF_INET6)
    result = probe(run_module, host="::1", port=server.port)
    assert result["status_code"] == 403
    assert result["target"] == f"[::1]:{server.port}/udp"
    assert "[::1]" in parse_request(server.received[0])["headers"]["via"]


def test_silence_is_a_result_not_a_failure(run_module):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        result = probe(run_module, host="127.0.0.1", port=silent.getsockname()[1], timeout=0.3, attempts=2)
        # Both attempts reached the socket, and nothing was sent back.
        silent.settimeout(0.5)
        assert silent.recv(65535).startswith(b"OPTIONS ")
        assert silent.recv(65535).startswith(b"OPTIONS ")

    assert not result.get("failed")
    assert result["answered"] is False
    assert result["status_code"] is None
    assert result["rtt_ms"] is None
    assert result["response_lines"] == []


def test_tcp_refused(run_module):
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # nothing listens on it once closed
    result = probe(run_module, host="127.0.0.1", port=port, transport="tcp")
    assert result["answered"] is False
    assert result["tcp_refused"] is True


def test_closed_udp_port_is_unreachable_not_a_failure(run_module):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    result = probe(run_module, host="127.0.0.1", port=port)
    assert not result.get("failed")
    assert result["answered"] is False
    assert result["udp_unreachable"] is True


def test_source_port_is_used(run_module, responder):
    server = responder()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spare:
        spare.bind(("127.0.0.1", 0))
        source_port = spare.getsockname()[1]
    result = probe(
        run_module, host="127.0.0.1", port=server.port, source_address="127.0.0.1", source_port=source_port
    )
    assert result["source"] == f"127.0.0.1:{source_port}"
    assert f"127.0.0.1:{source_port};" in parse_request(server.received[0])["headers"]["via"]


def test_provisional_then_final_invite_is_acknowledged(run_module, responder):
    server = responder(statuses=("100 Trying", "486 Busy Here"))
    result = probe(run_module, host="127.0.0.1", port=server.port, method="INVITE")
    assert result["status_codes"] == [100, 486]
    assert result["status_code"] == 486
    wait_for(server, 2)
    assert [parse_request(data)["method"] for data in server.received] == ["INVITE", "ACK"]
    invite, ack = (parse_request(data) for data in server.received)
    assert ack["headers"]["via"] == invite["headers"]["via"], "non-2xx ACK: same transaction"


def test_accepted_invite_is_hung_up(run_module, responder):
    server = responder(statuses=("200 OK",))
    result = probe(run_module, host="127.0.0.1", port=server.port, method="INVITE")
    assert result["status_code"] == 200
    wait_for(server, 3)
    invite, ack, bye = (parse_request(data) for data in server.received)
    assert (ack["method"], bye["method"]) == ("ACK", "BYE")
    assert bye["headers"]["cseq"] == "2 BYE"
    assert len({invite["headers"]["via"], ack["headers"]["via"], bye["headers"]["via"]}) == 3, "new branches"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"host": "127.0.0.1", "port": 0}, "port 0 is outside"),
        ({"host": "127.0.0.1", "port": 70000}, "port 70000 is outside"),
        ({"host": " "}, "host must not be empty"),
        ({"host": "127.0.0.1", "source_address": "not-an-ip"}, "is not an IP address"),
        ({"host": "127.0.0.1", "timeout": 0}, "timeout 0"),
        ({"host": "127.0.0.1", "source_address": "::1"}, "as IPv6, the family of source_address"),
        ({"host": "127.0.0.1", "method": "BYE"}, "value of method must be one of"),
        # 198.18.0.1 is not an address of this host: binding fails before anything is sent.
        ({"host": "127.0.0.1", "source_address": "198.18.0.1"}, "cannot send from 198.18.0.1:0"),
    ],
)
def test_bad_input_is_a_clear_failure(run_module, args, message):
    result = run_module("sip_probe", args)
    assert result["failed"]
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]


def test_documentation_matches_the_argument_spec(documentation_check):
    documentation_check("sip_probe")


def test_runs_through_ansible_with_its_module_utils(adhoc_module, responder):
    """The real path: ansible ships module_utils/sipguard_sip.py with the module to the host."""
    server = responder()
    result = adhoc_module("sip_probe", {"host": "127.0.0.1", "port": server.port})
    assert result["status_code"] == 403


# The message helpers on their own, no sockets.


def test_request_is_well_formed():
    data = probe_request(
        "REGISTER",
        host="2001:2::10",
        port=5060,
        transport="tcp",
        local_address="2001:2::20",
        local_port=5070,
        user_agent="x",
        from_user="200",
        to_user="300",
        call_id="c1",
        branch="z9hG4bKb1",
        tag="t1",
    )
    request = parse_request(data)
    assert request["uri"] == "sip:[2001:2::10]:5060"
    assert request["headers"]["via"] == "SIP/2.0/TCP [2001:2::20]:5070;branch=z9hG4bKb1;rport"
    assert request["headers"]["to"] == "<sip:200@[2001:2::10]>"  # REGISTER: To is the From user
    assert frame(data, 65536) == (data, b"", False)


def test_parse_response_understands_compact_headers_and_rejects_requests():
    parsed = parse_response(b"SIP/2.0 401 Unauthorized\r\ni: abc\r\nl: 0\r\n\r\n")
    assert parsed["status_code"] == 401
    assert parsed["headers"]["call-id"] == "abc"
    assert parse_response(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n") is None
    assert parse_response(b"") is None


def test_frame_waits_for_the_whole_body_and_refuses_what_cannot_be_framed():
    message = b"SIP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    assert frame(message[:-1], 65536) == (None, message[:-1], False)
    assert frame(b"\r\n\r\n" + message + b"SIP/2.0", 65536) == (message, b"SIP/2.0", False)  # keep-alives
    assert frame(message, 40)[2] is True  # longer than the limit
    assert frame(b"SIP/2.0 200 OK\r\nl: four\r\n\r\n", 65536)[2] is True  # compact, not a number


def test_probes_in_check_mode_too(run_module, responder):
    server = responder()
    result = run_module("sip_probe", {"host": "127.0.0.1", "port": server.port}, check=True)
    assert result["status_code"] == 403
    assert result["changed"] is False
