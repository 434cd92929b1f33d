"""The lab/Molecule address plan: testkit/topology.json, and a scenario's view of it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TOPOLOGY_FILE = Path(__file__).with_name("topology.json")


@cache
def topology() -> dict:
    """The whole plan (lab, bench, molecule), as the file has it."""
    return json.loads(TOPOLOGY_FILE.read_text())


def _prefix4(subnet: str) -> str:
    """"198.19.4.0/24" -> "198.19.4" (append ".10" for a host)."""
    return subnet.removesuffix(".0/24")


def _prefix6(subnet: str) -> str:
    """"2001:2:0:104::/64" -> "2001:2:0:104:" (append ":10" for a host)."""
    return subnet.removesuffix(":/64")


@dataclass(frozen=True)
class Topology:
    """The addresses of one Molecule scenario (its wan and lan networks; the target is .10 on both)."""

    name: str
    index: int

    @classmethod
    def of(cls, name: str) -> Topology:
        return cls(name, topology()["molecule"]["scenarios"][name]["index"])

    @property
    def _nets(self) -> dict:
        nets = topology()["molecule"]["scenarios"][self.name]
        assert nets["index"] == self.index, f"{self.name} is index {nets['index']} in {TOPOLOGY_FILE}"
        return nets

    wan = property(lambda self: _prefix4(self._nets["wan"]["ipv4"]))
    lan = property(lambda self: _prefix4(self._nets["lan"]["ipv4"]))
    wan6 = property(lambda self: _prefix6(self._nets["wan"]["ipv6"]))
    lan6 = property(lambda self: _prefix6(self._nets["lan"]["ipv6"]))
    target_wan = property(lambda self: f"{self.wan}.10")
    target_lan = property(lambda self: f"{self.lan}.10")
    target_wan6 = property(lambda self: f"{self.wan6}:10")
    lan_networks = property(lambda self: [self._nets["lan"]["ipv4"], self._nets["lan"]["ipv6"]])

    def host(self, role: str):
        """The testinfra host of the scenario's container `role` (target, scanner, phone, trunk...)."""
        import testinfra  # noqa: PLC0415 (only the verifiers have it)

        return testinfra.get_host(f"podman://mol-{self.name}-{role}")
