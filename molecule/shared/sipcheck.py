"""Helpers for the Molecule verifiers: real SIP traffic between the containers
of a scenario, and reading what the target's kernel and responder saw.

Probes run *inside* a vantage-point container (scanner, phone, trunk) through
testinfra's podman backend: a small stdlib script piped to python3 there, or
the real SIP tools installed in the image (sipvicious, sipsak).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass

import testinfra

# Sent with `python3 -c` inside the vantage container (it has nothing but the
# standard library). One request, one JSON line out. With a password it answers
# a 401/407 digest challenge once (RFC 7616, qop=auth) and reports both replies.
_PROBE = r"""
import hashlib, json, re, socket, sys, time, uuid
(host, port, transport, method, ua, timeout, user, password, src, expires) = sys.argv[1:11]
port = int(port); timeout = float(timeout)
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
hp = "[%s]:%d" % (host, port) if fam == socket.AF_INET6 else "%s:%d" % (host, port)
call_id = uuid.uuid4().hex

def build(cseq, auth=""):
    tag = uuid.uuid4().hex[:8]
    lines = ["%s sip:%s SIP/2.0" % (method, hp),
             "Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport" % (transport.upper(), src or "0.0.0.0", tag),
             "Max-Forwards: 70", "From: <sip:%s@%s>;tag=%s" % (user, hp, tag), "To: <sip:%s@%s>" % (user, hp),
             "Call-ID: %s" % call_id, "CSeq: %d %s" % (cseq, method),
             "Contact: <sip:%s@%s>" % (user, src or "0.0.0.0"), "User-Agent: %s" % ua]
    if method == "REGISTER":
        lines.append("Expires: %s" % expires)
    if auth:
        lines.append(auth)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()

def answer(challenge, cseq):
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', challenge.split(" ", 1)[1]))
    algo = params.get("algorithm", "MD5"); h = hashlib.sha256 if algo.upper().startswith("SHA-256") else hashlib.md5
    hx = lambda s: h(s.encode()).hexdigest()
    uri = "sip:%s" % hp; cnonce = uuid.uuid4().hex[:16]; nc = "00000001"
    ha1 = hx("%s:%s:%s" % (user, params["realm"], password)); ha2 = hx("%s:%s" % (method, uri))
    resp = hx("%s:%s:%s:%s:auth:%s" % (ha1, params["nonce"], nc, cnonce, ha2))
    name = "Proxy-Authorization" if challenge.lower().startswith("proxy") else "Authorization"
    return ('%s: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, '
            'qop=auth, nc=%s, cnonce="%s"' % (name, user, params["realm"], params["nonce"], uri, resp, algo, nc, cnonce))

s = socket.socket(fam, kind); s.settimeout(timeout)
if src:
    s.bind((src, 0))
out = {"answered": False, "statuses": []}
def exchange(data):
    if kind == socket.SOCK_STREAM:
        s.sendall(data)
    else:
        s.sendto(data, (host, port))
    reply = s.recv(65535)
    if not reply:
        raise ConnectionResetError
    head = reply.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    return head
try:
    if kind == socket.SOCK_STREAM:
        s.connect((host, port))
    head = exchange(build(1))
    out["answered"] = True; out["statuses"].append(int(head[0].split()[1])); out["first_line"] = head[0]
    out["headers"] = [h for h in head[1:] if h.split(":")[0].lower() in ("server", "user-agent", "www-authenticate")]
    chall = [h.split(":", 1)[1].strip() for h in head if h.lower().startswith(("www-authenticate:", "proxy-authenticate:"))]
    if password and chall:
        kind_hdr = "Proxy-Authenticate" if head[0].split()[1] == "407" else "WWW-Authenticate"
        head = exchange(build(2, answer(kind_hdr + " " + chall[0], 2)))
        out["statuses"].append(int(head[0].split()[1]))
except ConnectionRefusedError:
    out["tcp_refused"] = True
except (socket.timeout, ConnectionResetError, OSError):
    pass
out["status"] = out["statuses"][-1] if out["statuses"] else None
print(json.dumps(out))
"""


def sip_probe(vantage, host: str, *, port: int = 5060, transport: str = "udp", method: str = "OPTIONS",
              user_agent: str = "Linphone/5.2", user: str = "100", password: str = "",
              source: str = "", expires: int = 60, timeout: float = 2.0) -> dict:
    """Send one SIP request from the testinfra host `vantage`; return what came back.

    `status` is the last reply's code (None for silence); with `password` a digest
    challenge is answered once, and `statuses` holds both codes (e.g. [401, 200]).
    """
    args = " ".join(shlex.quote(str(a)) for a in
                    (host, port, transport, method, user_agent, timeout, user, password, source, expires))
    result = vantage.run(f"python3 -c {shlex.quote(_PROBE)} {args}")
    assert result.rc == 0, f"probe failed to run: {result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def svmap(vantage, target: str, port: int = 5060) -> str:
    """sipvicious svmap from `vantage`: its report ("found nothing" when silent)."""
    result = vantage.run(f"svmap -p {port} --timeout 2 {shlex.quote(target)}")
    return result.stdout + result.stderr


def svwar(vantage, target: str, extensions: str = "1000-1010", port: int = 5060) -> str:
    """sipvicious svwar extension enumeration from `vantage`; returns its report."""
    result = vantage.run(f"timeout 60 svwar -p {port} -e {extensions} -m REGISTER {shlex.quote(target)}")
    return result.stdout + result.stderr


def add_address(vantage, address: str, prefix: int) -> str:
    """Give `vantage` one more source address (a "different" client on the same wire)."""
    dev = vantage.check_output("ip -o route get %s | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'", address).strip()
    vantage.run(f"ip addr add {address}/{prefix} dev {dev} nodad 2>/dev/null || true")
    return address


def rule_packets(target, pattern: str, table: str = "filter", v6: bool = False) -> int:
    """Sum of the packet counters of the rules whose `iptables-save -c` line matches `pattern`."""
    tool = "ip6tables-save" if v6 else "iptables-save"
    total = 0
    for line in target.check_output(f"{tool} -c -t {table}").splitlines():
        m = re.match(r"\[(\d+):\d+\] (.*)", line)
        if m and re.search(pattern, m.group(2)):
            total += int(m.group(1))
    return total


def in_ipset(target, set_name: str, address: str) -> bool:
    return target.run(f"ipset test {set_name} {address}").rc == 0


def trace_lines(target, path: str = "/var/log/sipresponder/trace.jsonl") -> list[dict]:
    out = target.run(f"cat {path} 2>/dev/null").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_for(predicate, timeout: float, interval: float = 1.0):
    """Poll `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


@dataclass(frozen=True)
class Topology:
    """The addresses of one profile scenario (see molecule/shared/networks.sh)."""

    name: str
    index: int

    @property
    def wan(self) -> str:
        return f"198.19.{2 * self.index}"

    @property
    def lan(self) -> str:
        return f"198.19.{2 * self.index + 1}"

    @property
    def wan6(self) -> str:
        return f"2001:2:0:{0x100 + 2 * self.index:x}:"

    @property
    def lan6(self) -> str:
        return f"2001:2:0:{0x100 + 2 * self.index + 1:x}:"

    target_wan = property(lambda self: f"{self.wan}.10")
    target_lan = property(lambda self: f"{self.lan}.10")
    target_wan6 = property(lambda self: f"{self.wan6}:10")

    def host(self, role: str):
        return testinfra.get_host(f"podman://mol-{self.name}-{role}")


def flood(vantage, host: str, *, count: int, source: str = "", port: int = 5060,
          user_agent: str = "Linphone/5.2", seconds: float = 5.0) -> None:
    """Send at most `count` OPTIONS as fast as possible (and for at most `seconds`)."""
    script = (
        "import socket,sys,time\n"
        "h,p,n,src,ua,t=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),sys.argv[4],sys.argv[5],float(sys.argv[6])\n"
        "s=socket.socket(socket.AF_INET6 if ':' in h else socket.AF_INET,socket.SOCK_DGRAM)\n"
        "src and s.bind((src,0))\n"
        "end=time.monotonic()+t\n"
        "for i in range(n):\n"
        "  m=('OPTIONS sip:100@%s SIP/2.0\\r\\nVia: SIP/2.0/UDP %s;branch=z9hG4bKf%d\\r\\nFrom: <sip:100@x>;tag=f%d\\r\\n'\n"
        "     'To: <sip:100@x>\\r\\nCall-ID: f%d\\r\\nCSeq: 1 OPTIONS\\r\\nMax-Forwards: 70\\r\\nUser-Agent: %s\\r\\n'\n"
        "     'Content-Length: 0\\r\\n\\r\\n')%(h,src or '0.0.0.0',i,i,i,ua)\n"
        "  s.sendto(m.encode(),(h,p))\n"
        "  if time.monotonic()>end: break\n"
    )
    args = " ".join(shlex.quote(str(a)) for a in (host, port, count, source, user_agent, seconds))
    vantage.check_output(f"python3 -c {shlex.quote(script)} {args}")
