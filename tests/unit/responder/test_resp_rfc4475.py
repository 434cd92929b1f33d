"""RFC 4475's 49 torture messages through the sans-IO core (vectors: tests/data/rfc4475/).

From a recognised source each gets what cases.toml says the RFC expects; from a stranger in Off
mode not one gets a byte back.
"""

import importlib.util
from pathlib import Path

import pytest
from resp_unit_helpers import make_config

from sipresponder.core import Core

DATA = Path(__file__).resolve().parents[2] / "data" / "rfc4475"
_spec = importlib.util.spec_from_file_location("rfc4475_vectors", DATA / "rfc4475.py")
rfc4475 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rfc4475)

CASES = rfc4475.cases()
GATEWAY = "198.18.20.50"  # a [[gateway]] in resp_unit_helpers.ENDPOINTS
STRANGER = "203.0.113.7"
NOW = 1_000_000.0


def outcome(actions) -> tuple[str, bytes]:
    """("none", b"") or (status code, the reply); at most one reply per message."""
    sent = [a[1] for a in actions if a[0] == "send"]
    assert len(sent) <= 1, sent
    return (sent[0][8:11].decode(), sent[0]) if sent else ("none", b"")


def check(name: str, got: str, reply: bytes) -> None:
    case = CASES[name]
    assert got in case["expect"], (
        f"{name} ({case['section']} {case['title']}): got {got}, want {case['expect']}"
    )
    if "header" in case and got == case["expect"][0]:
        assert b"\r\n" + case["header"].encode() in reply, reply


def test_there_are_49_vectors_and_each_has_an_expectation():
    files = sorted(path.stem for path in DATA.glob("*.sip"))
    assert len(files) == 49
    assert files == sorted(CASES)


def test_the_odd_bytes_survive_the_notation():
    assert rfc4475.message("noreason").startswith(b"SIP/2.0 100 \r\n")
    assert rfc4475.message("trws").startswith(b"OPTIONS sip:remote-target@example.com SIP/2.0  \r\n")
    assert b"\\\x07 NUL:\\\x00 DEL:\\\x7f" in rfc4475.message("intmeth")
    assert b"\x00" in rfc4475.message("mpart01").partition(b"\r\n\r\n")[2]
    for name in CASES:
        head = rfc4475.message(name).partition(b"\r\n\r\n")[0]
        assert b"\n" not in head.replace(b"\r\n", b""), name  # no bare LF in a head


@pytest.mark.parametrize("mode", ["On", "Off"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_recognised_source_gets_what_rfc_4475_expects(name, mode):
    core = Core(make_config(f"SS_REPLY_UNAUTHORIZED={mode}"), b"k" * 32, NOW)
    got, reply = outcome(core.handle(rfc4475.message(name), GATEWAY, 5060, "udp", NOW))
    check(name, got, reply)


@pytest.mark.parametrize("name", list(CASES))
def test_a_stranger_in_off_mode_gets_nothing(name):
    core = Core(make_config("SS_REPLY_UNAUTHORIZED=Off"), b"k" * 32, NOW)
    assert core.handle(rfc4475.message(name), STRANGER, 5060, "udp", NOW) == ()
    assert core.handle(rfc4475.message(name), STRANGER, 5060, "tcp", NOW) == (("close",),)


@pytest.mark.parametrize("name", list(CASES))
def test_a_stranger_in_on_mode_gets_at_most_one_answer(name):
    core = Core(make_config("SS_REPLY_UNAUTHORIZED=On"), b"k" * 32, NOW)
    got, _ = outcome(core.handle(rfc4475.message(name), STRANGER, 5060, "udp", NOW))
    assert got in ("none", "400", "401", "403", "406", "415", "416", "420", "505")
