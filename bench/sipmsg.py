"""SIP request templates and reply parsing for the benchmark's load generators.

Everything here is pure (bytes in, bytes out) so it can be unit-tested. The load
generators format a template once per request with a counter, which keeps every
Via branch and Call-ID unique (a server that caches transactions must not get a
free ride) at the cost of one bytes `%` per packet.
"""

import hashlib
import re

# A scanner-style User-Agent that is *not* on any scanner block list: the bench
# measures the decision rule (unknown source), not User-Agent filtering.
USER_AGENT = "sipguard-bench/1"


def request_template(
    method: str, *, user: str, server: str, client: str, lane: str = "0", expires: int = 3600
) -> bytes:
    """A request with two `%d` slots (Via branch, Call-ID) and one `%d` for CSeq.

    `server` and `client` are "host:port". Format it with `(n, n, cseq)`.
    """
    host = server.rsplit(":", 1)[0]
    uri = f"sip:{server}" if method == "REGISTER" else f"sip:{user}@{server}"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {client};branch=z9hG4bK-b{lane}-%d;rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag=bench{lane}",
        f"To: <sip:{user}@{host}>",
        f"Call-ID: bench-{lane}-%d",
        f"CSeq: %d {method}",
        f"User-Agent: {USER_AGENT}",
    ]
    if method == "REGISTER":
        lines += [f"Contact: <sip:{user}-{lane}@{client}>", f"Expires: {expires}"]
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode().replace(b"%", b"%%").replace(b"%%d", b"%d")


def status_code(reply: bytes) -> int:
    """Status code of a SIP reply ("SIP/2.0 401 ..."), 0 if it is not a reply."""
    if reply.startswith(b"SIP/2.0 ") and reply[8:11].isdigit():
        return int(reply[8:11])
    return 0


_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
_CHALLENGE = re.compile(rb"^www-authenticate[ \t]*:[ \t]*digest[ \t]+(.*?)\r?$", re.IGNORECASE | re.MULTILINE)
_PARAM = re.compile(r'(\w+)[ \t]*=[ \t]*(?:"([^"]*)"|([^,\s]+))')


def call_id(reply: bytes) -> bytes:
    match = _CALL_ID.search(reply)
    return match.group(1) if match else b""


def parse_challenge(reply: bytes) -> dict[str, str] | None:
    """The parameters of the first Digest WWW-Authenticate header, keys lower-cased."""
    match = _CHALLENGE.search(reply)
    if not match:
        return None
    text = match.group(1).decode("utf-8", "replace")
    return {key.lower(): quoted or plain for key, quoted, plain in _PARAM.findall(text)}


def _hash(algorithm: str, text: str) -> str:
    name = "sha256" if algorithm.upper().startswith("SHA-256") else "md5"
    return hashlib.new(name, text.encode()).hexdigest()


class DigestAnswer:
    """Answers one challenge (RFC 7616, qop=auth or none) for any nonce count.

    HA1, HA2 and the fixed header parameters are computed once per challenge, so a
    client that reuses a nonce hashes only the response for each request.
    """

    def __init__(self, challenge: dict[str, str], *, user: str, password: str, method: str, uri: str):
        self.algorithm = challenge.get("algorithm", "MD5")
        self.nonce = challenge["nonce"]
        self.qop = "auth" in challenge.get("qop", "").split(",")
        self.ha1 = _hash(self.algorithm, f"{user}:{challenge['realm']}:{password}")
        self.ha2 = _hash(self.algorithm, f"{method}:{uri}")
        realm = challenge["realm"]
        self.prefix = f'Digest username="{user}", realm="{realm}", nonce="{self.nonce}", uri="{uri}"'
        self.suffix = f", algorithm={self.algorithm}"
        if "opaque" in challenge:
            self.suffix += f', opaque="{challenge["opaque"]}"'

    def header(self, nc: int, cnonce: str) -> str:
        """The Authorization header value for nonce count `nc`."""
        if not self.qop:
            response = _hash(self.algorithm, f"{self.ha1}:{self.nonce}:{self.ha2}")
            return f'{self.prefix}, response="{response}"{self.suffix}'
        nc_text = f"{nc:08x}"
        response = _hash(self.algorithm, f"{self.ha1}:{self.nonce}:{nc_text}:{cnonce}:auth:{self.ha2}")
        return (
            f'{self.prefix}, qop=auth, nc={nc_text}, cnonce="{cnonce}", response="{response}"{self.suffix}'
        )


def with_header(request: bytes, header: str) -> bytes:
    """`request` with one more header inserted before Content-Length."""
    return request.replace(b"\r\nContent-Length:", b"\r\n" + header.encode() + b"\r\nContent-Length:", 1)
