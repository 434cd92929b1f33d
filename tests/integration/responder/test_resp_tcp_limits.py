"""No source holds the server over TCP (issue 11, item 3), on loopback only.

Before the fix one address could open every slot (`tcp_max_connections`) and keep them by sending a
byte now and then, since every byte restarted the idle timer: a trunk's new connection was closed at
once for as long as the trickle went on.
"""

import contextlib
import select
import socket
import time

import pytest
from resp_live_helpers import request

pytestmark = pytest.mark.integration

GATEWAY = "127.0.0.20"  # [[gateway]] loopback-trunk in resp_live_helpers.ENDPOINTS
LIMITS = (
    "[limits]\nrate_per_source = 0\ntcp_max_connections = 24\ntcp_idle_seconds = 30\n"
    "tcp_max_per_source = 4\ntcp_first_message_seconds = 2\n"
)


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(2)
    sock.connect(("127.0.0.1", port))
    return sock


def _open(sock: socket.socket) -> bool:
    """Whether the responder still holds this connection (no FIN or RST waiting to be read)."""
    if not select.select([sock], [], [], 0)[0]:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


def _gateway_options(port: int, call_id: str) -> bytes:
    with _connect(port, GATEWAY) as sock:
        data = request("OPTIONS", source=GATEWAY, transport="TCP", call_id=call_id)
        sock.sendall(data)
        try:
            return sock.recv(65536)
        except OSError:
            return b""


@pytest.mark.parametrize(
    ("mode", "attacker"),
    [("On", "127.0.0.5"), ("Off", "127.0.0.10")],  # On: any stranger; Off: an address in lan_networks
)
def test_one_source_trickling_over_every_slot_does_not_keep_a_gateway_out(start_responder, mode, attacker):
    responder = start_responder(mode, settings=LIMITS)
    head = b"OPTIONS sip:1001@127.0.0.1 SIP/2.0\r\n"
    attack = []
    try:
        for _ in range(24):  # every slot
            with contextlib.suppress(OSError):
                attack.append(_connect(responder.port, attacker))
        time.sleep(0.3)
        answers, held = [], []
        started = time.monotonic()
        for step in range(6):  # one byte per connection per second: slower than a phone, never silent
            for sock in attack:
                if _open(sock):
                    with contextlib.suppress(OSError):
                        sock.send(head[step : step + 1])
            held.append(sum(_open(sock) for sock in attack))
            if step in (0, 1):
                answers.append(_gateway_options(responder.port, f"gw-{step}"))
            time.sleep(max(0.0, started + step + 1 - time.monotonic()))
        assert [a.split(b"\r\n")[0] for a in answers] == [b"SIP/2.0 200 OK"] * 2
        assert held[0] == 4  # tcp_max_per_source
        assert held[-1] == 0  # no complete message within tcp_first_message_seconds: closed
    finally:
        for sock in attack:
            sock.close()
    stats = responder.stats()
    assert stats["tcp_connections_refused_source"] >= 20
    assert stats["tcp_connections_timed_out"] >= 4
    assert stats["tcp_connections_refused"] == 0


def test_at_the_global_cap_a_gateway_takes_the_place_of_a_silent_connection(start_responder):
    responder = start_responder("On", settings=LIMITS)
    attack = []
    try:
        for i in range(6):  # six strangers, four connections each: every slot, silent
            for _ in range(4):
                attack.append(_connect(responder.port, f"127.0.0.{30 + i}"))
        time.sleep(0.3)
        assert sum(_open(sock) for sock in attack) == 24
        stranger = _connect(responder.port, "127.0.0.40")
        time.sleep(0.3)
        assert not _open(stranger)  # a stranger is refused at the cap
        stranger.close()
        reply = _gateway_options(responder.port, "gw-cap")
        assert reply.startswith(b"SIP/2.0 200 OK")
        assert sum(_open(sock) for sock in attack) == 23  # the oldest silent one made room
    finally:
        for sock in attack:
            sock.close()
    stats = responder.stats()
    assert stats["tcp_connections_evicted"] == 1
    assert stats["tcp_connections_refused"] == 1


def test_in_on_mode_a_strangers_connection_ends_with_its_403(start_responder):
    responder = start_responder("On", settings=LIMITS)
    with _connect(responder.port, "127.0.0.5") as sock:
        sock.sendall(request("OPTIONS", source="127.0.0.5", transport="TCP"))
        data = b""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)  # the 2 s socket timeout bounds each read
            if not chunk:
                break
            data += chunk
        else:
            pytest.fail("the connection stayed open after the 403")
    assert data.startswith(b"SIP/2.0 403 Forbidden") and data.endswith(b"\r\n\r\n")


def test_a_phone_keeps_its_connection_with_keep_alives_after_its_first_message(start_responder):
    settings = LIMITS.replace("tcp_idle_seconds = 30", "tcp_idle_seconds = 2")
    responder = start_responder("On", settings=settings)
    with _connect(responder.port, GATEWAY) as sock:
        sock.sendall(request("OPTIONS", source=GATEWAY, transport="TCP"))
        assert sock.recv(65536).startswith(b"SIP/2.0 200 OK")
        for _ in range(3):  # RFC 5626 double-CRLF keep-alives, inside tcp_idle_seconds
            time.sleep(1)
            sock.sendall(b"\r\n\r\n")
        assert _open(sock)
        time.sleep(3.2)  # silent for longer than tcp_idle_seconds
        assert not _open(sock)
