"""Target hosts for playbook tests: containers from the lab image with systemd as PID 1.

They have no network (the controller reaches them through ``podman exec``, the podman
connection), and NET_ADMIN/NET_RAW for a firewall layer in their own network namespace.
"""

import contextlib
import json
import os
import shutil
import subprocess

import pytest

from testkit.ansible import ansible
from testkit.systemd import BOOTED, wait_for_systemd

IMAGE = os.environ.get("SIPGUARD_IMAGE", "localhost/sipguard-lab:latest")


def sh(*args, check=True, **kwargs):
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120, **kwargs)
    if check and proc.returncode:
        raise AssertionError(f"{args[:6]} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return proc


def ct(name, *args, check=True, **kwargs):
    """Run a command in the container (``input=`` for its stdin); its stdout."""
    interactive = ["-i"] if "input" in kwargs else []
    return sh("podman", "exec", *interactive, name, *args, check=check, **kwargs).stdout


@contextlib.contextmanager
def targets(names, label):
    """Start one container per name, wait for their systemd, remove them afterwards whatever happens."""
    if os.geteuid() != 0 or not shutil.which("podman"):
        pytest.skip("needs root and podman")
    if sh("podman", "image", "exists", IMAGE, check=False).returncode != 0:
        pytest.skip(f"image {IMAGE} not built (scripts/build-image.sh)")
    try:
        for name in names:
            sh("podman", "run", "-d", "--name", name, "--network", "none", "--systemd=always",
               "--cap-add", "NET_ADMIN,NET_RAW", "--label", f"sipguard.test={label}", IMAGE,
               "/lib/systemd/systemd")
        for name in names:
            state = wait_for_systemd(name, 60)
            if state not in BOOTED:
                raise AssertionError(f"systemd in {name} did not come up: {state}")
        yield names
    finally:
        for name in names:
            sh("podman", "rm", "-f", "-t", "0", name, check=False)


def run_playbook(tmp_path, playbook, hosts, common, *args):
    """ansible-playbook PLAYBOOK against ``hosts`` ({name: vars}) in "targets", reached through podman."""
    common = {"ansible_connection": "containers.podman.podman",
              "ansible_python_interpreter": "/usr/bin/python3", **common}
    inventory = {"all": {"vars": common, "children": {"targets": {"hosts": hosts}}}}
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))  # JSON is YAML
    return ansible("-i", tmp_path / "hosts.yml", playbook, *args, timeout=900)


def recap(out, host):
    """The PLAY RECAP counters of ``host``: {"ok": 3, "changed": 0, ...}."""
    line = next(line for line in out.splitlines() if line.startswith(host + " ") and "ok=" in line)
    return {key: int(value) for key, value in (word.split("=") for word in line.split() if "=" in word)}
