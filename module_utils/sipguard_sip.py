"""SIP message building and parsing for the sipguard probe module (pure functions, no sockets).

Ansible ships this file to the target with the module that imports it, so it uses the standard
library only. It builds one out-of-dialog request the way a scanner would and reads a response's
status line and headers; bodies are never interpreted.
"""

from __future__ import annotations

import re
import secrets

# Compact header forms (RFC 3261 section 7.3.3) mapped to their full names.
COMPACT_HEADERS = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}
METHODS = ("OPTIONS", "REGISTER", "INVITE")


def host_for_uri(address: str) -> str:
    """An IPv6 literal goes in brackets inside a SIP URI or a Via header."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def new_token() -> str:
    return secrets.token_hex(8)


def build_request(
    method: str,
    *,
    host: str,
    port: int,
    transport: str,
    local_address: str,
    local_port: int,
    user_agent: str,
    from_user: str,
    to_user: str,
    call_id: str,
    branch: str,
    tag: str,
    cseq: int = 1,
) -> bytes:
    """One SIP request as bytes; REGISTER targets the domain, the others the user at the host."""
    target = host_for_uri(host)
    local = host_for_uri(local_address)
    if method == "REGISTER":
        request_uri = f"sip:{target}:{port}"
        to_user = from_user
    else:
        request_uri = f"sip:{to_user}@{target}:{port}"
    body = ""
    if method == "INVITE":
        family = "IP6" if ":" in local_address else "IP4"
        body = (
            f"v=0\r\no=- 1 1 IN {family} {local_address}\r\ns=-\r\nc=IN {family} {local_address}\r\n"
            "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
    lines = [
        f"{method} {request_uri} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {local}:{local_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{from_user}@{target}>;tag={tag}",
        f"To: <sip:{to_user}@{target}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{from_user}@{local}:{local_port}>",
        f"User-Agent: {user_agent}",
        "Accept: application/sdp",
    ]
    if method == "REGISTER":
        lines.append("Expires: 60")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def build_follow_up(method: str, request: bytes, response: dict, *, cseq: int, branch: str | None) -> bytes:
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
            headers.append(re.sub(r"branch=[^;]+", f"branch={branch}", line))
        elif name in ("via", "from", "call-id", "max-forwards", "user-agent"):
            headers.append(line)
    headers += [f"To: {response['headers'].get('to', '')}", f"CSeq: {cseq} {method}", "Content-Length: 0"]
    return ("\r\n".join([f"{method} {request_uri} SIP/2.0", *headers]) + "\r\n\r\n").encode()


def split_message(buffer: bytes) -> tuple[bytes, bytes] | None:
    """For a stream (TCP): (one whole message, the rest), or None while the message is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("utf-8", "replace")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("content-length", "l"):
            length = int(value.strip() or 0) if value.strip().isdigit() else 0
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return buffer[:total], buffer[total:]


def parse_response(data: bytes) -> dict | None:
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
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = COMPACT_HEADERS.get(key, key)
        headers.setdefault(key, value.strip())
    return {
        "status_code": int(parts[1]),
        "reason": parts[2] if len(parts) > 2 else "",
        "headers": headers,
        "lines": lines,
    }
