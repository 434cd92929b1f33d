"""The one SIP codec of sipguard: pure functions over bytes, no sockets, standard library only.

Every part that speaks SIP uses this file: the sip_probe module (Ansible ships it to the target with
the module, so it runs on Python 2.7 as well as 3.x), the responder (sipresponder/sip_codec.py is a
link to it), the Molecule vantage probe (its text is sent into the containers ahead of
testkit/vantage_probe.py), the benchmarks and the tests. It holds:

- the compact header forms and header-name canonicalisation;
- request building (any method, any header set) and reading a response's status and headers;
- framing of a TCP stream by Content-Length;
- HTTP Digest for SIP (RFC 7616, MD5 and SHA-256, qop=auth or none): the auth-param parser and the
  response computation that both the client side (probes, benchmarks) and the server side (the
  responder's verifier) use.

The responder's request parser (sipresponder/message.py) is the strict, fast server side of reading
requests; it takes its compact-form table from here.
"""

from __future__ import absolute_import, division, print_function

import binascii
import hashlib
import os
import re

__metaclass__ = type

# Compact header forms (RFC 3261 section 7.3.3, RFC 6665 for "o") mapped to their full names.
COMPACT_HEADERS = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "o": "event",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}
METHODS = ("OPTIONS", "REGISTER", "INVITE")


def header_name(raw):
    """A header name as written -> its lower-case full name ("i" -> "call-id")."""
    name = raw.strip().lower()
    return COMPACT_HEADERS.get(name, name)


def host_for_uri(address):
    """An IPv6 literal goes in brackets inside a SIP URI or a Via header."""
    return "[{}]".format(address) if ":" in address and not address.startswith("[") else address


def new_token():
    # secrets.token_hex is Python 3.6+; os.urandom is the same source.
    return binascii.hexlify(os.urandom(8)).decode("ascii")


def build_message(lines, body=""):
    """Start line and header lines ("Name: value") plus a body -> bytes; Content-Length is added last."""
    if not isinstance(body, bytes):
        body = body.encode("utf-8")
    head = "\r\n".join(list(lines) + ["Content-Length: {}".format(len(body))])
    return head.encode("utf-8") + b"\r\n\r\n" + body


def build_request(
    method,
    request_uri,
    sent_by,
    branch,
    from_uri,
    tag,
    call_id,
    cseq=1,
    to_uri=None,
    transport="UDP",
    contact=None,
    user_agent=None,
    expires=None,
    headers=(),
    body="",
    display="",
):
    """One out-of-dialog SIP request as bytes.

    `sent_by` goes in the Via as written (an IPv6 address already in brackets); `to_uri` defaults to
    `from_uri`; `headers` are extra "Name: value" lines placed after the standard ones; `display`
    is the From display name. Content-Length always matches `body`.
    """
    lines = [
        "{} {} SIP/2.0".format(method, request_uri),
        "Via: SIP/2.0/{} {};branch={};rport".format(transport.upper(), sent_by, branch),
        "Max-Forwards: 70",
        "From: {}<{}>;tag={}".format(display + " " if display else "", from_uri, tag),
        "To: <{}>".format(to_uri or from_uri),
        "Call-ID: {}".format(call_id),
        "CSeq: {} {}".format(cseq, method),
    ]
    if contact:
        lines.append("Contact: <{}>".format(contact))
    if user_agent:
        lines.append("User-Agent: {}".format(user_agent))
    if expires is not None:
        lines.append("Expires: {}".format(expires))
    lines.extend(headers)
    return build_message(lines, body)


def probe_request(
    method,
    host,
    port,
    transport,
    local_address,
    local_port,
    user_agent,
    from_user,
    to_user,
    call_id,
    branch,
    tag,
    cseq=1,
):
    """The sip_probe module's request, the way a scanner sends it: REGISTER targets the domain, the
    others the user at the host; an INVITE carries a minimal SDP offer."""
    target = host_for_uri(host)
    local = host_for_uri(local_address)
    if method == "REGISTER":
        request_uri = "sip:{}:{}".format(target, port)
        to_user = from_user
    else:
        request_uri = "sip:{}@{}:{}".format(to_user, target, port)
    headers = ["Accept: application/sdp"]
    body = ""
    if method == "INVITE":
        family = "IP6" if ":" in local_address else "IP4"
        body = (
            "v=0\r\no=- 1 1 IN {family} {address}\r\ns=-\r\nc=IN {family} {address}\r\n"
            "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n".format(
                family=family, address=local_address)
        )
        headers.append("Content-Type: application/sdp")
    return build_request(
        method,
        request_uri,
        "{}:{}".format(local, local_port),
        branch,
        "sip:{}@{}".format(from_user, target),
        tag,
        call_id,
        cseq=cseq,
        to_uri="sip:{}@{}".format(to_user, target),
        transport=transport,
        contact="sip:{}@{}:{}".format(from_user, local, local_port),
        user_agent=user_agent,
        expires=60 if method == "REGISTER" else None,
        headers=headers,
        body=body,
    )


def build_follow_up(method, request, response, cseq, branch):
    """ACK or BYE after a final answer to `request` (an INVITE).

    `branch=None` reuses the INVITE's Via: the ACK of a non-2xx answer belongs to the INVITE transaction.
    After a 2xx the ACK and the BYE are new transactions (new branch) sent to the answer's Contact.
    """
    head = request.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    request_uri = lines[0].split(" ")[1]
    contact = response["headers"].get("contact", "")
    if branch is not None and "<" in contact and ">" in contact:
        request_uri = contact[contact.index("<") + 1 : contact.index(">")]
    headers = []
    for line in lines[1:]:
        name = line.split(":", 1)[0].strip().lower()
        if name == "via" and branch is not None:
            headers.append(re.sub(r"branch=[^;]+", "branch={}".format(branch), line))
        elif name in ("via", "from", "call-id", "max-forwards", "user-agent"):
            headers.append(line)
    headers += ["To: {}".format(response['headers'].get('to', '')), "CSeq: {} {}".format(
        cseq, method), "Content-Length: 0"]
    return ("\r\n".join(["{} {} SIP/2.0".format(method, request_uri)] + headers) + "\r\n\r\n").encode()


def frame(buffer, limit):
    """Cut one message off a TCP stream: (message or None, rest, broken).

    CRLF keep-alives between messages are skipped (RFC 5626 section 3.5.1). `broken` is True when the
    stream cannot be trusted any more: a message longer than `limit` bytes, or a Content-Length that
    is not a number (nothing after it can be framed).
    """
    buffer = buffer.lstrip(b"\r\n")
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None, buffer, len(buffer) > limit
    length = 0
    for line in buffer[:end].split(b"\r\n")[1:]:
        name, _colon, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            value = value.strip()
            if not value.isdigit():
                return None, buffer, True
            length = int(value)
            break
    total = end + 4 + length
    if total > limit:
        return None, buffer, True
    if len(buffer) < total:
        return None, buffer, False
    return buffer[:total], buffer[total:], False


def parse_response(data):
    """Status line and headers of a SIP response, or None if `data` is not one.

    Returns {"status_code", "reason", "headers" (lower-case full names; the first value of each),
    "lines" (status line and header lines, no body)}.
    """
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = [line for line in head.replace("\r\n", "\n").split("\n") if line]
    if not lines:
        return None
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("SIP/2.0") or not parts[1].isdigit():
        return None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        headers.setdefault(header_name(name), value.strip())
    return {
        "status_code": int(parts[1]),
        "reason": parts[2] if len(parts) > 2 else "",
        "headers": headers,
        "lines": lines,
    }


def challenges(data):
    """The Digest challenges in a response's head, in order: [(header name as written, params)]."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    found = []
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep and header_name(name) in ("www-authenticate", "proxy-authenticate"):
            params = auth_params(value)
            if params:
                found.append((name.strip(), params))
    return found


# ------------------------------------------------------------------ HTTP Digest (RFC 7616)

DIGEST_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

# One auth-param: key = "quoted \"string\"" or key = token (RFC 7616 section 3.4, RFC 7230 quoted-string).
# The quoted part is (?:[^"\\]|\\.)* unrolled: one regex step per run of plain characters, not per
# character (a digest Authorization header is mostly such runs; about 40 % less work to read it).
_AUTH_PARAM = re.compile(r'([^\s=,]+)\s*=\s*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s,]*))')
_ESCAPE = re.compile(r"\\(.)")


def auth_params(value):
    """`Digest a="x", b=y` -> {"a": "x", "b": "y"} (keys lower-case); {} if the scheme is not Digest."""
    scheme, _space, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params = {}
    for key, quoted, token in _AUTH_PARAM.findall(rest):
        text = _ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        params[key.lower()] = text or token
    return params


def digest_hex(algorithm, text):
    """H(text) for a Digest algorithm name ("MD5" or "SHA-256"); KeyError for any other."""
    return DIGEST_HASHES[algorithm](text.encode("utf-8")).hexdigest()


def digest_response(algorithm, ha1, nonce, method, uri, nc="", cnonce="", qop="auth"):
    """The `response` value for HA1 (hex) and one request: with qop=auth (nc, cnonce) or, with an
    empty qop, the RFC 2069 form. The client computes it to answer, the server to check."""
    ha2 = digest_hex(algorithm, "{}:{}".format(method, uri))
    if not qop:
        return digest_hex(algorithm, "{}:{}:{}".format(ha1, nonce, ha2))
    return digest_hex(algorithm, "{}:{}:{}:{}:{}:{}".format(ha1, nonce, nc, cnonce, qop, ha2))


class DigestClient:
    """Answers one challenge for any nonce count (client side, qop=auth when offered).

    HA1 and the fixed parameters are computed once per challenge, so a client that reuses a nonce
    (the benchmarks) hashes only the response for each request.
    """

    def __init__(self, challenge, user, password, method, uri):
        algorithm = challenge.get("algorithm", "MD5").upper()
        self.algorithm = "SHA-256" if algorithm.startswith("SHA-256") else "MD5"
        self.nonce = challenge["nonce"]
        self.method = method
        self.uri = uri
        self.qop = "auth" in [q.strip() for q in challenge.get("qop", "").split(",")]
        self.ha1 = digest_hex(self.algorithm, "{}:{}:{}".format(user, challenge["realm"], password))
        self.prefix = 'Digest username="{}", realm="{}", nonce="{}", uri="{}"'.format(
            user, challenge["realm"], self.nonce, uri)
        self.suffix = ", algorithm={}".format(self.algorithm)
        if "opaque" in challenge:
            self.suffix += ', opaque="{}"'.format(challenge["opaque"])

    def header(self, nc=1, cnonce=None):
        """The Authorization (or Proxy-Authorization) header value for nonce count `nc`."""
        if not self.qop:
            response = digest_response(self.algorithm, self.ha1, self.nonce, self.method, self.uri, qop="")
            return '{}, response="{}"{}'.format(self.prefix, response, self.suffix)
        nc_text = "{:08x}".format(nc)
        cnonce = cnonce or new_token()
        response = digest_response(
            self.algorithm, self.ha1, self.nonce, self.method, self.uri, nc_text, cnonce)
        return '{}, qop=auth, nc={}, cnonce="{}", response="{}"{}'.format(
            self.prefix, nc_text, cnonce, response, self.suffix)
