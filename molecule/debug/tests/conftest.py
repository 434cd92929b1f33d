"""Scenario "debug": its topology (testkit/topology.json) as the `topo` fixture.

molecule/shared and testkit are importable through pyproject.toml's pytest `pythonpath`.
"""

from scenario_fixtures import topo_fixture

topo = topo_fixture("debug")
