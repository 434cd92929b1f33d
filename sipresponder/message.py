"""SIP request parsing and response building (RFC 3261, with RFC 4475's error mapping).

Pure functions over bytes: no sockets, no clock. Text is decoded as latin-1, which maps
every byte to one character, so whatever we copy into a response goes back byte for byte.
"""

from __future__ import annotations

import re
import zlib

from sipresponder import sip_codec

# RFC 3261 §7.3.3 compact forms (one table, the codec's).
COMPACT = sip_codec.COMPACT_HEADERS
REQUIRED = ("via", "from", "to", "call-id", "cseq")
URI_SCHEMES = ("sip", "sips", "tel")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z").match
MAX_CSEQ = 2**31 - 1


def number(text: str) -> int | None:
    """The value of a run of ASCII digits; None for anything else.

    str.isdigit() accepts '¹' and '٣', which int() then refuses or reads as a digit: a SIP number
    (RFC 3261 §25.1 DIGIT) is ASCII only.
    """
    return int(text) if text.isascii() and text.isdigit() else None


class ParseError(Exception):
    """The message is not acceptable; `status`/`reason` say how to answer (RFC 4475 mapping).

    `request` is the partly parsed request when it has enough to build a reply, else None.
    """

    def __init__(self, status: int, reason: str, request: Request | None = None, extra=()):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.request = request
        self.extra = tuple(extra)


class NotARequest(Exception):
    """A response or keep-alive reached us: a UAS ignores those (RFC 3261 §18.1.2)."""


class Request:
    __slots__ = ("body", "headers", "method", "top", "uri", "version")

    def __init__(self, method: str, uri: str, version: str, headers: dict[str, list[str]], body: bytes):
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers  # lower-case full name -> values in order (one per header line)
        self.body = body
        # The top Via, read once: (top value, rest of its line, sent-by host, its port as written or
        # None). Set by the parsers' Via check; top_via() reads it when they did not get that far.
        self.top: tuple[str, str, str, str | None] | None = None

    def top_via(self) -> tuple[str, str, str, str | None]:
        """(top Via value, the rest of its header line, sent-by host, port as written or None)."""
        top = self.top
        if top is None:
            value, rest = split_top_via(self.headers["via"][0])
            top = self.top = (value, rest, *_sent_by(value))
        return top

    def get(self, name: str, default: str = "") -> str:
        values = self.headers.get(name)
        return values[0] if values else default

    def has_required(self) -> bool:
        return all(name in self.headers for name in REQUIRED)

    def can_answer(self) -> bool:
        """Whether an error reply can reach its sender and match its transaction: a Via and a CSeq.

        From, To and Call-ID are copied into a reply when present (RFC 4475 §3.3.1, insuf: a
        request without them still deserves its 400).
        """
        return "via" in self.headers and "cseq" in self.headers

    @property
    def user_agent(self) -> str:
        return self.get("user-agent")

    @property
    def cseq_method(self) -> str:
        return self.get("cseq").partition(" ")[2].strip()


# The headers a reply to a stranger needs; quick_parse skips every other line.
_QUICK_WANTED = frozenset(
    ("via", "from", "to", "call-id", "cseq", "user-agent", "authorization", "proxy-authorization")
)
_QUICK_AS: dict[str, str] = {}  # header name as written -> its wanted name, "" when not wanted (a cache)


def _quick_name(raw: str) -> str | None:
    """quick_parse's name for a header name as written: the wanted name, "" for any other header,
    None when it is no header name at all."""
    name = _canonical(raw)
    if name is None:
        return None
    name = name if name in _QUICK_WANTED else ""
    if len(_QUICK_AS) < 512:  # bounded like _NAMES
        _QUICK_AS[raw] = name
    return name


def quick_parse(data: bytes) -> Request | None:
    """A lean parse for the stranger's path: just enough to answer 401/403 or to drop.

    Header lines are split like parse_request() splits them (at CRLF), but only the headers
    a reply or the decision needs are kept. Returns None when the message is not a plain
    request with the mandatory headers; the caller then falls back to parse_request(),
    which says exactly what is wrong.
    """
    end = data.find(b"\r\n\r\n")
    if end <= 0:
        return None
    head = data[:end]
    if b"\r\n " in head or b"\r\n\t" in head:
        return None  # folded lines: the full parser undoes those
    lines = head.decode("latin-1").split("\r\n")
    pieces = lines[0].split(" ")
    if len(pieces) != 3 or pieces[2] != "SIP/2.0" or _TOKEN(pieces[0]) is None:
        return None
    headers: dict[str, list[str]] = {}
    wanted_as = _QUICK_AS
    for index in range(1, len(lines)):
        raw, colon, value = lines[index].partition(":")
        name = wanted_as.get(raw)  # one look-up per line: the wanted name, or "" for any other
        if name is None and colon:
            name = _quick_name(raw)
        if name and colon:
            if name in headers:
                headers[name].append(value.strip(" \t"))
            else:
                headers[name] = [value.strip(" \t")]
    cseq, call_id, via = headers.get("cseq"), headers.get("call-id"), headers.get("via")
    if cseq is None or call_id is None or via is None or "from" not in headers or "to" not in headers:
        return None
    method = pieces[0]
    request = Request(method, pieces[1], "SIP/2.0", headers, b"")
    _top, _rest, host, port = request.top_via()  # read once: the reply's Via reuses it
    if (
        len(cseq) != 1
        or len(call_id) != 1
        or cseq[0].partition(" ")[2].strip() != method
        or not host
        or (port is not None and _port(port) is None)
    ):
        return None  # the full parser says what is wrong
    return request


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Split at the blank line; None when there is none."""
    head, sep, body = data.partition(b"\r\n\r\n")
    return (head, body) if sep else None


def _is_token(text: str) -> bool:
    return _TOKEN(text) is not None


def _split_lines(head: str) -> list[str]:
    """Header lines with RFC 3261 §7.3.1 folding (continuation lines start with SP/HT) undone."""
    if "\r\n " not in head and "\r\n\t" not in head:
        return head.split("\r\n")  # the common case: nothing folded
    lines: list[str] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


_NAMES: dict[str, str] = {}  # header name as written -> canonical lower-case name (a cache)


def _canonical(raw: str) -> str | None:
    """The lower-case full name of a header name as written; None when it is not a token."""
    name = _NAMES.get(raw)
    if name is None:
        name = raw.rstrip(" \t").lower()
        if not _is_token(name):
            return None
        name = COMPACT.get(name, name)
        if len(_NAMES) < 512:  # remember valid spellings; bounded so junk names cannot grow it
            _NAMES[raw] = name
    return name


def _parse_headers(lines: list[str]) -> tuple[dict[str, list[str]], bool]:
    """Header lines -> {lower-case full name: [values]}, and whether any line was malformed."""
    headers: dict[str, list[str]] = {}
    bad_header = False
    names = _NAMES
    for line in lines:
        raw, colon, value = line.partition(":")
        name = (names.get(raw) or _canonical(raw)) if colon else None
        if name is None:
            bad_header = True
        elif name in headers:
            headers[name].append(value.strip(" \t"))
        else:
            headers[name] = [value.strip(" \t")]
    return headers, bad_header


def parse_request(data: bytes, datagram: bool = True) -> Request:
    """Parse one request. Raises NotARequest for responses/keep-alives, ParseError otherwise."""
    data = data.lstrip(b"\r\n")  # CRLFs before the request line are ignored (RFC 3261 7.5)
    parts = split_head(data)
    if parts is None:
        if not data.strip():
            raise NotARequest("keep-alive")
        head_bytes, body = data, b""
        missing_blank_line = True
    else:
        head_bytes, body = parts
        missing_blank_line = False
    head = head_bytes.decode("latin-1")
    if not head.strip():
        raise NotARequest("keep-alive")
    lines = _split_lines(head.lstrip("\r\n"))
    first = lines[0]
    if first.startswith("SIP/"):
        raise NotARequest("response")
    headers, bad_header = _parse_headers(lines[1:])
    pieces = first.split(" ")
    if len(pieces) != 3:
        request = Request("", "", "", headers, b"")
        raise ParseError(400, "Bad Request Line", request if request.can_answer() else None)
    method, uri, version = pieces
    request = Request(method, uri, version, headers, b"")
    answerable = request if request.can_answer() else None
    if not _is_token(method):
        raise ParseError(400, "Bad Method", answerable)
    if version.upper() != "SIP/2.0":
        if version.upper().startswith("SIP/"):
            raise ParseError(505, "Version Not Supported", answerable)
        raise ParseError(400, "Bad Request Line", answerable)
    if answerable is None:
        raise ParseError(400, "Missing Mandatory Header", None)  # no Via or CSeq: nowhere to answer
    _check_via(request)
    if not request.has_required():
        raise ParseError(400, "Missing Mandatory Header", request)
    if bad_header or missing_blank_line:
        raise ParseError(400, "Malformed Header", request)
    request.body = _body(request, body, datagram)
    _check_headers(request)
    return request


def _check_via(request: Request) -> None:
    _top, _rest, host, port = request.top_via()
    if not host:
        raise ParseError(400, "Bad Via", None)  # nowhere sensible to send an answer: drop
    if port is not None and _port(port) is None:
        raise ParseError(400, "Bad Via Port", request)  # the answer goes to the source address


def _body(request: Request, body: bytes, datagram: bool) -> bytes:
    lengths = set(request.headers.get("content-length", []))
    if not lengths:
        return body if datagram else b""
    if len(lengths) > 1:
        raise ParseError(400, "Conflicting Content-Length", request)
    length = number(lengths.pop())
    if length is None:
        raise ParseError(400, "Bad Content-Length", request)
    if length > len(body):
        # §18.3: a datagram that ends before its declared body is an error.
        raise ParseError(400, "Content-Length Too Large", request)
    return body[:length]


def _check_headers(request: Request) -> None:
    cseq_number, _, cseq_method = request.get("cseq").partition(" ")
    cseq_method = cseq_method.strip()
    cseq = number(cseq_number)
    if cseq is None or cseq > MAX_CSEQ or not _is_token(cseq_method):
        raise ParseError(400, "Bad CSeq", request)
    if cseq_method != request.method:
        raise ParseError(400, "CSeq Method Mismatch", request)
    for name in ("call-id", "from", "to", "cseq"):
        if len(request.headers[name]) != 1 or not request.headers[name][0]:
            raise ParseError(400, f"Bad {name.title()} Header", request)
    forwards = number(request.get("max-forwards", "70"))
    if forwards is None or forwards > 255:
        raise ParseError(400, "Bad Max-Forwards", request)
    _check_addresses(request)
    scheme, colon, rest = request.uri.partition(":")
    if not colon or not rest or not _is_token(scheme):
        raise ParseError(400, "Bad Request-URI", request)
    if scheme.lower() not in URI_SCHEMES:
        raise ParseError(416, "Unsupported URI Scheme", request)
    if request.method not in ("ACK", "CANCEL"):
        required = [tag for value in request.headers.get("require", []) for tag in _list(value)]
        if required:
            raise ParseError(420, "Bad Extension", request, [("Unsupported", ", ".join(required))])
    if request.method == "INVITE" and request.body:
        kind = request.get("content-type").split(";")[0].strip().lower()
        encoding = request.get("content-encoding", "identity").strip().lower()
        if kind != "application/sdp" or encoding not in ("identity", ""):
            raise ParseError(415, "Unsupported Media Type", request, [("Accept", "application/sdp")])
    if request.method == "INVITE" and not _accepts_sdp(request):
        # RFC 4475 sdp01: whatever answer an INVITE gets here, the caller said it cannot take SDP.
        raise ParseError(406, "Not Acceptable", request, [("Warning", '399 - "only application/sdp"')])


def _check_addresses(request: Request) -> None:
    """From, To, Via and Contact against RFC 3261 §25.1 (RFC 4475 §3.1.2 and §3.3.4)."""
    if _uri_of(request.get("from")) is None or _uri_of(request.get("to")) is None:
        raise ParseError(400, "Bad From/To URI", request)
    if not (_name_addr_ok(request.get("from")) and _name_addr_ok(request.get("to"))):
        raise ParseError(400, "Bad From/To Header", request)  # RFC 4475 quotbal, baddn, badaspec
    if not all(_via_params_ok(value) for value in request.headers["via"]):
        raise ParseError(400, "Bad Via", request)  # RFC 4475 badinv01: empty parameters and values
    for value in request.headers.get("contact", []):
        if value.strip() != "*" and not all(_name_addr_ok(c) for c in _split_list(value, "<", ">")):
            raise ParseError(400, "Bad Contact", request)
    to_scheme = _uri_of(request.get("to")).partition(":")[0].lower()
    if request.method == "REGISTER" and to_scheme not in ("sip", "sips"):
        raise ParseError(400, "Bad To URI", request)  # §10.2: an address of record (RFC 4475 unksm2)


def _accepts_sdp(request: Request) -> bool:
    """Whether the Accept header fields (if any) admit application/sdp; an empty Accept says nothing."""
    ranges = [item.split(";")[0].strip().lower() for value in request.headers.get("accept", [])
              for item in value.split(",") if item.strip()]  # fmt: skip
    return not ranges or any(r in ("application/sdp", "application/*", "*/*") for r in ranges)


def _split_outside_quotes(text: str, separator: str, opening: str = "",
                          closing: str = "") -> tuple[list[str], bool]:
    """`text` split at `separator` outside quoted strings (honouring their backslash escapes) and outside
    opening...closing; the parts, and whether a quoted string was left open. The one quote-aware
    splitter: header lists, parameters and the top Via all use it."""
    if '"' not in text and (not opening or opening not in text or separator not in text):
        # Nothing quoted (escapes count only inside quotes), and nothing nested or nothing to cut: the
        # loop below would cut exactly where str.split does, one character at a time. Most header
        # values take this path, a Contact's single <URI> included.
        return text.split(separator), False
    parts, start, quoted, depth, escaped = [], 0, False, 0, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            escaped = char == "\\"
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == opening:
            depth += 1
        elif char == closing and depth:
            depth -= 1
        elif char == separator and not depth:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts, quoted


def _split_list(value: str, opening: str = "", closing: str = "") -> list[str]:
    """A header value split at commas outside quoted strings (and outside opening...closing)."""
    return _split_outside_quotes(value, ",", opening, closing)[0]


def _split_params(tail: str) -> list[str] | None:
    """`;name[=value]` parameters after a URI or sent-by, split outside quoted strings; None if one
    is empty or its name is not a token (RFC 4475 badinv01's `;;;`)."""
    params, quoted = _split_outside_quotes(tail, ";")
    if quoted or params[0].strip(" \t"):
        return None  # an open quote, or something between the URI and the first ';'
    for param in params[1:]:
        if not _is_token(param.partition("=")[0].strip(" \t")):
            return None
    return params[1:]


def _via_params_ok(value: str) -> bool:
    """Every comma-separated value of a Via line is `sent-protocol sent-by` plus well-formed parameters."""
    return _PLAIN_VIA(value) is not None or _via_params_checked(value)


def _via_params_checked(value: str) -> bool:
    """_via_params_ok() without its fast path."""
    for via in _split_list(value):
        sent, semicolon, params = via.partition(";")
        if not sent.strip(" \t") or (semicolon and _split_params(";" + params) is None):
            return False
    return True


# Fast paths for the common shapes of From/To/Contact and Via values. Each regex accepts only
# values its slow check below accepts too (nothing quoted, nothing to split at commas), so a match
# answers True at once and anything else takes the slow check: tests/unit/responder/
# test_resp_fast_paths.py compares both over generated values.
_TCHAR_RUN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_PLAIN_PARAMS = r"(?:[ \t]*;[ \t]*" + _TCHAR_RUN + r"[ \t]*(?:=[^;\"]*)?)*"
_PLAIN_NAME_ADDR = re.compile(
    r"[ \t]*(?:(?:" + _TCHAR_RUN + r"(?:[ \t]+" + _TCHAR_RUN + r")*[ \t]*)?<[^ \t<>\"]+>"  # [name] <uri>
    r"|[^ \t<>\";:]*:[^ \t<>\";]*)"  # or a bare addr-spec
    + _PLAIN_PARAMS + r"[ \t]*"
).fullmatch
_PLAIN_VIA = re.compile(
    r"[^;,\"]*[^;,\" \t][^;,\"]*(?:;[ \t]*" + _TCHAR_RUN + r"[ \t]*(?:=[^;\",]*)?)*"
).fullmatch


def _name_addr_ok(value: str) -> bool:
    """RFC 3261 §25.1 name-addr / addr-spec with header parameters, as From, To and Contact carry.

    A display name is a quoted string or tokens separated by LWS; the URI inside <> has no LWS.
    """
    return _PLAIN_NAME_ADDR(value) is not None or _name_addr_checked(value)


def _name_addr_checked(value: str) -> bool:
    """_name_addr_ok() without its fast path."""
    text = value.strip(" \t")
    if text.startswith('"'):
        index, escaped = 1, False
        while index < len(text):
            char = text[index]
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                break
            index += 1
        else:
            return False  # an unterminated quoted string (RFC 4475 quotbal)
        rest = text[index + 1 :].lstrip(" \t")
        if not rest.startswith("<"):
            return False
    elif "<" in text.split(";", 1)[0]:
        display, _, rest = text.partition("<")
        rest = "<" + rest
        if any(not _is_token(word) for word in display.split()):
            return False  # unquoted non-token characters (RFC 4475 baddn)
    else:
        uri, semicolon, params = text.partition(";")
        uri = uri.rstrip(" \t")  # SEMI = SWS ";" SWS
        return (
            ":" in uri
            and not any(c in uri for c in ' \t"<>')
            and _split_params(semicolon + params) is not None
        )
    uri, closing, params = rest[1:].partition(">")
    if not closing or not uri or any(c in uri for c in " \t<"):
        return False  # no '>', or LWS inside <> (RFC 4475 badaspec)
    return _split_params(params) is not None


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _uri_of(name_addr: str) -> str | None:
    """The URI inside a From/To/Contact value (name-addr or addr-spec), None if unparseable."""
    if "<" in name_addr:
        start = name_addr.find("<")
        end = name_addr.find(">", start)
        return name_addr[start + 1 : end] if end > start else None
    uri = name_addr.split(";", 1)[0].strip()
    return uri if ":" in uri else None


def uri_user(name_addr: str) -> str:
    """The user part of the URI in a From/To value ("" when there is none)."""
    uri = _uri_of(name_addr) or ""
    rest = uri.partition(":")[2]
    user, at, _ = rest.partition("@")
    return user.split(";", 1)[0] if at else ""


def header_param(value: str, name: str) -> str | None:
    """A ;name=value parameter of a header value outside its <URI> ("" for a flag)."""
    tail = value[value.rfind(">") + 1 :] if ">" in value else value
    for part in tail.split(";")[1:]:
        key, eq, param = part.partition("=")
        if key.strip().lower() == name:
            return param.strip() if eq else ""
    return None


# --------------------------------------------------------------------------- Via and routing


def split_top_via(via_line: str) -> tuple[str, str]:
    """Split one Via header line into (top value, rest-with-leading-comma-or-empty)."""
    if "," not in via_line:
        return via_line.strip(), ""
    top = _split_outside_quotes(via_line, ",")[0][0]
    return top.strip(), via_line[len(top):]


def _sent_by(top_via: str) -> tuple[str, str | None]:
    """(host, port as written or None when absent) of the sent-by part of a Via value."""
    parts = top_via.split(";", 1)[0].split(None, 1)
    if len(parts) != 2:
        return "", None  # no sent-by: parse_request refuses such a Via, this is only a safety net
    sent_by = parts[1].strip()
    if sent_by.startswith("["):
        host, _, rest = sent_by[1:].partition("]")
        return host, rest[1:].strip() if rest.startswith(":") else None
    host, colon, port = sent_by.partition(":")
    return host, port.strip() if colon else None


def _port(text: str | None) -> int | None:
    port = number(text) if text is not None else None
    return port if port is not None and 0 < port < 65536 else None


def via_sent_by(top_via: str) -> tuple[str, int | None]:
    """(host, port or None) of the sent-by part of a Via value."""
    host, port = _sent_by(top_via)
    return host, _port(port)


def route_via(top_via: str, src_ip: str, src_port: int) -> tuple[str, int]:
    """RFC 3261 §18.2.2 + RFC 3581: the rewritten top Via and the port to answer to over UDP.

    The address is always the packet's source (the `received` rule); maddr is ignored on purpose,
    since honouring it would let anyone aim our replies at a third party.
    """
    host, port = _sent_by(top_via)
    return _route(top_via, host, _port(port), src_ip, src_port)


def _route(top_via: str, host: str, port: int | None, src_ip: str, src_port: int) -> tuple[str, int]:
    """route_via() with the sent-by already read (host, and the port or None)."""
    sent_by, _, params = top_via.partition(";")
    rport = False
    lowered = params.lower()
    if top_via.endswith(";rport") and "received" not in lowered and lowered.count("rport") == 1:
        # The common shape (an RFC 3581 client's bare rport last, no received): what the loop below
        # makes of it, without taking the parameters apart.
        return f"{top_via[:-6]};received={src_ip};rport={src_port}", src_port
    if "rport" in lowered or "received" in lowered:  # else the parameters stay as they are
        kept = [sent_by]
        for param in params.split(";"):
            key = param.partition("=")[0].strip().lower()
            if key == "rport":
                rport = True
            elif key != "received":
                kept.append(param)
        top_via = ";".join(kept)
    if rport:
        return f"{top_via};received={src_ip};rport={src_port}", src_port
    if host.strip("[]") != src_ip:
        return f"{top_via};received={src_ip}", port or 5060
    return top_via, port or 5060


def to_tag_for(request: Request) -> str:
    """A To tag that is the same for retransmissions of one request (so they get identical answers)."""
    headers = request.headers
    seed = headers["call-id"][0] + headers["from"][0] + headers["cseq"][0]
    return "%08x" % zlib.crc32(seed.encode("latin-1"))  # noqa: UP031 (the fastest spelling)


def build_response(
    request: Request,
    status: int,
    reason: str,
    src_ip: str,
    src_port: int,
    extra: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    server: str = "",
) -> tuple[bytes, int]:
    """The response bytes and the UDP port they go to."""
    headers = request.headers
    vias = headers["via"]
    top, rest, host, port_text = request.top_via()
    top, port = _route(top, host, _port(port_text), src_ip, src_port)
    more = "".join([f"Via: {via}\r\n" for via in vias[1:]]) if len(vias) > 1 else ""
    if "to" in headers and "from" in headers and "call-id" in headers:
        to = headers["to"][0]
        if status > 100 and ("tag" not in to.lower() or header_param(to, "tag") is None):
            to = f"{to};tag={to_tag_for(request)}"
        ids = f"From: {headers['from'][0]}\r\nTo: {to}\r\nCall-ID: {headers['call-id'][0]}\r\n"
    else:  # a 400 for a request without them (RFC 4475 insuf): copy what there is
        ids = "".join(f"{name}: {headers[key][0]}\r\n" for name, key in
                      (("From", "from"), ("To", "to"), ("Call-ID", "call-id")) if key in headers)  # fmt: skip
    tail = "".join([f"{name}: {value}\r\n" for name, value in extra]) if extra else ""
    if server:
        tail += f"Server: {server}\r\n"
    text = (
        f"SIP/2.0 {status} {reason}\r\nVia: {top}{rest}\r\n{more}{ids}CSeq: {headers['cseq'][0]}\r\n"
        f"{tail}Content-Length: 0\r\n\r\n"
    )
    return text.encode("latin-1"), port
