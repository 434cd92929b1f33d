"""The fleet benchmark on one host over SSH: the re-run changes nothing, and drift is found and put back.

bench/fleet_site.py --sizes 1 hardens a fresh host over SSH with pipelining, runs site.yml again (changed=0),
then deletes one rule of sipguard's chains, edits responder.toml, makes endpoints.toml world-readable and
turns SS_REPLY_UNAUTHORIZED around on the host; the next run must change that host and leave the four as they
were. The bench exits non-zero otherwise. About two minutes on a quiet 2-core machine.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("SIPGUARD_IMAGE", "localhost/sipguard-lab:latest")
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_rerun_is_idempotent_and_drift_is_put_back(tmp_path):
    if os.geteuid() != 0 or not shutil.which("podman") or not shutil.which("ssh"):
        pytest.skip("needs root, podman and ssh")
    if subprocess.run(["podman", "image", "exists", IMAGE], check=False).returncode != 0:
        pytest.skip(f"image {IMAGE} not built (scripts/build-image.sh)")
    running = subprocess.run(["podman", "ps", "-a", "-q", "--filter", "name=^sgb-"], capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    if running:
        pytest.skip("a fleet benchmark is running (sgb- containers): the test would remove its hosts")
    out = tmp_path / "runs.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fleet_site.py"), "--sizes", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = {run["label"]: run for run in json.loads(out.read_text())}
    assert runs["first"]["hosts"]["sgb-01"]["changed"] > 0
    assert runs["re-run"]["hosts"]["sgb-01"]["changed"] == 0
    assert runs["drift"]["hosts"]["sgb-01"]["changed"] > 0
    assert runs["re-run"]["commands"]["sgb-01"] > 0  # the connection went through the counted ssh
    assert "rule, file, mode and parameter put back" in proc.stdout
