"""Wait until systemd (PID 1 of a lab-image container) has booted."""

from __future__ import annotations

import subprocess
import time

BOOTED = frozenset({"running", "degraded"})


def system_state(target) -> str:
    """`systemctl is-system-running` in `target`: a container name (podman exec) or a testinfra host."""
    if isinstance(target, str):
        proc = subprocess.run(["podman", "exec", target, "systemctl", "is-system-running"],
                              capture_output=True, text=True, check=False, timeout=60)
        return proc.stdout.strip()
    return target.run("systemctl is-system-running").stdout.strip()


def wait_for_systemd(target, timeout: float = 60, interval: float = 0.5) -> str:
    """Poll `target` until systemd is running (or degraded) or `timeout` seconds pass.

    Returns the last state seen: test `in BOOTED` (or use `booted`) for the outcome.
    """
    deadline = time.monotonic() + timeout
    state = system_state(target)
    while state not in BOOTED and time.monotonic() < deadline:
        time.sleep(interval)
        state = system_state(target)
    return state


def booted(target, timeout: float = 60) -> bool:
    """wait_for_systemd(target, timeout) ended booted."""
    return wait_for_systemd(target, timeout) in BOOTED
