"""Helpers for the Molecule verifiers: real SIP traffic between the containers
of a scenario, and reading what the target's kernel and responder saw.

Probes run *inside* a vantage-point container (scanner, phone, trunk) through
testinfra's podman backend: the test kit's SIP vantage probe (testkit.vantage), or
the real SIP tools installed in the image (sipvicious, sipsak). The scenario's
addresses come from the test kit's address plan (testkit.topology).
"""

from __future__ import annotations

import json
import re
import shlex
import time

from testkit.vantage import flood, sip_probe


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
