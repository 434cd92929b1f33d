"""RFC 4475's 49 torture messages over UDP to a live responder, from its configured trunk address.

The same vectors and expectations as tests/unit/responder/test_resp_rfc4475.py
(tests/data/rfc4475/). Answers go where RFC 3261 §18.2.2 sends them: the source address, at the
source port with `rport`, else at the top Via's port (5060 when it names none), so the test
listens on 127.0.0.20 at 5060 and at every other port a vector's top Via names.
"""

import importlib.util
import re
import selectors
import socket
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data" / "rfc4475"
_spec = importlib.util.spec_from_file_location("rfc4475_vectors", DATA / "rfc4475.py")
rfc4475 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rfc4475)

TRUNK = "127.0.0.20"  # the [[gateway]] of resp_live_helpers.ENDPOINTS
CASES = rfc4475.cases()


def _via_port(data: bytes) -> int:
    """The port of the top Via's sent-by when it has no rport (else our source port, 5060)."""
    match = re.search(rb"\r\n(?:via|v)\s*:([^\r]*)", data, re.IGNORECASE)
    top = match.group(1).split(b",")[0] if match else b""
    if b"rport" in top:
        return 5060
    port = re.search(rb"\s[^\s;:]+:(\d+)", top)
    return int(port.group(1)) if port else 5060


def _call_id(data: bytes) -> bytes:
    match = re.search(rb"\r\n(?:call-id|i)\s*:\s*([^\r]*)", data, re.IGNORECASE)
    return match.group(1).strip() if match else b""


def _exchange(selector, sender, data: bytes, port: int, wait: float, more: bool) -> list[bytes]:
    """Send one vector; every datagram that comes back within `wait` (a little longer after the first)."""
    sender.sendto(data, ("127.0.0.1", port))
    replies, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            replies.append(key.fileobj.recv(65535))
        if replies and not more:
            time.sleep(0.05)  # a second answer would be a failure: give it a moment
            replies += [key.fileobj.recv(65535) for key, _ in selector.select(timeout=0)]
            break
    return replies


def _problem(name: str, case: dict, data: bytes, replies: list[bytes]) -> str:
    got = replies[0][8:11].decode() if replies else "none"
    if len(replies) > 1 or got not in case["expect"]:
        return f"{name} ({case['section']}): got {[r[:40] for r in replies]}, want {case['expect']}"
    if replies and _call_id(data) and _call_id(data) not in replies[0]:
        return f"{name}: the answer is not for this request: {replies[0][:200]!r}"
    if "header" in case and got == case["expect"][0] and b"\r\n" + case["header"].encode() not in replies[0]:
        return f"{name}: no {case['header']!r} in {replies[0]!r}"
    return ""


def test_rfc4475_from_the_trunk_over_udp(start_responder):
    responder = start_responder("Off")  # Off mode: a stranger would get nothing; the trunk is recognised
    ports = sorted({5060} | {_via_port(rfc4475.message(name)) for name in CASES})
    listeners = []
    selector = selectors.DefaultSelector()
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((TRUNK, port))
            except OSError as error:
                sock.close()
                pytest.skip(f"{TRUNK}:{port} is taken ({error}); the answers are sent there")
            listeners.append(sock)
            selector.register(sock, selectors.EVENT_READ)
        failures = []
        for name, case in CASES.items():
            data = rfc4475.message(name)
            silent = case["expect"] == ["none"]
            replies = _exchange(selector, listeners[0], data, responder.port, 0.3 if silent else 2.0, silent)
            problem = _problem(name, case, data, replies)
            if problem:
                failures.append(problem)
        assert not failures, f"{49 - len(failures)}/49 as RFC 4475 expects; misses:\n" + "\n".join(failures)
    finally:
        for sock in listeners:
            sock.close()
    assert responder.proc.poll() is None
    assert responder.stats()["internal_errors"] == 0
