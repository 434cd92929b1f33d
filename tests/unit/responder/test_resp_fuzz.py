"""Fuzzing the parser and the state machine with hypothesis: no exception escapes, no hang,
and not one byte for an unknown source in Off mode, whatever the bytes."""

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resp_unit_helpers import make_config, sip

from sipresponder.core import Core
from sipresponder.message import NotARequest, ParseError, parse_request, quick_parse
from sipresponder.sip_codec import frame

SEEDS = [
    sip("OPTIONS"),
    sip("REGISTER", headers='Authorization: Digest username="1001", nonce="1.2.3", response="00"'),
    sip("INVITE", headers="Content-Type: application/sdp", body="v=0\r\n"),
    sip("ACK"),
]
FUZZ = settings(max_examples=400, deadline=500, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw):
    """A valid request with a few random byte edits (insert, delete, replace) - near misses find bugs."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(
            st.sampled_from(
                [
                    b"\r\n",
                    b":",
                    b" ",
                    b";",
                    b",",
                    b"<",
                    b">",
                    b'"',
                    b"\x00",
                    b"\xff",
                    b"SIP/2.0",
                    b"Content-Length: 99",
                    b"\r\n\r\n",
                ]
            )
            | st.binary(max_size=8)
        )
        if edit == "insert":
            data[where:where] = chunk
        elif edit == "delete":
            del data[where : where + len(chunk)]
        else:
            data[where : where + len(chunk)] = chunk
    return bytes(data)


messages = st.one_of(mutated(), st.binary(max_size=600))


@FUZZ
@given(messages)
def test_parser_raises_only_its_own_errors(data):
    with contextlib.suppress(ParseError, NotARequest):
        parse_request(data)
    quick_parse(data)  # never raises: returns a request or None


@FUZZ
@given(messages, st.sampled_from(["udp", "tcp"]))
def test_off_mode_never_answers_a_stranger(data, transport):
    core = Core(make_config("SS_REPLY_UNAUTHORIZED=Off"), b"k" * 32, 1000.0)
    actions = core.handle(data, "203.0.113.9", 5060, transport, 1000.0)
    assert not [a for a in actions if a[0] == "send"]


@FUZZ
@given(messages, st.sampled_from(["198.18.20.50", "198.18.10.5", "203.0.113.9"]))
def test_on_mode_answers_only_with_sip_responses(data, source):
    core = Core(make_config("SS_REPLY_UNAUTHORIZED=On"), b"k" * 32, 1000.0)
    for action in core.handle(data, source, 5060, "udp", 1000.0):
        if action[0] == "send":
            assert action[1].startswith(b"SIP/2.0 ") and action[1].endswith(b"\r\n\r\n")


@FUZZ
@given(st.binary(max_size=3000), st.integers(100, 2048))
def test_tcp_framing_always_makes_progress_or_waits(stream, limit):
    message, rest, too_big = frame(stream, limit)
    if message is not None:
        assert len(rest) < len(stream) and len(message) <= limit
    assert not (message is not None and too_big)
