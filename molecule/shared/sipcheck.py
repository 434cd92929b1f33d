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
from pathlib import Path

import testinfra

_SCRIPT = (Path(__file__).parent / "vantage_probe.py").read_text()


def _in_vantage(vantage, *args) -> str:
    """Run vantage_probe.py with `args` inside the vantage container."""
    quoted = " ".join(shlex.quote(str(a)) for a in args)
    result = vantage.run(f"python3 -c {shlex.quote(_SCRIPT)} {quoted}")
    assert result.rc == 0, f"vantage script failed: {result.stderr}"
    return result.stdout


def sip_probe(vantage, host: str, *, port: int = 5060, transport: str = "udp", method: str = "OPTIONS",
              user_agent: str = "Linphone/5.2", user: str = "100", password: str = "",
              source: str = "", expires: int = 60, timeout: float = 2.0, display: str = "",
              call_id: str = "") -> dict:
    """Send one SIP request from the testinfra host `vantage`; return what came back.

    `status` is the last reply's code (None for silence); with `password` a digest
    challenge is answered once, and `statuses` holds both codes (e.g. [401, 200]). `display` and
    `call_id` set the From display name (none by default) and the Call-ID (random by default).
    """
    out = _in_vantage(vantage, "probe", host, port, transport, method, user_agent, timeout, user, password,
                      source, expires, display, call_id)
    return json.loads(out.strip().splitlines()[-1])


def svmap(vantage, target: str, port: int = 5060) -> str:
    """sipvicious svmap from `vantage`: its report ("found nothing" when silent)."""
    result = vantage.run(f"svmap -p {port} --timeout 2 {shlex.quote(target)}")
    return result.stdout + result.stderr


def svwar(vantage, target: str, extensions: str = "1000-1010", port: int = 5060) -> str:
    """sipvicious svwar extension enumeration from `vantage`; returns its report."""
    result = vantage.run(f"timeout 60 svwar -p {port} -e {extensions} -m REGISTER {shlex.quote(target)}")
    return result.stdout + result.stderr


def add_address(vantage, address: str, prefix: int) -> str:
    """Give `vantage` one more source address (a "different" client on the same wire).

    Idempotent: once the address is assigned, `ip route get` answers "dev lo", and
    an address with a /24 on lo would make the whole subnet local to the vantage.
    """
    family = "-6" if ":" in address else "-4"
    if vantage.run(f"ip -o {family} addr show to {address}").stdout.strip():
        return address
    dev = vantage.check_output("ip -o route get %s | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'", address).strip()
    assert dev and dev != "lo", f"no interface towards {address} on the vantage"
    vantage.check_output(f"ip addr add {address}/{prefix} dev {dev} nodad")
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
    _in_vantage(vantage, "flood", host, port, count, source, user_agent, seconds)


def flood_from_the_phone(topo, account: dict) -> tuple[bool, bool]:
    """Flood the target from the LAN phone's own address, as a spoofer with a trusted address would,
    then see whether that address landed in the block set and whether the phone registers again."""
    phone, target = topo.host("phone"), topo.host("target")
    flood(phone, topo.target_lan, count=3000, seconds=5)
    address = phone.check_output(f"ip -o route get {topo.target_lan}").split(" src ")[1].split()[0]
    banned = in_ipset(target, "sipguard-block4", address)

    def registered():
        return sip_probe(phone, topo.target_lan, method="REGISTER", **account)["status"] == 200

    return banned, bool(wait_for(registered, timeout=10))
