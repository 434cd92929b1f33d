"""SIP message building and parsing for the sipguard probe module (pure functions, no sockets).

Ansible ships this file to the target with the module that imports it, so it uses the standard
library only. It builds one out-of-dialog request the way a scanner would and reads a response's
status line and headers; bodies are never interpreted.
"""

from __future__ import absolute_import, division, print_function

import binascii
import os
import re

__metaclass__ = type

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


def host_for_uri(address):
    """An IPv6 literal goes in brackets inside a SIP URI or a Via header."""
    return "[{}]".format(address) if ":" in address and not address.startswith("[") else address


def new_token():
    # secrets.token_hex is Python 3.6+; os.urandom is the same source.
    return binascii.hexlify(os.urandom(8)).decode("ascii")


def build_request(
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
    """One SIP request as bytes; REGISTER targets the domain, the others the user at the host."""
    target = host_for_uri(host)
    local = host_for_uri(local_address)
    if method == "REGISTER":
        request_uri = "sip:{}:{}".format(target, port)
        to_user = from_user
    else:
        request_uri = "sip:{}@{}:{}".format(to_user, target, port)
    body = ""
    if method == "INVITE":
        family = "IP6" if ":" in local_address else "IP4"
        body = (
            "v=0\r\no=- 1 1 IN {family} {address}\r\ns=-\r\nc=IN {family} {address}\r\n"
            "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n".format(
                family=family, address=local_address)
        )
    lines = [
        "{} {} SIP/2.0".format(method, request_uri),
        "Via: SIP/2.0/{} {}:{};branch={};rport".format(transport.upper(), local, local_port, branch),
        "Max-Forwards: 70",
        "From: <sip:{}@{}>;tag={}".format(from_user, target, tag),
        "To: <sip:{}@{}>".format(to_user, target),
        "Call-ID: {}".format(call_id),
        "CSeq: {} {}".format(cseq, method),
        "Contact: <sip:{}@{}:{}>".format(from_user, local, local_port),
        "User-Agent: {}".format(user_agent),
        "Accept: application/sdp",
    ]
    if method == "REGISTER":
        lines.append("Expires: 60")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: {}".format(len(body.encode())))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


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


def split_message(buffer):
    """For a stream (TCP): (one whole message, the rest), or None while the message is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("utf-8", "replace")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _colon, value = line.partition(":")
        if name.strip().lower() in ("content-length", "l"):
            length = int(value.strip() or 0) if value.strip().isdigit() else 0
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return buffer[:total], buffer[total:]


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
        key = name.strip().lower()
        key = COMPACT_HEADERS.get(key, key)
        headers.setdefault(key, value.strip())
    return {
        "status_code": int(parts[1]),
        "reason": parts[2] if len(parts) > 2 else "",
        "headers": headers,
        "lines": lines,
    }
