"""Runs *inside* a vantage-point container (scanner, phone, trunk): stdlib only.

    python3 vantage_probe.py probe HOST PORT TRANSPORT METHOD UA TIMEOUT USER PASSWORD SOURCE EXPIRES
    python3 vantage_probe.py flood HOST PORT COUNT SOURCE UA SECONDS

`probe` sends one SIP request and prints one JSON line; with a password it
answers a 401/407 digest challenge once (RFC 7616). `flood` sends at most COUNT
OPTIONS for at most SECONDS. testkit/vantage.py passes sipguard's SIP codec
(sipresponder/sip_codec.py) followed by this file's text to `python3 -c`, so the
containers need nothing but python3, and the messages are the codec's.
"""

import json
import socket
import sys
import time
import uuid

try:  # in the tree
    from sipresponder import sip_codec as codec
except ImportError:  # in a container: the codec's text runs ahead of this file's, in the same module
    codec = sys.modules[__name__]


def host_port(host, port):
    return f"{codec.host_for_uri(host)}:{port}"


def request(method, hp, transport, user, src, ua, call_id, cseq, expires, auth="", display=""):
    tag = uuid.uuid4().hex[:8]
    sent_by = codec.host_for_uri(src) if src else "0.0.0.0"
    return codec.build_request(
        method, f"sip:{hp}", sent_by, f"z9hG4bK{tag}", f"sip:{user}@{hp}", tag, call_id, cseq,
        transport=transport, contact=f"sip:{user}@{sent_by}", user_agent=ua,
        expires=expires if method == "REGISTER" else None, headers=[auth] if auth else [], display=display,
    )


def digest_answer(header_name, params, method, hp, user, password):
    """The Authorization (or Proxy-Authorization) line answering one challenge, nonce count 1."""
    answer = codec.DigestClient(params, user, password, method, f"sip:{hp}").header(1)
    name = "Proxy-Authorization" if header_name.lower().startswith("proxy") else "Authorization"
    return f"{name}: {answer}"


def probe(host, port, transport, method, ua, timeout, user, password, src, expires, display="", call_id=""):
    port, timeout = int(port), float(timeout)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    hp, call_id = host_port(host, port), call_id or uuid.uuid4().hex
    sock = socket.socket(family, kind)
    sock.settimeout(timeout)
    if src:
        sock.bind((src, 0))
    out = {"answered": False, "statuses": []}

    def exchange(cseq, auth=""):
        data = request(method, hp, transport, user, src, ua, call_id, cseq, expires, auth, display)
        if kind == socket.SOCK_STREAM:
            sock.sendall(data)
        else:
            sock.sendto(data, (host, port))
        reply = sock.recv(65535)
        parsed = codec.parse_response(reply) if reply else None
        if parsed is None:
            raise ConnectionResetError  # closed, or not a SIP response: nothing answered
        return reply, parsed

    try:
        if kind == socket.SOCK_STREAM:
            sock.connect((host, port))
        reply, parsed = exchange(1)
        lines = parsed["lines"]
        out.update(answered=True, first_line=lines[0])
        out["statuses"].append(parsed["status_code"])
        out["headers"] = [h for h in lines[1:] if h.split(":")[0].lower() in ("server", "user-agent")]
        challenges = codec.challenges(reply)
        if password and challenges:
            name, params = challenges[0]
            auth = digest_answer(name, params, method, hp, user, password)
            _reply, parsed = exchange(2, auth)
            out["statuses"].append(parsed["status_code"])
    except ConnectionRefusedError:
        out["tcp_refused"] = True
    except OSError:  # timeout, reset: silence is a result
        pass
    out["status"] = out["statuses"][-1] if out["statuses"] else None
    print(json.dumps(out))


def flood(host, port, count, src, ua, seconds):
    port, count = int(port), int(count)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    if src:
        sock.bind((src, 0))
    end = time.monotonic() + float(seconds)
    hp = host_port(host, port)
    for i in range(count):
        sock.sendto(request("OPTIONS", hp, "udp", "100", src, ua, f"flood{i}", 1, 0), (host, port))
        if time.monotonic() > end:
            break


if __name__ == "__main__":
    {"probe": probe, "flood": flood}[sys.argv[1]](*sys.argv[2:])
