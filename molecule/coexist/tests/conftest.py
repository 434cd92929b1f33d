"""Scenario "coexist": the shared helpers in molecule/shared, and this scenario's topology."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from scenario_fixtures import topo_fixture

topo = topo_fixture("coexist", 5)
