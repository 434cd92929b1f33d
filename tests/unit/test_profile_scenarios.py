"""The four profile scenarios' molecule.yml are what scripts/profile-scenarios.py writes from one template and
the address plan, so they cannot drift apart."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from testkit.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("profile_scenarios", ROOT / "scripts/profile-scenarios.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = load_script()


@pytest.mark.parametrize("directory", sorted(SCRIPT.SCENARIOS))
def test_committed_file_is_what_the_script_writes(directory):
    committed = (ROOT / "molecule" / directory / "molecule.yml").read_text()
    assert committed == SCRIPT.render(directory), "run scripts/profile-scenarios.py"


@pytest.mark.parametrize("directory", sorted(SCRIPT.SCENARIOS))
def test_generated_scenario_uses_the_address_plan(directory):
    name, profile, _ = SCRIPT.SCENARIOS[directory]
    scenario = yaml.safe_load(SCRIPT.render(directory))
    topo = Topology.of(name)
    target = next(p for p in scenario["platforms"] if p["name"] == f"mol-{name}-target")
    wan = f"--network=sipguard-mol-{name}-wan:ip={topo.target_wan},ip={topo.target_wan6}"
    assert wan in target["extra_opts"]
    assert scenario["dependency"]["command"].endswith(f"networks.sh {name} {topo.index}")
    host_vars = scenario["provisioner"]["inventory"]["host_vars"][f"mol-{name}-target"]
    assert host_vars["sipguard_profile"] == profile
    assert host_vars["sipguard_lan_networks"][0] == f"{topo.lan}.0/24"
