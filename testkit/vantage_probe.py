"""Runs *inside* a vantage-point container (scanner, phone, trunk): stdlib only.

    python3 vantage_probe.py probe HOST PORT TRANSPORT METHOD UA TIMEOUT USER PASSWORD SOURCE EXPIRES
    python3 vantage_probe.py flood HOST PORT COUNT SOURCE UA SECONDS

`probe` sends one SIP request and prints one JSON line; with a password it
answers a 401/407 digest challenge once (RFC 7616, qop=auth). `flood` sends at
most COUNT OPTIONS for at most SECONDS. testkit/vantage.py passes this file's text to
`python3 -c`, so the containers need nothing but python3.
"""

import hashlib
import json
import re
import socket
import sys
import time
import uuid


def host_port(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def request(method, hp, transport, user, src, ua, call_id, cseq, expires, auth="", display=""):
    tag = uuid.uuid4().hex[:8]
    sent_by = f"[{src}]" if ":" in src else (src or "0.0.0.0")  # an IPv6 address needs brackets
    lines = [
        f"{method} sip:{hp} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {sent_by};branch=z9hG4bK{tag};rport",
        "Max-Forwards: 70",
        f"From: {display + ' ' if display else ''}<sip:{user}@{hp}>;tag={tag}",
        f"To: <sip:{user}@{hp}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{user}@{sent_by}>",
        f"User-Agent: {ua}",
    ]
    if method == "REGISTER":
        lines.append(f"Expires: {expires}")
    if auth:
        lines.append(auth)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def digest_answer(header_name, challenge, method, hp, user, password):
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', challenge))
    algo = params.get("algorithm", "MD5")
    hfunc = hashlib.sha256 if algo.upper().startswith("SHA-256") else hashlib.md5

    def hx(text):
        return hfunc(text.encode()).hexdigest()

    uri, cnonce, nc = f"sip:{hp}", uuid.uuid4().hex[:16], "00000001"
    ha1 = hx(f"{user}:{params['realm']}:{password}")
    response = hx(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{hx(f'{method}:{uri}')}")
    name = "Proxy-Authorization" if header_name.lower().startswith("proxy") else "Authorization"
    return (f'{name}: Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
            f'uri="{uri}", response="{response}", algorithm={algo}, qop=auth, nc={nc}, cnonce="{cnonce}"')


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

    def exchange(data):
        if kind == socket.SOCK_STREAM:
            sock.sendall(data)
        else:
            sock.sendto(data, (host, port))
        reply = sock.recv(65535)
        if not reply:
            raise ConnectionResetError
        return reply.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")

    try:
        if kind == socket.SOCK_STREAM:
            sock.connect((host, port))
        head = exchange(request(method, hp, transport, user, src, ua, call_id, 1, expires, display=display))
        out.update(answered=True, first_line=head[0])
        out["statuses"].append(int(head[0].split()[1]))
        out["headers"] = [h for h in head[1:] if h.split(":")[0].lower() in ("server", "user-agent")]
        challenges = [h.split(":", 1) for h in head if h.lower().startswith(("www-auth", "proxy-auth"))]
        if password and challenges:
            name, value = challenges[0]
            auth = digest_answer(name, value, method, hp, user, password)
            head = exchange(request(method, hp, transport, user, src, ua, call_id, 2, expires, auth, display))
            out["statuses"].append(int(head[0].split()[1]))
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
