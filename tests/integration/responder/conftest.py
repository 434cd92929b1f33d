"""Fixtures for the responder's integration tests (helpers live in resp_live_helpers.py)."""

import subprocess
import sys
import threading

import pytest
from resp_live_helpers import ENDPOINTS, REPO, Responder, free_port, write_config


@pytest.fixture
def start_responder(tmp_path):
    """start_responder(mode="On", softswitch="", endpoints=ENDPOINTS, settings="", prefix=()) -> Responder."""
    running: list[Responder] = []

    def start(
        mode: str = "On",
        softswitch: str = "",
        endpoints: str = ENDPOINTS,
        settings: str = "",
        prefix: tuple[str, ...] = (),  # e.g. ("ip", "netns", "exec", NAME) to run inside a namespace
        workers: int = 1,
    ) -> Responder:
        directory = tmp_path / f"r{len(running)}"
        directory.mkdir()
        port = free_port()
        write_config(directory, port, mode, softswitch, endpoints, settings)
        proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "sipresponder",
                "run",
                "--softswitch",
                str(directory / "softswitch.conf"),
                "--endpoints",
                str(directory / "endpoints.toml"),
                "--config",
                str(directory / "responder.toml"),
                "--workers",
                str(workers),
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        responder = Responder(proc, port, directory)
        running.append(responder)
        threading.Thread(target=lambda: responder.log.extend(proc.stderr), daemon=True).start()
        responder.wait_log("ready:")
        return responder

    yield start
    for responder in running:
        responder.proc.terminate()
        try:
            responder.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            responder.proc.kill()
            responder.proc.wait()
