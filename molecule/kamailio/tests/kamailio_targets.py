"""The scenario's two Kamailio targets: their addresses and a playbook run against one of them."""

from __future__ import annotations

import os
import subprocess

from testkit.ansible import ansible

TARGETS = {"public": 10, "mixed": 11}  # profile -> last byte of the target's addresses
PHONE = {"user": "1001", "password": "lab-phone-secret"}


def wan(topo, profile: str) -> str:
    return f"{topo.wan}.{TARGETS[profile]}"


def wan6(topo, profile: str) -> str:
    return f"{topo.wan6}:{TARGETS[profile]}"


def lan(topo, profile: str) -> str:
    return f"{topo.lan}.{TARGETS[profile]}"


def playbook(topo, name: str, *extra: str,
             hosts: tuple[str, ...] = tuple(TARGETS)) -> subprocess.CompletedProcess:
    """Run one of the project's playbooks against some of this scenario's targets."""
    limit = ",".join([f"mol-{topo.name}-{profile}" for profile in hosts] + ["localhost"])
    return ansible("-i", os.environ["MOLECULE_INVENTORY_FILE"], name, "--limit", limit, *extra, timeout=600)
