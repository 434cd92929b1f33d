"""The `topo` fixture each scenario's conftest.py creates with its name (testkit/topology.json)."""

from __future__ import annotations

import pytest

from testkit.topology import Topology


def topo_fixture(name: str, index: int | None = None):
    """A session fixture: the scenario `name`'s Topology (its index as the address plan has it;
    an `index` given here must agree)."""

    @pytest.fixture(scope="session")
    def topo() -> Topology:
        topology = Topology.of(name)
        assert index in {None, topology.index}, f"{name} is index {topology.index}, not {index}"
        return topology

    return topo
