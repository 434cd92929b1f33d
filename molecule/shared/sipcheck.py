"""Helpers for the Molecule verifiers: send real SIP from one container to another.

The probe runs *inside* a vantage-point container (scanner, LAN phone, trunk)
through testinfra's podman backend, using the same `sipguard_sip_probe` logic
a user gets from the audit role: a small stdlib script piped to python3 there.
"""

from __future__ import annotations

import json
import shlex

# Sent with `python3 -c` inside the vantage container. Kept tiny and stdlib-only
# because the container has nothing else; it prints one JSON line.
_PROBE = r"""
import json, socket, sys, time, uuid
host, port, transport, method, ua, timeout = sys.argv[1:7]
port = int(port); timeout = float(timeout)
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
s = socket.socket(fam, kind); s.settimeout(timeout)
tag = uuid.uuid4().hex[:10]
hp = "[%s]:%d" % (host, port) if fam == socket.AF_INET6 else "%s:%d" % (host, port)
msg = ("%s sip:100@%s SIP/2.0\r\nVia: SIP/2.0/%s 0.0.0.0:5060;branch=z9hG4bK%s;rport\r\n"
       "Max-Forwards: 70\r\nFrom: <sip:100@%s>;tag=%s\r\nTo: <sip:100@%s>\r\n"
       "Call-ID: %s\r\nCSeq: 1 %s\r\nContact: <sip:100@0.0.0.0:5060>\r\nUser-Agent: %s\r\n"
       "Content-Length: 0\r\n\r\n") % (method, hp, transport.upper(), tag, hp, tag, hp, tag, method, ua)
out = {"answered": False, "status": None}
t0 = time.monotonic()
try:
    if kind == socket.SOCK_STREAM:
        s.connect((host, port)); s.sendall(msg.encode()); data = s.recv(65535)
    else:
        s.sendto(msg.encode(), (host, port)); data = s.recv(65535)
    if data:
        first = data.split(b"\r\n", 1)[0].decode(errors="replace")
        out = {"answered": True, "status": int(first.split()[1]), "first_line": first,
               "rtt_ms": round((time.monotonic() - t0) * 1000, 2)}
except ConnectionRefusedError:
    out["tcp_refused"] = True
except (socket.timeout, ConnectionResetError):
    pass
print(json.dumps(out))
"""


def sip_probe(vantage, host: str, *, port: int = 5060, transport: str = "udp", method: str = "OPTIONS",
              user_agent: str = "friendly-scanner", timeout: float = 2.0) -> dict:
    """Send one SIP request from the testinfra host `vantage`; return what came back."""
    args = " ".join(shlex.quote(str(a)) for a in (host, port, transport, method, user_agent, timeout))
    result = vantage.run(f"python3 -c {shlex.quote(_PROBE)} {args}")
    assert result.rc == 0, f"probe failed to run on {vantage.backend.get_pretty_hostname()}: {result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def svmap(vantage, host: str, port: int = 5060) -> str:
    """Run sipvicious svmap from `vantage` against host:port and return its report."""
    result = vantage.run(f"svmap -p {port} {shlex.quote(host)}")
    return result.stdout + result.stderr
