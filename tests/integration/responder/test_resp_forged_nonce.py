"""Suspensions cannot be aimed: only a wrong answer to a nonce we sent to that address counts.

On loopback any 127.0.0.0/8 address can be bound, so a test socket on the trunk's address
(127.0.0.20) stands in for a spoofer that forges it: the REGISTERs are sent one way and their
replies never read.
"""

import re
import socket
import time

import pytest
from resp_live_helpers import request, udp_exchange

pytestmark = pytest.mark.integration

TRUNK, PHONE, STRANGER = "127.0.0.20", "127.0.0.10", "127.0.0.5"
# The hook is on, with a set that does not exist: an attempted ban shows in block_hook_calls.
HOOK = '[blocking]\nipset4 = "sgtest-absent-block4"\n'


def digest(nonce: str, index: int) -> str:
    """A wrong answer (the response is not computed from any password) to `nonce`."""
    return (
        f'Authorization: Digest username="1001", realm="sipguard", nonce="{nonce}", uri="sip:127.0.0.1", '
        f'response="{"0" * 32}", algorithm=MD5, qop=auth, nc={index + 1:08x}, cnonce="c{index}"'
    )


def send_one_way(port: int, source: str, nonce: str, count: int = 8) -> None:
    """`count` REGISTERs from `source` answering `nonce`; the replies are never read."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for i in range(count):
            data = request("REGISTER", source=source, headers=digest(nonce, i), cseq=i + 1,
                           call_id=f"spoof-{source}-{i}", branch=f"z9hG4bKspoof{i}")  # fmt: skip
            sock.sendto(data, ("127.0.0.1", port))


def settled_stats(responder, received: int) -> dict[str, float]:
    """The counters once `received` requests are counted (helpers report once a second)."""
    deadline = time.monotonic() + 5
    stats = responder.stats()
    while stats["received"] < received and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = responder.stats()
    return stats


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("mode", ["Off", "On"])
def test_eight_spoofed_registers_with_a_made_up_nonce_suspend_nobody(start_responder, mode, workers):
    responder = start_responder(mode, settings=HOOK, workers=workers)
    made_up = f"{int(time.time()):x}.{'0' * 24}.1"  # shaped like ours, but no MAC of ours
    for source in (TRUNK, PHONE):  # the trunk, and a phone address of the account network
        send_one_way(responder.port, source, made_up)
    stats = settled_stats(responder, 16)
    assert stats["suspensions"] == 0 and stats["auth_failure"] == 0
    # The trunk's next request and the phone's next REGISTER are answered as usual.
    reply = udp_exchange(responder.port, request("OPTIONS", source=TRUNK, call_id="after"), TRUNK)
    assert reply is not None and reply.startswith(b"SIP/2.0 200 OK")
    reply = udp_exchange(responder.port, request("REGISTER", source=PHONE, call_id="after"), PHONE)
    assert reply is not None and reply.startswith(b"SIP/2.0 401 Unauthorized")
    time.sleep(0.3)  # the hook runs in a thread: give a wrongly queued ban time to show
    assert responder.stats().get("block_hook_calls", 0) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_wrong_answers_to_our_own_nonce_still_suspend_and_reach_the_hook(start_responder, workers):
    # The stranger's challenge may come from a helper: main must recognise that nonce as issued to it.
    responder = start_responder("On", settings=HOOK, workers=workers)
    challenge = udp_exchange(responder.port, request("REGISTER", source=STRANGER), STRANGER)
    assert challenge is not None and challenge.startswith(b"SIP/2.0 401")
    nonce = re.search(rb'nonce="([^"]+)"', challenge).group(1).decode()
    for i in range(6):  # SS_AUTHENTICATION_MAX_RETRY defaults to 6
        data = request("REGISTER", source=STRANGER, headers=digest(nonce, i), cseq=i + 2,
                       branch=f"z9hG4bKwrong{i}")  # fmt: skip
        reply = udp_exchange(responder.port, data, STRANGER)
        assert reply is not None and reply.startswith(b"SIP/2.0 401")
    again = request("REGISTER", source=STRANGER, call_id="after", branch="z9hG4bKafter")
    assert udp_exchange(responder.port, again, STRANGER, timeout=0.3) is None
    stats = responder.stats()
    assert stats["suspensions"] == 1 and stats["auth_failure"] == 6
    deadline = time.monotonic() + 5
    while responder.stats().get("block_hook_calls", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert responder.stats()["block_hook_calls"] == 1
