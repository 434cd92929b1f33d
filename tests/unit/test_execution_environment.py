"""execution-environment.yml renders a build context with ansible-builder (no image is built).

The EE installs the collection from the tarball `./run release` builds; here the tarball is built
into a temporary directory laid out like the clone (build/, requirements.txt) and
`ansible-builder create` renders the context there.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tool(name):
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable} (requirements-dev.txt pins it)")
    return str(path)


@pytest.fixture(scope="module")
def ee():
    return yaml.safe_load((ROOT / "execution-environment.yml").read_text())


def test_the_ee_installs_the_tarball_of_this_version(ee):
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    tarball = f"sipguard-hardening-{version}.tar.gz"
    assert ee["version"] == 3
    assert [c["name"] for c in ee["dependencies"]["galaxy"]["collections"]] == [f"collections/{tarball}"]
    assert ee["additional_build_files"] == [{"src": f"build/{tarball}", "dest": "collections"}]
    assert ee["dependencies"]["python"] == "requirements.txt"
    assert "system" not in ee["dependencies"]  # the controller needs no system packages (see the file)


def test_requirements_yml_lists_no_collection():
    assert yaml.safe_load((ROOT / "requirements.yml").read_text()) == {"collections": []}


def test_ansible_builder_create_renders_the_build_context(ee, tmp_path):
    for name in ("execution-environment.yml", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run([_tool("ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "build"),
                    str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    result = subprocess.run(
        [_tool("ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    tarball = ee["additional_build_files"][0]["src"].rsplit("/", 1)[1]
    assert (context / "_build" / "collections" / tarball).stat().st_size > 0
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy["collections"] == [{"name": f"collections/{tarball}", "type": "file"}]
    assert "dnspython" in (context / "_build" / "requirements.txt").read_text()
    assert f'EE_BASE_IMAGE="{ee["images"]["base_image"]["name"]}"' in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert "--user-pip=requirements.txt" in containerfile
    assert "ansible-core==2.19.14" in containerfile
