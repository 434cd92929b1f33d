"""Scenario "asterisk": its topology (testkit/topology.json) as the `topo` fixture, and the two PBXs.

molecule/shared and testkit are importable through pyproject.toml's pytest `pythonpath`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from scenario_fixtures import topo_fixture

topo = topo_fixture("asterisk")

VARS = Path(__file__).resolve().parents[3] / "roles/sipguard_profile/vars/main.yml"
# The two Asterisk hosts: container role (mol-asterisk-ROLE), profile, last byte of both addresses.
PBXS = {"target": ("private_lan", 10), "mixed": ("mixed", 11)}


def _merge(base: dict, over: dict) -> dict:
    """Ansible's combine(recursive=True): what roles/sipguard_profile/tasks/settings.yml does."""
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else value
    return out


def settings(profile: str) -> dict:
    """The profile row as an Asterisk host gets it (sipguard_settings): the row, the backend's differences
    merged in."""
    table = yaml.safe_load(VARS.read_text())
    backend = table["sipguard_profile_backends"]["asterisk"]["settings"].get(profile) or {}
    return _merge(table["sipguard_profiles"][profile], backend)


class Pbx:
    """One of the scenario's Asterisk hosts as the tests see it."""

    def __init__(self, topo, role: str):
        self.role = role
        self.profile, last = PBXS[role]
        self.name = f"mol-{topo.name}-{role}"
        self.host = topo.host(role)
        self.lan = f"{topo.lan}.{last}"
        self.wan = f"{topo.wan}.{last}"
        self.expected = settings(self.profile)

    def __repr__(self) -> str:
        return f"{self.name} ({self.profile})"


# Module scope: pytest groups the tests of a parametrised fixture by parameter within its scope, and a
# session-wide grouping would move test_3_pbx.py's reboots and rollbacks before test_2_common.py.
@pytest.fixture(params=sorted(PBXS), scope="module")
def pbx(request, topo) -> Pbx:
    return Pbx(topo, request.param)
