"""`--workers 2`: helpers share the UDP sockets; state stays consistent in the main process."""

import shutil
import signal
import socket
import time

import pytest
from resp_live_helpers import CLIENT_ENDPOINTS, MD5_FIRST, request, sipp_register, udp_exchange

pytestmark = pytest.mark.integration


def test_strangers_are_answered_per_the_table_by_every_worker(start_responder):
    responder = start_responder("On", workers=2, settings="[limits]\nrate_per_source = 0\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.5", 0))
        sock.settimeout(2)
        replies = []
        for burst in range(10):  # bursts of 20: small enough for the client's receive buffer
            for i in range(20):
                data = request("OPTIONS", source="127.0.0.5", call_id=f"w{burst}-{i}")
                sock.sendto(data, ("127.0.0.1", responder.port))
            replies += [sock.recv(65535) for _ in range(20)]
    assert all(r.startswith(b"SIP/2.0 403 Forbidden") for r in replies)
    responder.wait_log("2 workers")
    deadline = time.monotonic() + 3  # helpers report their counters once a second
    while responder.stats()["received"] < 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert responder.stats()["received"] == 200


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
def test_registration_through_any_worker_is_recognised_everywhere(start_responder, tmp_path):
    responder = start_responder("Off", workers=2, endpoints=CLIENT_ENDPOINTS, settings=MD5_FIRST)
    assert (
        udp_exchange(responder.port, request("OPTIONS", source="127.0.0.1"), "127.0.0.1", timeout=0.3) is None
    )
    assert sipp_register(responder.port, tmp_path).returncode == 0
    # Many requests from many source ports: whichever process reads them, all are answered.
    for i in range(20):
        reply = udp_exchange(
            responder.port, request("OPTIONS", source="127.0.0.1", call_id=f"r{i}"), "127.0.0.1"
        )
        assert reply is not None and reply.startswith(b"SIP/2.0 200 OK")
    assert (
        udp_exchange(responder.port, request("OPTIONS", source="127.0.0.5"), "127.0.0.5", timeout=0.3) is None
    )


def test_reload_refork_keeps_serving(start_responder):
    responder = start_responder("On", workers=2)
    responder.softswitch.write_text(f"SS_REPLY_UNAUTHORIZED=Off\nSS_SIP_PORT={responder.port}\n")
    responder.proc.send_signal(signal.SIGHUP)
    responder.wait_log("configuration reloaded")
    for i in range(10):
        data = request("OPTIONS", source="127.0.0.5", call_id=f"x{i}")
        assert udp_exchange(responder.port, data, "127.0.0.5", timeout=0.2) is None
    reply = udp_exchange(responder.port, request("OPTIONS", source="127.0.0.20"), "127.0.0.20")
    assert reply.startswith(b"SIP/2.0 200 OK")


def test_a_reload_does_not_count_the_helpers_again(start_responder):
    """Issue 11: helpers forked at a reload used to start from a copy of the main process's counters,
    which the pool then added to the main's own (10,000 received became 17,345 after one SIGHUP)."""
    responder = start_responder("On", workers=2, settings="[limits]\nrate_per_source = 0\n")
    # The gateway's requests are always handled by the main process; the stranger's by either.
    for source, count in (("127.0.0.20", 30), ("127.0.0.5", 30)):
        for i in range(count):
            data = request("OPTIONS", source=source, call_id=f"c{source}-{i}")
            assert udp_exchange(responder.port, data, source, timeout=2) is not None
    deadline = time.monotonic() + 3  # helpers report their counters once a second
    while responder.stats()["received"] < 60 and time.monotonic() < deadline:
        time.sleep(0.2)
    before = responder.stats()
    assert before["received"] == 60
    for reloads in (1, 2):
        responder.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while responder.stats()["reloads"] < reloads and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # the new helpers have reported at least once
        after = responder.stats()
        for name in ("received", "replied_forbidden", "replied_ok"):
            assert after[name] == before[name], name
        assert after["reloads"] == reloads
    # What a helper counted in its last second before a reload is not lost either.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.5", 0))
        sock.settimeout(2)
        for i in range(40):
            data = request("OPTIONS", source="127.0.0.5", call_id=f"last-{i}")
            sock.sendto(data, ("127.0.0.1", responder.port))
        replies = [sock.recv(65535) for _ in range(40)]
    assert all(r.startswith(b"SIP/2.0 403 Forbidden") for r in replies)
    responder.proc.send_signal(signal.SIGHUP)  # at once: within a second of the helper's requests
    deadline = time.monotonic() + 5
    while responder.stats()["reloads"] < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert responder.stats()["received"] == before["received"] + 40
