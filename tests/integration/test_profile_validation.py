"""Bad profile inputs stop site.yml in its first tasks, naming the host and the value.

The target is a podman container name that does not exist: a task that got past
validation would fail to connect instead of changing anything, so these runs
are safe on any machine. The trunk case resolves against a loopback port where
nothing listens.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOST = "rt-validation-nonexistent"
pytestmark = pytest.mark.slow


def run_site(tmp_path, **host_vars):
    # JSON is YAML: a one-host inventory with the host in "targets".
    host_vars["ansible_connection"] = "containers.podman.podman"
    inventory = {"all": {"children": {"targets": {"hosts": {HOST: host_vars}}}}}
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), "playbooks/site.yml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def assert_stopped_by_validation(result, *needles):
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{HOST}:" in out
    for needle in needles:
        assert needle in out, out[-2000:]
    # Nothing after validation ran: no connection attempt to the (missing) host.
    assert "sipguard_responder" not in out
    assert "UNREACHABLE" not in out


def test_unknown_profile(tmp_path):
    result = run_site(tmp_path, sipguard_profile="publik", sipguard_lan_networks=["198.18.10.0/24"])
    assert_stopped_by_validation(result, '"publik"', "private_lan")


def test_invalid_lan_network(tmp_path):
    result = run_site(tmp_path, sipguard_profile="private_lan", sipguard_lan_networks=["198.18.10.0/33"])
    assert_stopped_by_validation(result, "198.18.10.0/33")


def test_lan_only_profile_without_networks(tmp_path):
    result = run_site(tmp_path, sipguard_profile="mixed")
    assert_stopped_by_validation(result, "both empty")


def test_account_problem_does_not_leak_the_password(tmp_path):
    result = run_site(
        tmp_path,
        sipguard_profile="private_lan",
        sipguard_lan_networks=["198.18.10.0/24"],
        sipguard_accounts=[{"username": "1001", "password": "leak-me-not", "networks": ["nowhere"]}],
    )
    assert_stopped_by_validation(result, "'nowhere'")
    assert "leak-me-not" not in result.stdout + result.stderr


def test_trunk_that_does_not_resolve(tmp_path):
    result = run_site(
        tmp_path,
        sipguard_profile="mixed",
        sipguard_lan_networks=["198.18.10.0/24"],
        sipguard_trunks=[{"name": "carrier", "dns": "missing.trunk.invalid"}],
        sipguard_dns_nameservers=["127.0.0.1"],
    )
    assert_stopped_by_validation(result, '"carrier"', "missing.trunk.invalid")
