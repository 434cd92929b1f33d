"""Scenario "kamailio": its topology (testkit/topology.json) as the `topo` fixture.

molecule/shared and testkit are importable through pyproject.toml's pytest `pythonpath`;
kamailio_targets.py (beside this file) names the scenario's two Kamailio targets.
"""

from scenario_fixtures import topo_fixture

topo = topo_fixture("kamailio")
