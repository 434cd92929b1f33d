"""Parsing and response building, including RFC 4475-style torture cases."""

import pytest
from resp_unit_helpers import sip

from sipresponder.message import (
    NotARequest,
    ParseError,
    build_response,
    parse_request,
    quick_parse,
    route_via,
    split_top_via,
    uri_user,
)


def test_parses_a_plain_request():
    request = parse_request(sip("OPTIONS", headers="v: SIP/2.0/UDP 198.18.9.9;branch=z9hG4bKsecond"))
    assert request.method == "OPTIONS"
    assert request.headers["via"][1].endswith("z9hG4bKsecond")  # compact form folded into "via"
    assert request.user_agent == "unit-test"
    assert uri_user(request.get("to")) == "1001"


def test_folded_header_lines_are_joined():
    data = sip("OPTIONS").replace(b"User-Agent: unit-test", b"User-Agent: unit\r\n   test")
    assert parse_request(data).user_agent == "unit test"


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda d: d.replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia", 1), 505),
        (lambda d: d.replace(b"OPTIONS sip:1001@", b"OPTIONS http://1001@", 1), 416),
        (lambda d: d.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), 400),
        (lambda d: d.replace(b"CSeq: 1 OPTIONS", b"CSeq: 99999999999 OPTIONS"), 400),
        (lambda d: d.replace(b"Content-Length: 0", b"Content-Length: 50"), 400),
        (lambda d: d.replace(b"Content-Length: 0", b"Content-Length: 0\r\nRequire: nothing-we-know"), 420),
        (lambda d: d.replace(b"Max-Forwards: 70", b"Max-Forwards: lots"), 400),
        (lambda d: d.replace(b"OPTIONS sip:", b"OPTIONS  sip:", 1), 400),
        (lambda d: d.replace(b"Call-ID: call-1@test", b"Call-ID: a\r\nCall-ID: b"), 400),
        (lambda d: d.replace(b"User-Agent: unit-test", b"Bad Header Line"), 400),
    ],
)
def test_torture_cases_map_to_the_rfc_status(mutate, status):
    with pytest.raises(ParseError) as caught:
        parse_request(mutate(sip("OPTIONS")))
    assert caught.value.status == status
    assert caught.value.request is not None  # answerable: it has the headers a reply needs


def test_invite_with_a_body_we_cannot_read_is_415():
    data = sip("INVITE", headers="Content-Type: application/x-unknown", body="hello")
    with pytest.raises(ParseError) as caught:
        parse_request(data)
    assert caught.value.status == 415
    assert ("Accept", "application/sdp") in caught.value.extra


@pytest.mark.parametrize("line", [b"Via: SIP/2.0/UDP 198.18.10.5:5060;branch=z9hG4bKtest1;rport\r\n",
                                  b"CSeq: 1 OPTIONS\r\n"])  # fmt: skip
def test_without_a_via_or_a_cseq_a_request_cannot_be_answered(line):
    with pytest.raises(ParseError) as caught:
        parse_request(sip("OPTIONS").replace(line, b""))
    assert caught.value.request is None


def test_without_call_id_from_or_to_a_request_still_gets_its_400():
    """RFC 4475 §3.3.1 (insuf): a reply needs only Via and CSeq; it copies what else there is."""
    data = (
        sip("OPTIONS")
        .replace(b"Call-ID: call-1@test\r\n", b"")
        .replace(b"To: <sip:1001@198.18.0.1>\r\n", b"")
    )
    with pytest.raises(ParseError) as caught:
        parse_request(data)
    assert (caught.value.status, caught.value.reason) == (400, "Missing Mandatory Header")
    reply, port = build_response(caught.value.request, 400, "Missing Mandatory Header", "198.18.10.5", 5062)
    assert reply.startswith(b"SIP/2.0 400 Missing Mandatory Header\r\nVia: SIP/2.0/UDP 198.18.10.5:5060;")
    assert b"\r\nFrom: <sip:1001@198.18.0.1>;tag=abc\r\nCSeq: 1 OPTIONS\r\n" in reply
    assert b"Call-ID" not in reply and b"\r\nTo:" not in reply and port == 5062


def test_responses_and_keepalives_are_not_requests():
    with pytest.raises(NotARequest):
        parse_request(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n")
    with pytest.raises(NotARequest):
        parse_request(b"\r\n\r\n")


def test_rport_and_received_follow_rfc_3581():
    via, port = route_via("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx;rport", "198.18.1.1", 40000)
    assert via == "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx;received=198.18.1.1;rport=40000"
    assert port == 40000


def test_without_rport_the_reply_goes_to_the_via_port_of_the_source_address():
    via, port = route_via("SIP/2.0/UDP 198.18.1.1:5070;branch=z9hG4bKx", "198.18.1.1", 40000)
    assert via.endswith("branch=z9hG4bKx")  # sent-by host is the source: no received param
    assert port == 5070


def test_response_copies_dialog_headers_and_adds_a_to_tag():
    request = parse_request(sip("OPTIONS"))
    data, _ = build_response(request, 403, "Forbidden", "198.18.10.5", 5060)
    text = data.decode()
    assert text.startswith("SIP/2.0 403 Forbidden\r\n")
    assert "Call-ID: call-1@test\r\n" in text and "CSeq: 1 OPTIONS\r\n" in text
    assert "To: <sip:1001@198.18.0.1>;tag=" in text
    assert "Server:" not in text and "User-Agent" not in text  # no fingerprint by default
    assert text.endswith("Content-Length: 0\r\n\r\n")
    again, _ = build_response(parse_request(sip("OPTIONS")), 403, "Forbidden", "198.18.10.5", 5060)
    assert again == data  # a retransmission gets the same To tag


def test_quick_parse_agrees_with_the_full_parser_on_what_a_reply_needs():
    data = sip("REGISTER", headers='Authorization: Digest username="1001"')
    quick, full = quick_parse(data), parse_request(data)
    for name in ("via", "from", "to", "call-id", "cseq", "user-agent", "authorization"):
        assert quick.headers[name] == full.headers[name]
    assert quick_parse(data.replace(b"CSeq: 1 REGISTER", b"CSeq: 1 INVITE")) is None
    assert quick_parse(b"garbage") is None


def test_to_tag_is_added_unless_the_to_header_already_has_one():
    tagged = parse_request(
        sip("OPTIONS").replace(b"To: <sip:1001@198.18.0.1>", b"To: <sip:1001@198.18.0.1>;tag=x")
    )
    data, _ = build_response(tagged, 200, "OK", "198.18.10.5", 5060)
    assert b"\r\nTo: <sip:1001@198.18.0.1>;tag=x\r\n" in data
    uri_only = parse_request(sip("OPTIONS", user="tagger"))
    data, _ = build_response(uri_only, 200, "OK", "198.18.10.5", 5060)
    assert b"\r\nTo: <sip:tagger@198.18.0.1>;tag=" in data


def test_a_via_without_sent_by_is_dropped_not_answered():
    data = sip("OPTIONS").replace(b"Via: SIP/2.0/UDP 198.18.10.5:5060;branch=z9hG4bKtest1;rport", b"Via: ")
    with pytest.raises(ParseError) as caught:
        parse_request(data)
    assert caught.value.request is None
    assert quick_parse(data) is None


def test_a_known_header_name_without_colon_is_still_malformed():
    parse_request(sip("OPTIONS"))  # "User-Agent" is now a known spelling
    with pytest.raises(ParseError) as caught:
        parse_request(sip("OPTIONS").replace(b"User-Agent: unit-test", b"User-Agent"))
    assert caught.value.reason == "Malformed Header"


@pytest.mark.parametrize(("line", "top", "rest"), [
    ("SIP/2.0/UDP a.test;branch=z9hG4bK1", "SIP/2.0/UDP a.test;branch=z9hG4bK1", ""),
    ("SIP/2.0/UDP a.test;branch=z9hG4bK1 , SIP/2.0/TCP b.test", "SIP/2.0/UDP a.test;branch=z9hG4bK1",
     ", SIP/2.0/TCP b.test"),
    # A comma inside a quoted parameter value, after an escaped quote, is not a separator.
    ('SIP/2.0/UDP a.test;x="q\\",r";branch=z9hG4bK2, SIP/2.0/UDP b.test',
     'SIP/2.0/UDP a.test;x="q\\",r";branch=z9hG4bK2', ", SIP/2.0/UDP b.test"),
    ('SIP/2.0/UDP a.test;x="only, quoted"', 'SIP/2.0/UDP a.test;x="only, quoted"', ""),
])
def test_split_top_via_splits_outside_quoted_strings(line, top, rest):
    assert split_top_via(line) == (top, rest)
