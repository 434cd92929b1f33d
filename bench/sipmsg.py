"""SIP request templates and reply reading for the benchmark's load generators.

The requests are built by sipguard's one SIP codec (sipresponder/sip_codec.py); what is here is the
benchmark's own part: a request turned into a template with `%d` slots, which the load generators
format once per request with a counter. That keeps every Via branch and Call-ID unique (a server that
caches transactions must not get a free ride) at the cost of one bytes `%` per packet. The reply
readers are single regular expressions, because they run once per reply at full load.
"""

import re

from sipresponder import sip_codec

# A scanner-style User-Agent that is *not* on any scanner block list: the bench
# measures the decision rule (unknown source), not User-Agent filtering.
USER_AGENT = "sipguard-bench/1"
_SLOT = "\x00slot\x00"  # stands where a `%d` goes until the request has been escaped for `%`

# Client side of Digest: the codec's (HA1 and the fixed parameters computed once per challenge).
DigestAnswer = sip_codec.DigestClient


def request_template(
    method: str, *, user: str, server: str, client: str, lane: str = "0", expires: int = 3600
) -> bytes:
    """A request with two `%d` slots (Via branch, Call-ID) and one `%d` for CSeq.

    `server` and `client` are "host:port". Format it with `(n, n, cseq)`.
    """
    host = server.rsplit(":", 1)[0]
    register = method == "REGISTER"
    request = sip_codec.build_request(
        method,
        f"sip:{server}" if register else f"sip:{user}@{server}",
        client,
        f"z9hG4bK-b{lane}-{_SLOT}",
        f"sip:{user}@{host}",
        f"bench{lane}",
        f"bench-{lane}-{_SLOT}",
        cseq=_SLOT,
        contact=f"sip:{user}-{lane}@{client}" if register else None,
        user_agent=USER_AGENT,
        expires=expires if register else None,
    )
    return request.replace(b"%", b"%%").replace(_SLOT.encode(), b"%d")


def status_code(reply: bytes) -> int:
    """Status code of a SIP reply ("SIP/2.0 401 ..."), 0 if it is not a reply."""
    if reply.startswith(b"SIP/2.0 ") and reply[8:11].isdigit():
        return int(reply[8:11])
    return 0


_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def call_id(reply: bytes) -> bytes:
    match = _CALL_ID.search(reply)
    return match.group(1) if match else b""


def parse_challenge(reply: bytes) -> dict[str, str] | None:
    """The parameters of the reply's first Digest challenge, keys lower-cased."""
    found = sip_codec.challenges(reply)
    return found[0][1] if found else None


def with_header(request: bytes, header: str) -> bytes:
    """`request` with one more header inserted before Content-Length."""
    return request.replace(b"\r\nContent-Length:", b"\r\n" + header.encode() + b"\r\nContent-Length:", 1)
