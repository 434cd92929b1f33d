"""Numbers in SIP headers are ASCII digits only (issue 11, item 5).

str.isdigit() is true for '¹' and '٣' too; before the fix '¹' reached int() and raised inside the
core (an internal error and a silent drop) instead of giving the sender a 400.
"""

import pytest
from resp_unit_helpers import answer_challenge, make_config, sip

from sipresponder import message
from sipresponder.core import Core
from sipresponder.message import ParseError, parse_request, quick_parse, via_sent_by

GATEWAY = "198.18.20.50"
STRANGER = "203.0.113.7"
NOW = 1_000_000.0
VIA = b"Via: SIP/2.0/UDP 198.18.10.5:5060;"

SUP1 = "¹".encode("latin-1")  # b"\xb9": the parser decodes latin-1, so this byte is the text '¹'

BROKEN = {
    "cseq": lambda d: d.replace(b"CSeq: 1 OPTIONS", b"CSeq: " + SUP1 + b" OPTIONS"),
    "via-port": lambda d: d.replace(VIA, b"Via: SIP/2.0/UDP 198.18.10.5:506" + SUP1 + b";"),
    "content-length": lambda d: d.replace(b"Content-Length: 0", b"Content-Length: " + SUP1),
    "max-forwards": lambda d: d.replace(b"Max-Forwards: 70", b"Max-Forwards: 7" + SUP1),
}


@pytest.mark.parametrize("field", sorted(BROKEN))
def test_a_non_ascii_digit_is_a_parse_error_with_an_answerable_request(field):
    data = BROKEN[field](sip("OPTIONS"))
    assert data != sip("OPTIONS")
    with pytest.raises(ParseError) as caught:
        parse_request(data)
    assert caught.value.status == 400
    assert caught.value.request is not None


@pytest.mark.parametrize("field", sorted(BROKEN))
def test_a_recognised_source_gets_a_400_and_a_stranger_the_decision_table_answer(field):
    data = BROKEN[field](sip("OPTIONS"))
    on = Core(make_config("SS_REPLY_UNAUTHORIZED=On"), b"k" * 32, NOW)
    off = Core(make_config("SS_REPLY_UNAUTHORIZED=Off"), b"k" * 32, NOW)
    for core in (on, off):
        reply = core.handle(data, GATEWAY, 5060, "udp", NOW)
        assert [a[1][:12] for a in reply if a[0] == "send"] == [b"SIP/2.0 400 "]
    assert off.handle(data, STRANGER, 5060, "udp", NOW) == ()  # Off: silence to an unknown source
    # On: a stranger gets an answer (its 403 when the quick parse suffices, else the 400), never a bug.
    stranger = [a[1][:12] for a in on.handle(data, STRANGER, 5060, "udp", NOW) if a[0] == "send"]
    assert stranger in ([b"SIP/2.0 400 "], [b"SIP/2.0 403 "])
    assert on.stats.counts["internal_errors"] == off.stats.counts["internal_errors"] == 0


def test_numbers_are_ascii_digits_only():
    assert message.number("70") == 70
    assert [message.number(text) for text in ("¹", "٣", "1²", "", " 1", "+1", "1_0")] == [None] * 7


def test_a_bad_via_port_is_not_taken_by_the_quick_parse():
    assert quick_parse(BROKEN["via-port"](sip("OPTIONS"))) is None
    assert via_sent_by("SIP/2.0/UDP 198.18.10.5:506¹") == ("198.18.10.5", None)
    assert via_sent_by("SIP/2.0/UDP 198.18.10.5:65536") == ("198.18.10.5", None)
    assert via_sent_by("SIP/2.0/UDP [2001:db8::1]:5070") == ("2001:db8::1", 5070)
    assert via_sent_by("SIP/2.0/UDP 198.18.10.5") == ("198.18.10.5", None)


@pytest.mark.parametrize("where", ["header", "contact"])
def test_a_non_ascii_expires_in_an_authenticated_register_is_a_400(where):
    c = Core(make_config("SS_REPLY_UNAUTHORIZED=Off"), b"k" * 32, NOW)
    first = c.handle(sip("REGISTER", call_id="e1"), "198.18.10.5", 5060, "udp", NOW)
    auth = answer_challenge(first[0][1], "1001", "s3cret", "REGISTER")
    data = sip("REGISTER", cseq=2, headers=auth + "\r\nExpires: 60", call_id="e1")
    if where == "header":
        data = data.replace(b"Expires: 60", b"Expires: " + SUP1)
    else:
        data = data.replace(b"198.18.10.5:5060>", b"198.18.10.5:5060>;expires=" + SUP1)
    reply = c.handle(data, "198.18.10.5", 5060, "udp", NOW)
    assert [a[1][:12] for a in reply if a[0] == "send"] == [b"SIP/2.0 400 "]
