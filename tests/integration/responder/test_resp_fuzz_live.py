"""Broken and random bytes at a live Off-mode responder: it stays up and never answers a stranger."""

import random
import socket

import pytest
from resp_live_helpers import request

pytestmark = pytest.mark.integration


def _mutations(count: int) -> list[bytes]:
    rng = random.Random(4475)  # noqa: S311 - fixed seed so a failure is reproducible
    seeds = [request(m, source="127.0.0.5") for m in ("OPTIONS", "REGISTER", "INVITE")]
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            where = rng.randrange(len(data))
            data[where : where + rng.randint(0, 4)] = rng.randbytes(rng.randint(0, 4))
        out.append(bytes(data))
    return out + [rng.randbytes(rng.randint(1, 1500)) for _ in range(count // 4)]


def test_off_mode_stays_silent_and_alive_under_garbage(start_responder):
    responder = start_responder("Off", settings="[scanner]\nuser_agents = []\n")
    garbage = _mutations(400)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.5", 0))
        sock.settimeout(0.5)
        for data in garbage:
            sock.sendto(data, ("127.0.0.1", responder.port))
        with pytest.raises(TimeoutError):
            sock.recv(65535)
    with socket.create_connection(
        ("127.0.0.1", responder.port), timeout=2, source_address=("127.0.0.5", 0)
    ) as tcp:
        try:
            tcp.sendall(b"".join(garbage[:20]))
            assert tcp.recv(65535) == b""
        except ConnectionResetError:
            pass  # closed on accept, before our bytes arrived
    assert responder.proc.poll() is None
    assert responder.stats()["received"] >= 1


def test_trunk_garbage_in_on_mode_gets_answers_or_silence_never_a_crash(start_responder):
    responder = start_responder("On")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.20", 0))  # the configured trunk: the full parser sees everything
        sock.settimeout(0.02)
        for data in _mutations(300):
            sock.sendto(data, ("127.0.0.1", responder.port))
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                continue
            assert reply.startswith(b"SIP/2.0 ")
        sock.settimeout(2)
        sock.sendto(request("OPTIONS", source="127.0.0.20", call_id="after"), ("127.0.0.1", responder.port))
        while b"Call-ID: after" not in (reply := sock.recv(65535)):
            pass
        assert reply.startswith(b"SIP/2.0 200 OK")
    assert responder.proc.poll() is None
