"""Steering by source address (steering.py) and what peers share (peers.py), without sockets."""

import socket
import struct

import pytest
from resp_unit_helpers import answer_challenge, make_config, sip

from sipresponder import steering
from sipresponder.core import Core
from sipresponder.peers import _encode_shared, apply_shared, start_journal

NET = steering.SKF_NET_OFF & 0xFFFFFFFF


def instructions(code: bytes) -> list[tuple[int, int]]:
    return [(op, k) for op, _, _, k in struct.iter_unpack("=HBBI", code)]


def test_ipv4_program_loads_the_source_address_and_takes_it_modulo_the_group():
    assert instructions(steering.program(socket.AF_INET, 3)) == [
        (0x20, NET + 12),  # A = IPv4 source address (network header offset 12)
        (0x94, 3),  # A %= 3
        (0x16, 0),  # return A
    ]


def test_ipv6_program_folds_the_64_bit_prefix():
    assert instructions(steering.program(socket.AF_INET6, 2)) == [
        (0x20, NET + 8), (0x07, 0), (0x20, NET + 12), (0xAC, 0), (0x94, 2), (0x16, 0),
    ]  # fmt: skip


@pytest.mark.parametrize(("address", "count", "expected"), [
    ("127.0.0.1", 2, 1), ("127.0.0.6", 2, 0), ("127.0.0.5", 3, 0x7F000005 % 3), ("::1", 2, 0),
])  # fmt: skip
def test_slot_mirrors_the_program(address, count, expected):
    assert steering.slot(address, count) == expected


def test_one_ipv6_prefix_is_one_slot():
    """A /64 is counted and suspended as one source, so all of it meets in one process."""
    slots = {steering.slot(f"2001:db8:1:2::{host:x}", 4) for host in range(1, 200)}
    assert len(slots) == 1
    assert len({steering.slot(f"2001:db8:1:{net:x}::1", 4) for net in range(64)}) == 4


def test_steering_can_be_forced_off(monkeypatch):
    monkeypatch.setenv(steering.FORCE_OFF, "off")
    assert steering.unavailable() == "SIPRESPONDER_STEERING=off"
    with pytest.raises(steering.SteeringUnavailable):
        steering.open_group("udp", "127.0.0.1", 5060, 2)


def test_a_refused_program_is_reported_not_raised(monkeypatch):
    def refuse(sock, count):
        raise OSError(92, "Protocol not available")

    monkeypatch.delenv(steering.FORCE_OFF, raising=False)
    monkeypatch.setattr(steering, "attach", refuse)
    assert steering.unavailable() == "Protocol not available"


def cores() -> tuple[Core, Core]:
    cfg = make_config("SS_REPLY_UNAUTHORIZED=On\n")
    first, second = Core(cfg, b"k" * 32, 1000.0), Core(cfg, b"k" * 32, 1000.0)
    start_journal(first)
    start_journal(second)
    return first, second


def register(core: Core, now: float, right: bool = True) -> bytes:
    branch = f"z9hG4bK{now}"  # a new transaction each time, not a retransmission
    challenge = core.handle(sip("REGISTER", branch=branch), "198.18.10.5", 5060, "udp", now)[0][1]
    header = answer_challenge(challenge, "1001", "s3cret" if right else "wrong", "REGISTER", algorithm="MD5")
    answer = sip("REGISTER", headers=header, cseq=2, branch=branch + "b")
    return core.handle(answer, "198.18.10.5", 5060, "udp", now)[0][1]


def test_a_registration_reaches_the_other_peers():
    first, second = cores()
    assert register(first, 1000.0).startswith(b"SIP/2.0 200")
    message = _encode_shared(first, 1000.0)
    assert _encode_shared(first, 1000.0) is None  # sent once
    apply_shared(second, message)
    assert second.classifier.source_kind("198.18.10.5", False) == "registered"
    assert second.registrar.changed == set()  # adopted, not re-shared


def test_account_failures_and_trust_reach_the_other_peers():
    first, second = cores()
    register(first, 1000.0, right=False)
    message = _encode_shared(first, 1000.0)
    assert message["shared"][0][:2] == ["afail", "1001"]
    apply_shared(second, message)
    assert second.account_guard.table.get("1001")[0] == 1
    register(first, 1001.0)
    apply_shared(second, _encode_shared(first, 1001.0))
    assert second.trusted["1001"] == ("198.18.10.5",)


def test_a_suspension_reaches_the_other_peers():
    _, second = cores()
    apply_shared(second, {"suspend": [["198.18.99.1", 2000.0]]})
    assert second.classifier.suspended("198.18.99.1", 1500.0)
    assert not second.classifier.suspended("198.18.99.1", 2001.0)
