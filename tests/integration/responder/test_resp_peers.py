"""`--workers 2` as peers steered by source address: one source, one process, whatever its port
or transport; and the fallback to helpers where steering is off."""

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from resp_live_helpers import ENDPOINTS, free_port, request, udp_exchange

from sipresponder import sip_codec, steering
from sipresponder.listen import open_listener

pytestmark = pytest.mark.integration

# With 2 processes, 127.0.0.5 is steered to the forked peer (slot 1), 127.0.0.6 to the main process.
PEER_SOURCE, MAIN_SOURCE = "127.0.0.5", "127.0.0.6"


def arrivals(group: list[socket.socket], transport: str) -> list[int]:
    """Which sockets of the group got something (each read once)."""
    got = []
    for index, sock in enumerate(group):
        try:
            if transport == "udp":
                sock.recvfrom(100)
            else:
                sock.accept()[0].close()
            got.append(index)
        except BlockingIOError:
            pass
    return got


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("target", "sources"), [("127.0.0.1", ["127.0.0.5", "127.0.0.6", "127.0.0.7"]),
                                                 ("::1", ["::1"])])  # fmt: skip
def test_the_kernel_steers_every_port_of_a_source_to_one_socket(transport, target, sources):
    if steering.unavailable():
        pytest.skip(f"steering unavailable: {steering.unavailable()}")
    group = steering.open_group(transport, target, free_port(), 3)
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        for source in sources:
            seen = []
            for _ in range(12):  # a new source port each time
                with socket.socket(family, kind) as client:
                    client.bind((source, 0))
                    if transport == "udp":
                        client.sendto(b"x", (target, group[0].getsockname()[1]))
                    else:
                        client.connect((target, group[0].getsockname()[1]))
                    deadline = time.monotonic() + 2
                    got = []
                    while not got and time.monotonic() < deadline:
                        got = arrivals(group, transport)
                        time.sleep(0.002)
                    seen += got
            assert seen == [steering.slot(source, 3)] * 12, source
    finally:
        for sock in group:
            sock.close()


def test_port_in_use_is_still_an_error():
    """SO_REUSEPORT must not let a second responder join the first one's TCP group (the listeners
    open TCP first; over UDP, SO_REUSEADDR let a second bind succeed before steering too)."""
    if steering.unavailable():
        pytest.skip("steering unavailable")
    port = free_port()
    group = steering.open_group("tcp", "127.0.0.1", port, 2)
    try:
        with pytest.raises(OSError):
            steering.open_group("tcp", "127.0.0.1", port, 2)
        with pytest.raises(OSError):
            open_listener("tcp", "127.0.0.1", port)
    finally:
        for sock in group:
            sock.close()


def blast(port: int, source: str, count: int) -> int:
    """`count` OPTIONS from `source`, each from its own port, sent at once; how many got an answer."""
    clients = []
    try:
        for index in range(count):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            clients.append(client)
            client.bind((source, 0))
            client.sendto(request("OPTIONS", source=source, call_id=f"b{index}"), ("127.0.0.1", port))
        answered = 0
        deadline = time.monotonic() + 1.0
        for client in clients:
            client.settimeout(max(0.01, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                answered += client.recv(65535).startswith(b"SIP/2.0 403")
        return answered
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("source", [PEER_SOURCE, MAIN_SOURCE])
def test_a_sources_rate_bucket_is_one_whatever_its_ports(start_responder, source):
    """Helpers would each keep a bucket (up to 2 x burst answers); steered peers keep one."""
    responder = start_responder("On", workers=2, settings="[limits]\nrate_per_source = 1\nrate_burst = 3\n")
    responder.wait_log("peers by source")
    assert blast(responder.port, source, 12) == 3
    assert responder.stats()["dropped_rate"] == 9


def stranger_register(source: str, user: str = "9999", cseq: int = 1, headers: str = "") -> bytes:
    return request("REGISTER", user=user, source=source, cseq=cseq, call_id=f"s{source}", headers=headers,
                   branch=f"z9hG4bKs{cseq}")  # fmt: skip


def guess(port: int, source: str, attempt: int) -> None:
    """A wrong answer to a nonce sent to `source`, from a new port each time: one failed attempt."""
    challenge = udp_exchange(port, stranger_register(source, cseq=2 * attempt), source, timeout=2)
    assert challenge.startswith(b"SIP/2.0 401")
    params = next(p for _name, p in sip_codec.challenges(challenge))
    header = sip_codec.DigestClient(params, "9999", "guess", "REGISTER", "sip:9999@127.0.0.1").header(1, "c0")
    answer = stranger_register(source, cseq=2 * attempt + 1, headers=f"Authorization: {header}")
    reply = udp_exchange(port, answer, source, timeout=2)
    assert reply is not None and reply.startswith(b"SIP/2.0 401")


@pytest.mark.parametrize("source", [PEER_SOURCE, MAIN_SOURCE])
def test_a_suspension_holds_across_ports_and_transports(start_responder, source):
    responder = start_responder("On", softswitch="SS_AUTHENTICATION_MAX_RETRY=2\n", workers=2,
                                endpoints=ENDPOINTS)  # fmt: skip
    responder.wait_log("peers by source")
    for attempt in range(2):
        guess(responder.port, source, attempt)
    # Suspended: nothing back over UDP from any port, and a TCP connection is closed unanswered.
    for index in range(5):
        data = request("OPTIONS", source=source, call_id=f"after{index}")
        assert udp_exchange(responder.port, data, source, timeout=0.3) is None
    address = ("127.0.0.1", responder.port)
    with socket.create_connection(address, timeout=2, source_address=(source, 0)) as tcp:
        try:
            tcp.sendall(request("OPTIONS", source=source, call_id="tcp", transport="TCP"))
            assert tcp.recv(65535) == b""
        except ConnectionResetError:
            pass
    # Another stranger is still answered, by whichever process it is steered to.
    other = PEER_SOURCE if source == MAIN_SOURCE else MAIN_SOURCE
    reply = udp_exchange(responder.port, request("OPTIONS", source=other), other, timeout=2)
    assert reply.startswith(b"SIP/2.0 403")
    stats = responder.stats()
    assert stats["suspensions"] == 1
    assert stats["dropped_suspended"] >= 5


def test_fallback_to_helpers_when_steering_is_refused(start_responder, monkeypatch):
    monkeypatch.setenv(steering.FORCE_OFF, "off")  # the responder inherits it: as if the kernel refused
    responder = start_responder("On", workers=2, settings="[limits]\nrate_per_source = 0\n")
    responder.wait_log("helpers: steering unavailable")
    for index in range(10):
        data = request("OPTIONS", source=PEER_SOURCE, call_id=f"f{index}")
        assert udp_exchange(responder.port, data, PEER_SOURCE, timeout=2).startswith(b"SIP/2.0 403")
    gateway = udp_exchange(responder.port, request("OPTIONS", source="127.0.0.20"), "127.0.0.20", timeout=2)
    assert gateway.startswith(b"SIP/2.0 200")
    deadline = time.monotonic() + 3  # helpers report their counters once a second
    while responder.stats()["received"] < 11 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert responder.stats()["received"] == 11


def test_a_peers_requests_reach_the_trace_of_the_main_process(start_responder):
    responder = start_responder("Off", workers=2)
    responder.wait_log("peers by source")
    assert responder.cli("trace", "on").stdout.strip() == "trace on"
    for source in (PEER_SOURCE, MAIN_SOURCE):
        assert udp_exchange(responder.port, request("OPTIONS", source=source), source, timeout=0.3) is None
    assert responder.cli("trace", "off").stdout.strip() == "trace off"  # the main process flushes the file
    events = [json.loads(line) for line in responder.trace.read_text().splitlines()]
    assert sorted(event["src"] for event in events) == [PEER_SOURCE, MAIN_SOURCE]
    assert {event["decision"] for event in events} == {"drop"}


def test_a_peer_that_dies_is_forked_again(start_responder):
    responder = start_responder("On", workers=2)
    responder.wait_log("peers by source")
    children = Path(f"/proc/{responder.proc.pid}/task/{responder.proc.pid}/children").read_text().split()
    assert len(children) == 1
    os.kill(int(children[0]), signal.SIGKILL)
    responder.wait_log("worker 1 ended; started it again")
    reply = udp_exchange(responder.port, request("OPTIONS", source=PEER_SOURCE), PEER_SOURCE, timeout=2)
    assert reply is not None and reply.startswith(b"SIP/2.0 403")
