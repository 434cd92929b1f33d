"""Run the benchmark inside a network namespace of its own.

Why: the host has nf_conntrack loaded (podman), so every distinct UDP 4-tuple on the
host's loopback takes a conntrack entry. The memory case alone uses 100,000 source
addresses, enough to fill the host's table and make the kernel drop other people's
packets. A fresh namespace has no netfilter hooks, hence no connection tracking; its
/proc/net counters also see only the benchmark's own traffic.
"""

import os
import subprocess
import sys

MARKER = "SIPGUARD_BENCH_NETNS"  # set in the environment of the re-executed benchmark


def inside() -> bool:
    return bool(os.environ.get(MARKER))


def rerun_inside(argv: list[str]) -> int:
    """Create a namespace, run `python argv...` in it with loopback up, always delete it."""
    name = f"sipguard-bench-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", b"") or str(error).encode()
        reason = detail.decode().strip()
        print(f"cannot create network namespace {name} (root needed): {reason}", file=sys.stderr)
        return 2
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        env = {**os.environ, MARKER: name}
        command = ["ip", "netns", "exec", name, sys.executable, *argv]
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
