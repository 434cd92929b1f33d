"""Fleet benchmark: wall time of site.yml, first run and re-run, for 1, 5 and 20 hosts.

Each size starts from fresh containers (the lab image, systemd as PID 1) on a
bench-only podman network inside 198.18.0.0/15, so the first run really
installs everything; the re-run then measures the idempotent pass. Profiles
rotate over private_lan, public and debug (no DNS trunk, so no DNS server is
needed). Containers and the network are removed at the end.

    sudo .venv/bin/python bench/fleet_site.py            # sizes 1 5 20, forks 20
    sudo .venv/bin/python bench/fleet_site.py --sizes 1 5 --keep
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit.ansible import ansible
from testkit.systemd import BOOTED, wait_for_systemd
from testkit.topology import topology

REPO = Path(__file__).resolve().parents[1]
NETWORK = "sipguard-bench-fleet"
SUBNET = topology()["bench"]["fleet"]["ipv4"].removesuffix(".0/24")  # the bench's own /24: 198.18.40
FIRST_HOST = topology()["bench"]["fleet"]["first_host"]  # hosts are .10 and up
PREFIX = "sgb-"
PROFILES = ["private_lan", "public", "debug"]


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def image():
    return os.environ.get("SIPGUARD_IMAGE", "localhost/sipguard-lab:latest")


def remove_hosts():
    ids = sh("podman", "ps", "-a", "-q", "--filter", f"name=^{PREFIX}").stdout.split()
    if ids:
        sh("podman", "rm", "-f", "-t", "1", *ids)


def start_hosts(count):
    if sh("podman", "network", "exists", NETWORK, check=False).returncode != 0:
        sh("podman", "network", "create", "--internal", "--subnet", f"{SUBNET}.0/24", NETWORK)
    names = [f"{PREFIX}{i:02d}" for i in range(1, count + 1)]
    for i, name in enumerate(names):
        sh("podman", "run", "-d", "--name", name, "--hostname", name, "--systemd=always",
           "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
           "--network", f"{NETWORK}:ip={SUBNET}.{FIRST_HOST + i}", image(), "/lib/systemd/systemd")
    # Booting 20 systemd containers on 2 busy cores takes minutes: allow for it.
    limit = 120 + 15 * count
    deadline = time.monotonic() + limit
    for name in names:  # wait until systemd has booted, as a real server would be
        if wait_for_systemd(name, max(0.0, deadline - time.monotonic())) not in BOOTED:
            sys.exit(f"fleet_site: {name} did not boot within {limit} s")
    return names


def inventory(names, path):
    hosts = {
        name: {"sipguard_profile": PROFILES[i % len(PROFILES)], "sipguard_softswitch": "sipresponder"}
        for i, name in enumerate(names)
    }
    data = {
        "all": {
            "vars": {
                "ansible_connection": "containers.podman.podman",
                "ansible_python_interpreter": "/usr/bin/python3",
                "sipguard_lan_networks": [f"{SUBNET}.0/24"],
                "sipguard_ip_versions": [4],
            },
            "children": {"targets": {"hosts": hosts}},
        }
    }
    path.write_text(json.dumps(data))  # JSON is YAML


def site(inv, forks, responder_src):
    args = ["-i", inv, "-f", forks, "playbooks/site.yml", "-e", f"sipguard_responder_src={responder_src}",
            # The whole fleet in one batch, as measured before site.yml rolled out in batches of 5.
            "-e", "sipguard_serial=100%"]
    start = time.monotonic()
    result = ansible(*args, timeout=3600)
    took = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"fleet_site: site.yml failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    changed = sum(int(w.split("=")[1]) for w in result.stdout.split() if w.startswith("changed="))
    return took, changed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="leave the last fleet running")
    args = parser.parse_args()
    if max(args.sizes) > 200:
        sys.exit("fleet_site: at most 200 hosts (one /24)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inv = Path(tmp) / "hosts.yml"
        # A snapshot of the responder: edits in the work tree during the run must not
        # turn the re-run into an upgrade.
        responder_src = Path(tmp) / "sipresponder"
        shutil.copytree(REPO / "sipresponder", responder_src, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            for size in args.sizes:
                remove_hosts()
                print(f"fleet_site: {size} fresh host(s)...", flush=True)
                inventory(start_hosts(size), inv)
                print(f"fleet_site: {size} host(s): site.yml first run...", flush=True)
                first, first_changed = site(inv, args.forks, responder_src)
                print(f"fleet_site: {size} host(s): first run {first:.1f} s; re-run...", flush=True)
                rerun, rerun_changed = site(inv, args.forks, responder_src)
                print(f"fleet_site: {size} host(s): re-run {rerun:.1f} s changed={rerun_changed}", flush=True)
                rows.append((size, first, first_changed, rerun, rerun_changed))
        finally:
            if not args.keep:
                remove_hosts()
                sh("podman", "network", "rm", NETWORK, check=False)
    print()
    print(f"site.yml wall time, forks={args.forks}, {os.cpu_count()} CPUs, podman connection")
    widths = (5, 11, 7, 8, 7, 12, 12)
    header = ("hosts", "first run s", "changed", "re-run s", "changed", "re-run/first", "first/1-host")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    one = rows[0][1] if rows and rows[0][0] == 1 else None
    for size, first, fc, rerun, rc in rows:
        cells = (size, f"{first:.1f}", fc, f"{rerun:.1f}", rc, f"{rerun / first:.2f}",
                 f"{first / one:.2f}" if one else "-")
        print("  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True)))
    print(f"\nreproduce: sudo .venv/bin/python bench/fleet_site.py --sizes {' '.join(map(str, args.sizes))}"
          f" --forks {args.forks}")


if __name__ == "__main__":
    main()
