"""The parser's fast paths against its slow checks, and the whole stranger/full path against a pinned digest.

message.py answers the common shapes of From/To/Contact and Via values with one regex each and
splits a Contact without a comma without walking it; read the request's top Via once. None of that
may change what is accepted, refused or sent: a regex match must only ever say True where the slow
check says True, and the bytes out of quick_parse/parse_request/build_response over thousands of
generated messages must be what they were before those fast paths (the digest below was computed
with sipresponder/message.py at 46d4876). The classifier's per-User-Agent scanner verdicts must be
the search's own, bounded, and forgotten when a reload brings another list.
"""

from __future__ import annotations

import hashlib
import random
import re

import pytest

from sipresponder import message, sip_codec
from sipresponder.config import Endpoints
from sipresponder.message import NotARequest, ParseError, build_response, parse_request, quick_parse
from sipresponder.policy import Classifier

# Pieces that sit on the edges the slow checks care about: quotes, escapes, <>, commas, semicolons,
# empty parameters, LWS, non-token characters, latin-1 beyond ASCII.
_BITS = ['"', '\\"', "\\", "<", ">", ",", ";", ";;", "=", " ", "\t", ":", "@", "sip:", "sips:", "tel:",
         "a", "Bob", "1001", "tag", "tag=x", "lr", "expires=60", "[2001:db8::1]", "é", "\xa0", "%",
         "~", "*", "/", "?", "(", "\r", "\n"]  # fmt: skip


def _fuzz_value(rng: random.Random) -> str:
    shapes = (
        lambda: "<sip:" + rng.choice(("a", "1001", "b c", "x<y", 'q"t')) + "@198.18.0.1>",
        lambda: "Alice <sip:a@b>",
        lambda: '"Al \\"ice\\"" <sip:a@b>',
        lambda: "sip:a@b",
        lambda: "",
    )
    text = rng.choice(shapes)()
    for _unused in range(rng.randrange(5)):
        text += rng.choice((";", ";tag=", ";", ",", " "))
        text += "".join(rng.choice(_BITS) for _u in range(rng.randrange(3)))
    if rng.random() < 0.3:
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(_BITS) + text[at:]
    return text


def _fuzz_via(rng: random.Random) -> str:
    text = rng.choice(("SIP/2.0/UDP 198.18.0.1:5060", "SIP/2.0/TCP [2001:db8::1]", " ", "", "SIP/2.0/UDP h"))
    for _unused in range(rng.randrange(5)):
        text += rng.choice((";branch=z9hG4bK1", ";rport", ";", ";;", ";received=1.2.3.4", ", SIP/2.0/UDP b",
                            ' ;x="a;b"', ";=v", "; ttl = 3 ", ",", '"'))  # fmt: skip
    return text


@pytest.mark.parametrize(
    ("fast", "checked", "generate", "seed"),
    [
        (message._PLAIN_NAME_ADDR, message._name_addr_checked, _fuzz_value, 5),
        (message._PLAIN_VIA, message._via_params_checked, _fuzz_via, 6),
    ],
    ids=["name-addr", "via"],
)
def test_a_fast_path_says_true_only_where_the_slow_check_does(fast, checked, generate, seed):
    rng = random.Random(seed)  # noqa: S311 - a repeatable corpus, not a secret
    taken = 0
    for _unused in range(20000):
        value = generate(rng)
        if fast(value) is not None:
            taken += 1
            assert checked(value), value
    assert taken > 2000  # the generator reaches the fast path often enough for this to mean something


def test_splitting_outside_quotes_loses_nothing_and_cuts_nothing_it_need_not():
    rng = random.Random(7)  # noqa: S311 - a repeatable corpus, not a secret
    for _unused in range(20000):
        text = _fuzz_value(rng)
        for separator, opening, closing in ((",", "<", ">"), (";", "", ""), (",", "", "")):
            parts, quoted = message._split_outside_quotes(text, separator, opening, closing)
            assert separator.join(parts) == text
            if '"' not in text and separator not in text:
                assert (parts, quoted) == ([text], False)  # a Contact's single <URI>: nothing to walk
            if '"' not in text and not opening:
                assert parts == text.split(separator)


_GOOD_VIAS = ("SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK1;rport", "SIP/2.0/UDP [2001:db8::1];rport=9",
              "SIP/2.0/UDP h;received=1.2.3.4, SIP/2.0/TCP g:1")  # fmt: skip


def _fuzz_message(rng: random.Random) -> bytes:
    """A request that is mostly well-formed, with a few of its parts drawn from the edges."""

    def pick(good: str, *bad: str) -> str:
        return good if rng.random() < 0.8 else rng.choice(bad)

    method = rng.choice(("OPTIONS", "REGISTER", "INVITE", "ACK", "BYE", "FOO"))
    lines = [
        f"{method} {pick('sip:100@198.18.0.1', 'sips:a@b', 'http://x', 'sip:')} "
        + pick("SIP/2.0", "SIP/3.0", "sip/2.0", "SIP/2.0 x"),
        rng.choice(("Via", "v", "VIA", "Via ")) + ": "
        + pick(rng.choice(_GOOD_VIAS), _fuzz_via(rng)),
        rng.choice(("From", "f", "fRoM")) + ": " + pick("Bob <sip:b@198.18.0.1>;tag=1", _fuzz_value(rng)),
        rng.choice(("To", "t", "TO")) + ": " + pick(rng.choice(("<sip:100@b>", "sip:100@b;tag=9")),
                                                    _fuzz_value(rng)),
        rng.choice(("Call-ID", "i", "call-id")) + ": " + pick("c1", "c 2", "", "é"),
        "CSeq: " + pick("1", "2147483648", "x", "1 ") + pick(" " + method, " OPTIONS", ""),
        "Max-Forwards: " + pick("70", "256", "x"),
        "User-Agent: " + rng.choice(("sipguard-test", "friendly-scanner", "")),
    ]
    if rng.random() < 0.5:
        contacts = ("*", _fuzz_value(rng), _fuzz_value(rng) + ", " + _fuzz_value(rng),
                    "<sip:a@198.18.0.1:5060>", "<sip:a@b>;expires=60, <sip:c@d>")  # fmt: skip
        lines.append("Contact: " + rng.choice(contacts))
    if rng.random() < 0.3:
        lines.append('Authorization: Digest username="1001", nonce="1.2.3", response="x"')
    if rng.random() < 0.2:
        lines.append(rng.choice(lines[1:]))  # a duplicate
    if rng.random() < 0.1:
        del lines[rng.randrange(1, len(lines))]
    if rng.random() < 0.15:
        at = rng.randrange(1, len(lines))
        lines[at] = rng.choice((" folded", "\tfolded", "no colon", "bad name: x",
                                lines[at] + "\rx", lines[at] + "\n"))  # fmt: skip
    if rng.random() < 0.2:
        lines[1:] = rng.sample(lines[1:], len(lines) - 1)
    body = pick("", "v=0\r\n")
    lines.append(pick(f"Content-Length: {len(body)}", "Content-Length: 99", "Content-Length: x"))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("latin-1")


def _outcome(data: bytes) -> bytes:
    """What the responder makes of `data`: the quick parse and its replies, the full parse and its reply."""
    out = []
    quick = quick_parse(data)
    if quick is None:
        out.append(b"quick:none")
    else:
        out.append(repr((quick.method, quick.uri, quick.headers)).encode("latin-1"))
        out.append(build_response(quick, 403, "Forbidden", "198.18.0.9", 40000)[0])
        out.append(build_response(quick, 401, "Unauthorized", "198.18.0.1", 5060,
                                  [("WWW-Authenticate", 'Digest realm="x"')], "sipguard")[0])  # fmt: skip
    try:
        request = parse_request(data)
    except NotARequest as no:
        out.append(f"not:{no}".encode())
    except ParseError as error:
        out.append(f"error:{error.status} {error.reason} {error.extra}".encode("latin-1"))
        if error.request is not None:
            out.append(build_response(error.request, error.status, error.reason, "198.18.0.9", 5062)[0])
    else:
        out.append(repr((request.method, request.uri, request.headers, request.body)).encode("latin-1"))
        out.append(build_response(request, 200, "OK", "2001:db8::9", 5060, [("Contact", "<sip:a@b>")])[0])
    return b"\x00".join(out)


# sha256 over _outcome() of the 4000 messages below, computed with message.py before the fast paths.
PINNED = "cf46bc56acc8d9262a96b24566c2cb2db8a6ee93d80576751ceaaf44055e0291"


def test_generated_messages_get_the_same_parse_and_the_same_bytes_as_before():
    rng = random.Random(16)  # noqa: S311 - a repeatable corpus, not a secret
    digest = hashlib.sha256()
    kinds = {"quick": 0, "full": 0, "error": 0}
    for _unused in range(4000):
        data = _fuzz_message(rng)
        outcome = _outcome(data)
        kinds["quick"] += not outcome.startswith(b"quick:none")
        kinds["error"] += b"\x00error:" in outcome
        kinds["full"] += b"\x00error:" not in outcome and b"\x00not:" not in outcome
        digest.update(outcome + b"\x01")
    assert min(kinds.values()) > 200, kinds  # every path is taken often
    assert digest.hexdigest() == PINNED


def test_the_scanner_verdicts_kept_per_user_agent_are_the_searchs_bounded_and_forgotten_on_reload():
    classifier = Classifier({}, None)
    classifier.configure(Endpoints(), ["friendly-scanner", "sipvicious"])
    agents = ["friendly-scanner", "Friendly-Scanner 1.0", "sipguard-bench/1", "x" * 300, "", "SIPVicious"]
    for _unused in range(2):  # the second round answers from what the first kept
        assert [classifier.is_scanner(agent) for agent in agents] == [True, True, False, False, False, True]
    assert "x" * 300 not in classifier._scanner_seen  # long values are searched every time
    for index in range(5000):
        classifier.is_scanner(f"made-up/{index}")
    assert len(classifier._scanner_seen) <= 1024
    classifier.is_scanner("sipguard-bench/1")
    classifier.configure(Endpoints(), ["sipguard-bench"])  # a reload with another list
    assert classifier.is_scanner("sipguard-bench/1") and not classifier.is_scanner("friendly-scanner")


def test_the_codec_reads_auth_params_as_the_textbook_quoted_string_would():
    """sip_codec's auth-param pattern unrolls the quoted-string loop (one regex step per run of plain
    characters, not per character); it must match exactly what (?:[^"\\]|\\.)* matches."""
    textbook = re.compile(r'([^\s=,]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
    rng = random.Random(16)  # noqa: S311 - a repeatable corpus, not a secret
    alphabet = ['a', 'b', '"', '\\', '=', ',', ' ', '\t', '\n', 'x1', 'realm', 'nonce="']
    for _attempt in range(20000):
        text = "".join(rng.choice(alphabet) for _piece in range(rng.randint(0, 16)))
        want = [(m.groups(), m.span()) for m in textbook.finditer(text)]
        assert [(m.groups(), m.span()) for m in sip_codec._AUTH_PARAM.finditer(text)] == want, text
