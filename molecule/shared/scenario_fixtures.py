"""The `topo` fixture each scenario's conftest.py creates with its name and index."""

import pytest
from sipcheck import Topology


def topo_fixture(name: str, index: int):
    @pytest.fixture(scope="session")
    def topo() -> Topology:
        return Topology(name, index)

    return topo
