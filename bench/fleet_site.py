"""Fleet benchmark: site.yml over SSH with pipelining (first run, re-run, drift run) for 1, 5 and 20 hosts.

Each size starts from fresh containers (the lab image plus sshd, bench/fleet/Containerfile, systemd as PID 1)
on the bench's own podman network (testkit/topology.json: bench.fleet), so the first run really installs
everything; the re-run measures the idempotent pass; then one firewall rule, one file and one softswitch
parameter are changed on the first host, and the drift run must find and fix them. Profiles rotate over
private_lan, public and debug (no DNS trunk, so no DNS server is needed).

Per run: wall time, the controller's CPU (ansible-playbook, its forks and every ssh client and ControlPersist
master), tasks per host, tasks that ran a module on the host, connection commands per host (the round trips),
and the targets' CPU (their cgroups) apart. Containers and the network are removed at the end.

    .venv/bin/python bench/fleet_site.py                        # sizes 1 5 20, forks 20, ssh (as root)
    .venv/bin/python bench/fleet_site.py --sizes 1 5 --keep     # smaller, and leave the last fleet up
    .venv/bin/python bench/fleet_site.py --connection podman    # podman exec, as measured before
"""

import argparse
import configparser
import hashlib
import io
import json
import math
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from procstats import parse_cpu_ticks

from testkit.ansible import ANSIBLE_CFG as testkit_config_path
from testkit.ansible import ansible
from testkit.systemd import BOOTED, wait_for_systemd
from testkit.topology import topology

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "fleet"
NETWORK = "sipguard-bench-fleet"
SUBNET = topology()["bench"]["fleet"]["ipv4"].removesuffix(".0/24")  # the bench's own /24: 198.18.40
FIRST_HOST = topology()["bench"]["fleet"]["first_host"]  # hosts are .10 and up
PREFIX = "sgb-"
PROFILES = ["private_lan", "public", "debug"]
BENCH_IMAGE = "localhost/sipguard-bench-fleet"
CONNECTIONS = {"ssh": ("ssh", "scp", "sftp"), "podman": ("podman",)}
# What the drift run must put back on the first host (the responder's files; the layer's chains).
RESPONDER_TOML = "/etc/sipresponder/responder.toml"
ENDPOINTS_TOML = "/etc/sipresponder/endpoints.toml"
SOFTSWITCH_CONF = "/etc/sipresponder/softswitch.conf"
DRIFT_PARAM = "SS_REPLY_UNAUTHORIZED"


def sh(*args, check=True, timeout=600):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def base_image():
    return os.environ.get("SIPGUARD_IMAGE", "localhost/sipguard-lab:latest")


def bench_image_tag(base_id: str, containerfile: str) -> str:
    """The bench image's name: a hash of the base image's id and the recipe, so either change rebuilds it."""
    key = hashlib.sha256(f"{base_id}\n{containerfile}".encode()).hexdigest()[:12]
    return f"{BENCH_IMAGE}:{key}"


def ensure_bench_image():
    """The lab image plus sshd, built from bench/fleet/Containerfile unless this recipe's image exists."""
    base = base_image()
    found = sh("podman", "image", "inspect", "--format", "{{.Id}}", base, check=False)
    if found.returncode != 0:
        sys.exit(f"fleet_site: image {base} is not built (scripts/build-image.sh)")
    recipe = HERE / "Containerfile"
    tag = bench_image_tag(found.stdout.strip(), recipe.read_text())
    if sh("podman", "image", "exists", tag, check=False).returncode != 0:
        print(f"fleet_site: building {tag} (openssh-server from Debian's archive)...", flush=True)
        sh("podman", "build", "--build-arg", f"BASE={base}", "-f", recipe, "-t", tag, HERE, timeout=900)
    return tag


def remove_hosts(attempts=3):
    """Remove every bench container; `podman rm -f` of many systemd containers at once sometimes fails for one
    (exit 2 seen under load), so try again, and stop the bench only if some are still there."""
    for _ in range(attempts):
        ids = sh("podman", "ps", "-a", "-q", "--filter", f"name=^{PREFIX}").stdout.split()
        if not ids:
            return
        sh("podman", "rm", "-f", "--ignore", "-t", "1", *ids, check=False)
    if sh("podman", "ps", "-a", "-q", "--filter", f"name=^{PREFIX}").stdout.split():
        sys.exit(f"fleet_site: could not remove the {PREFIX}* containers: podman rm -f them by hand")


def address(index: int) -> str:
    return f"{SUBNET}.{FIRST_HOST + index}"


def start_hosts(count, image, public_key):
    if sh("podman", "network", "exists", NETWORK, check=False).returncode != 0:
        sh("podman", "network", "create", "--internal", "--subnet", f"{SUBNET}.0/24", NETWORK)
    names = [f"{PREFIX}{i:02d}" for i in range(1, count + 1)]
    for i, name in enumerate(names):
        sh("podman", "run", "-d", "--name", name, "--hostname", name, "--systemd=always",
           "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
           "--mount", f"type=bind,src={public_key},dst=/root/.ssh/authorized_keys,ro",
           "--network", f"{NETWORK}:ip={address(i)}", image, "/lib/systemd/systemd")  # fmt: skip
    # Booting 20 systemd containers on 2 busy cores takes minutes: allow for it.
    limit = 120 + 15 * count
    deadline = time.monotonic() + limit
    for name in names:  # wait until systemd has booted (sshd with it), as a real server would be
        state = wait_for_systemd(name, max(0.0, deadline - time.monotonic()))
        if state not in BOOTED:
            # The units still queued say what it waits for; the finally of main() removes the hosts.
            jobs = sh("podman", "exec", name, "systemctl", "list-jobs", "--no-pager", check=False).stdout
            sys.exit(f"fleet_site: {name} did not boot within {limit} s (state {state!r}):\n{jobs[-1500:]}")
    return names


def ssh_args(control_persist: int = 600) -> str:
    """The ssh options of a run: one multiplexed connection per host, kept for the whole run.

    No -C (Ansible's default): compressing a few kB per task costs CPU on both ends and saves nothing on
    a LAN. Host keys are not checked: these hosts are created a minute before and thrown away after.
    """
    return " ".join([
        "-o ControlMaster=auto", f"-o ControlPersist={control_persist}s",
        "-o StrictHostKeyChecking=no", "-o UserKnownHostsFile=/dev/null", "-o LogLevel=ERROR",
    ])  # fmt: skip


def inventory(names, connection, key=None, control_dir=None):
    """The run's inventory: every host in "targets", its profile rotated, reached by `connection`."""
    hosts = {}
    for i, name in enumerate(names):
        host = {"sipguard_profile": PROFILES[i % len(PROFILES)], "sipguard_softswitch": "sipresponder"}
        if connection == "ssh":
            host["ansible_host"] = address(i)
        hosts[name] = host
    common = {
        "ansible_python_interpreter": "/usr/bin/python3",
        "sipguard_lan_networks": [f"{SUBNET}.0/24"],
        "sipguard_ip_versions": [4],
    }
    if connection == "ssh":
        common |= {
            "ansible_connection": "ansible.builtin.ssh",
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_args": ssh_args(),
            "ansible_ssh_pipelining": True,
            "ansible_ssh_host_key_checking": False,
            "ansible_control_path_dir": str(control_dir),
        }
    else:
        common["ansible_connection"] = "containers.podman.podman"
    return {"all": {"vars": common, "children": {"targets": {"hosts": hosts}}}}


def repo_poll_interval() -> float:
    """The repository's own internal_poll_interval (Ansible's default, 1 ms, where it sets none)."""
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(testkit_config_path.read_text())
    return float(config["defaults"].get("internal_poll_interval", "0.001"))


def bench_config(text: str, repo: Path, poll_interval: float) -> str:
    """The repository's ansible.cfg for a run from a temporary directory: its relative paths made absolute
    (Ansible resolves them against the file's own directory), and the controller's internal poll interval.

    ansible-playbook's main process sleeps that long between looks at its workers' results; the default,
    1 ms, wakes it a thousand times a second for the whole run, which costs controller CPU for every host.
    The setting has no environment variable, hence a file.
    """
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(text)
    defaults = config["defaults"]
    for key in ("collections_path", "inventory", "roles_path"):
        if key in defaults:
            parts = [p if p.startswith(("/", "~")) else str(repo / p) for p in defaults[key].split(":")]
            defaults[key] = ":".join(parts)
    defaults["internal_poll_interval"] = str(poll_interval)
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


def wrapper_script(real: str, log: Path) -> str:
    """A stand-in for the connection's program: logs each call (one line, pipe-atomic), then execs it."""
    return f'#!/bin/sh\nprintf \'%s\\n\' "$*" >> {shlex.quote(str(log))}\nexec {shlex.quote(real)} "$@"\n'


def install_wrappers(connection, directory: Path, log: Path):
    """Put logging wrappers of the connection's programs in `directory` (first on the run's PATH)."""
    directory.mkdir(exist_ok=True)
    for program in CONNECTIONS[connection]:
        real = shutil.which(program)
        if real is None:
            sys.exit(f"fleet_site: {program} is not installed")
        path = directory / program
        path.write_text(wrapper_script(real, log))
        path.chmod(0o755)


def count_commands(lines, hosts) -> dict[str, int]:
    """Connection commands per host from the wrappers' log: the first argument that names a host is it.

    ssh gets the address as an argument of its own, podman exec the container's name.
    """
    targets = {target: name for name, target in hosts.items()}
    out = dict.fromkeys(hosts, 0)
    for line in lines:
        for word in line.split():
            if word in targets:
                out[targets[word]] += 1
                break
    return out


def parse_cgroup_cpu(text: str, version: int) -> float:
    """CPU seconds from a cgroup's accounting file: v1 cpuacct.usage (ns), v2 cpu.stat (usage_usec)."""
    if version == 1:
        return int(text.split(maxsplit=1)[0]) / 1e9
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError("no usage_usec in cpu.stat")


def cgroup_file(cgroup_path: str, root: Path = Path("/sys/fs/cgroup")) -> tuple[Path, int]:
    """The accounting file of a container's cgroup (podman's State.CgroupPath) and the cgroup version."""
    v2 = root / cgroup_path.lstrip("/") / "cpu.stat"
    if (root / "cgroup.controllers").exists():
        return v2, 2
    return root / "cpuacct" / cgroup_path.lstrip("/") / "cpuacct.usage", 1


def targets_cpu(files) -> float:
    return sum(parse_cgroup_cpu(path.read_text(), version) for path, version in files)


def own_processes_cpu(marker: str) -> float:
    """CPU seconds of the live processes whose command line holds `marker` (the ssh ControlPersist masters:
    they are daemons, so their time never reaches this process's RUSAGE_CHILDREN)."""
    ticks = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                ticks += parse_cpu_ticks((proc / "stat").read_text())
        except OSError:  # gone meanwhile
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def close_masters(control_dir: Path):
    """End the run's ControlPersist masters, so each run pays for its own connections."""
    for socket in control_dir.iterdir():
        sh("ssh", "-o", f"ControlPath={socket}", "-O", "exit", "sgb", check=False, timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and own_processes_cpu(str(control_dir)) > 0:
        time.sleep(0.2)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    label: str
    wall: float
    controller_cpu: float
    targets_cpu: float
    hosts: dict = field(repr=False)  # the callback's counts per host
    commands: dict = field(repr=False)  # connection commands per host
    tasks: dict = field(repr=False)  # seconds per task name

    @property
    def size(self):
        return len(self.hosts)

    @property
    def changed(self):
        return sum(h["changed"] for h in self.hosts.values())

    def per_host(self, key):
        values = [h[key] for h in self.hosts.values()]
        return sum(values) / len(values) if values else 0.0

    @property
    def commands_per_host(self):
        return sum(self.commands.values()) / len(self.commands) if self.commands else 0.0


@dataclass
class Bench:
    tmp: Path
    connection: str
    forks: int
    strategy: str
    responder_src: Path
    poll_interval: float = 0.001
    json_path: Path | None = None
    files: list = field(default_factory=list)  # the targets' cgroup accounting files

    def save(self, runs):
        """Every run so far as JSON, after each run: a run that fails later keeps what it measured."""
        if self.json_path:
            self.json_path.write_text(json.dumps([run.__dict__ for run in runs], indent=1))

    @property
    def control_dir(self):
        return self.tmp / "cp"

    def site(self, label, names, playbook="playbooks/site.yml") -> Run:
        inv, log, counts = self.tmp / "hosts.yml", self.tmp / "commands.log", self.tmp / "counts.json"
        log.write_text("")
        config = self.tmp / "ansible.cfg"
        config.write_text(bench_config(testkit_config_path.read_text(), REPO, self.poll_interval))
        env = {
            "ANSIBLE_CONFIG": str(config),
            "PATH": f"{self.tmp / 'bin'}:{os.environ['PATH']}",
            "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "fleet_counts",
            "SIPGUARD_FLEET_COUNTS": str(counts),
            "ANSIBLE_STRATEGY": self.strategy,
        }
        args = ["-i", inv, "-f", self.forks, playbook,
                "-e", f"sipguard_responder_src={self.responder_src}",
                # The whole fleet in one batch: the bench measures the controller, not site.yml's batch size.
                "-e", "sipguard_serial=100%"]  # fmt: skip
        cpu0, targets0, start = children_cpu(), targets_cpu(self.files), time.monotonic()
        result = ansible(*args, env=env, timeout=3600)
        wall = time.monotonic() - start
        masters = own_processes_cpu(str(self.control_dir)) if self.connection == "ssh" else 0.0
        controller = children_cpu() - cpu0 + masters
        target = targets_cpu(self.files) - targets0
        if self.connection == "ssh":
            close_masters(self.control_dir)
        if result.returncode != 0:
            sys.exit(
                f"fleet_site: {playbook} ({label}) failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
            )
        data = json.loads(counts.read_text())
        addresses = {name: address(i) if self.connection == "ssh" else name for i, name in enumerate(names)}
        commands = count_commands(log.read_text().splitlines(), addresses)
        return Run(label, wall, controller, target, data["hosts"], commands, data["tasks"])


def calibration_playbook(kind: str, tasks: int) -> list:
    """`tasks` tasks on every target that run on the controller only (kind "local": assert) or run one
    module on the host (kind "remote": stat), nothing else: what one task costs the controller per host."""
    task = {
        "local": {"ansible.builtin.assert": {"that": ["sipguard_profile is string"], "quiet": True}},
        "remote": {"ansible.builtin.stat": {"path": "/etc/hostname", "get_checksum": False}},
    }[kind]
    body = [{"name": f"{kind} {i}", **task} for i in range(tasks)]
    return [{"name": f"Calibrate: {kind} tasks", "hosts": "targets", "gather_facts": False, "tasks": body}]


def calibrate(bench, names, tasks=20) -> dict[str, float]:
    """Controller CPU seconds per task per host of a task of each kind (the difference between a playbook of
    `tasks` such tasks and one of none takes out ansible-playbook's start)."""
    runs = {}
    for kind, count in (("local", 0), ("local", tasks), ("remote", tasks)):
        path = bench.tmp / f"calibrate-{kind}-{count}.yml"
        path.write_text(json.dumps(calibration_playbook(kind, count)))
        runs[kind, count] = bench.site(f"cal-{kind}", names, str(path)).controller_cpu
    empty = runs["local", 0]
    return {kind: (runs[kind, tasks] - empty) / tasks / len(names) for kind in ("local", "remote")}


# --- drift: one firewall rule, one file, one softswitch parameter on one host --------------------------


def ct(name, *args, check=True):
    return sh("podman", "exec", name, *args, check=check, timeout=60).stdout


def layer_rules(iptables_s: str, chain_prefix: str = "sipguard") -> list[str]:
    """The `-A` lines of sipguard's chains in `iptables -S` output, in order."""
    return [line for line in iptables_s.splitlines() if line.startswith(f"-A {chain_prefix}")]


def rule_to_delete(iptables_s: str) -> list[str]:
    """iptables arguments that delete one rule of sipguard's layer: its last, as `iptables -S` printed it."""
    rules = layer_rules(iptables_s)
    if not rules:
        raise ValueError("no rule of sipguard's chains in iptables -S output")
    words = shlex.split(rules[-1])
    return ["-D", *words[1:]]


def flip_param(text: str, key: str) -> str:
    """softswitch.conf with `key`'s On/Off value turned around (the one parameter the drift changes)."""
    out, found = [], False
    for line in text.splitlines(keepends=True):
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            new = "Off" if value.strip().strip('"').lower() == "on" else "On"
            out.append(f"{key}={new}\n")
            found = True
        else:
            out.append(line)
    if not found:
        raise ValueError(f"{key} is not set in softswitch.conf")
    return "".join(out)


def drift_state(name) -> dict[str, str]:
    """What the drift touches, as it is on the host."""
    return {
        "rules": "\n".join(layer_rules(ct(name, "iptables", "-S"))),
        "file": ct(name, "sha256sum", RESPONDER_TOML).split()[0],
        "mode": ct(name, "stat", "-c", "%a", ENDPOINTS_TOML).strip(),
        "param": ct(name, "cat", SOFTSWITCH_CONF),
    }


def make_drift(name):
    """Change one rule, one file, one file's mode and one parameter on `name`, as an operator or an intruder
    might. The mode leaves the content alone: endpoints.toml (the passwords) made world-readable."""
    ct(name, "iptables", *rule_to_delete(ct(name, "iptables", "-S")))
    ct(name, "sh", "-c", f"echo '# edited by hand' >> {RESPONDER_TOML}")
    ct(name, "chmod", "0644", ENDPOINTS_TOML)
    conf = flip_param(ct(name, "cat", SOFTSWITCH_CONF), DRIFT_PARAM)
    subprocess.run(["podman", "exec", "-i", name, "sh", "-c", f"cat > {SOFTSWITCH_CONF}"], input=conf,
                   text=True, check=True, capture_output=True, timeout=60)  # fmt: skip


def drift_problems(before: dict, after: dict, drifted: dict) -> list[str]:
    """What the drift run left wrong: each item was changed by the drift and must be back as before."""
    problems = []
    for item, value in before.items():
        if drifted[item] == value:
            problems.append(f"{item}: the drift did not change it")
        elif after[item] != value:
            problems.append(f"{item}: not put back by the drift run")
    return problems


# --- the report -----------------------------------------------------------------------------------------


def fit(points) -> tuple[float, float]:
    """Least-squares a, b of cpu = a + b * hosts over (hosts, cpu) points: the run's fixed cost (loading the
    playbook and the collection) and each host's. One size gives no fixed part: a = 0, b = cpu / hosts."""
    sizes = {h for h, _ in points}
    if len(sizes) < 2:
        return 0.0, sum(c for _, c in points) / sum(h for h, _ in points)
    n = len(points)
    mean_h = sum(h for h, _ in points) / n
    mean_c = sum(c for _, c in points) / n
    b = sum((h - mean_h) * (c - mean_c) for h, c in points) / sum((h - mean_h) ** 2 for h, _ in points)
    return mean_c - b * mean_h, b


def projection(
    fixed: float, per_host: float, one_host_wall: float, hosts: int, cores: int, forks: int
) -> dict:
    """Projected controller CPU and wall time of one run on `hosts` hosts, from measured runs (not measured).

    cpu = a + b * H. The wall time is at least that CPU over the cores (the controller saturated) and at least
    one host's own chain of round trips once per group of `forks` hosts:
    wall = max(cpu / cores, t1 * ceil(H / F)).
    """
    cpu = fixed + per_host * hosts
    return {"cpu": cpu, "wall": max(cpu / cores, one_host_wall * math.ceil(hosts / forks))}


COLUMNS = (
    "hosts",
    "run",
    "wall s",
    "changed",
    "ctl CPU s",
    "ctl s/host",
    "tasks",
    "module",
    "commands",
    "tgt CPU s",
)


def row(run) -> tuple:
    return (run.size, run.label, f"{run.wall:.1f}", run.changed, f"{run.controller_cpu:.1f}",
            f"{run.controller_cpu / run.size:.2f}", f"{run.per_host('tasks'):.0f}",
            f"{run.per_host('remote'):.0f}", f"{run.commands_per_host:.0f}",
            f"{run.targets_cpu:.1f}")  # fmt: skip


def table(runs, title) -> str:
    widths = [max(len(h), 5) for h in COLUMNS]
    lines = [title,
             "per host: tasks run, tasks that ran a module on the host, connection commands (round trips)",
             "  ".join(h.rjust(w) for h, w in zip(COLUMNS, widths, strict=True))]  # fmt: skip
    lines += ["  ".join(str(c).rjust(w) for c, w in zip(row(run), widths, strict=True)) for run in runs]
    return "\n".join(lines)


def title(args) -> str:
    return (f"site.yml over {args.connection}, forks={args.forks}, strategy={args.strategy},"
            f" internal_poll_interval={args.poll_interval}, {os.cpu_count()} CPUs,"
            f" load {os.getloadavg()[0]:.1f} at the end")  # fmt: skip


def ratios(runs) -> str:
    """Re-run/first per size, and each size's first run and re-run against one host's."""
    by = {(r.size, r.label): r for r in runs}

    def ratio(a, b):
        return f"{a.wall / b.wall:.2f}" if a and b else "-"

    lines = ["hosts  re-run/first  first/1-host  re-run/1-host"]
    for size in sorted({r.size for r in runs}):
        first, rerun = by.get((size, "first")), by.get((size, "re-run"))
        cells = (ratio(rerun, first), ratio(first, by.get((1, "first"))), ratio(rerun, by.get((1, "re-run"))))
        lines.append(f"{size:5d}  {cells[0]:>12}  {cells[1]:>12}  {cells[2]:>13}")
    return "\n".join(lines)


def projections(runs, forks=50) -> str:
    lines = []
    for label in ("first", "re-run"):
        chosen = [r for r in runs if r.label == label]
        if not chosen:
            continue
        a, b = fit([(r.size, r.controller_cpu) for r in chosen])
        t1 = min(chosen, key=lambda r: r.size).wall
        n = len(chosen)
        lines.append(f"{label}: controller CPU = {a:.1f} s + {b:.2f} s * hosts (fit over {n} size(s));"
                     f" t1 = {t1:.1f} s; wall = max(cpu / cores, t1 * ceil(hosts / {forks}))")  # fmt: skip
        for hosts in (100, 500, 1000):
            walls = [
                f"{projection(a, b, t1, hosts, c, forks)['wall'] / 60:.1f} min on {c} cores" for c in (2, 8)
            ]
            cpu = projection(a, b, t1, hosts, 2, forks)["cpu"]
            lines.append(f"  {hosts:5d} hosts: CPU {cpu / 60:.0f} min; wall {', '.join(walls)}")
    return "\n".join(lines)


def slowest_tasks(run, count=8) -> str:
    top = sorted(run.tasks.items(), key=lambda item: -item[1])[:count]
    return "\n".join(f"  {seconds:6.1f} s  {name}" for name, seconds in top)


def check_drift(bench, names, runs, failures):
    """Drift one host, run again: it must change that host only, and put the three things back."""
    host = names[0]
    before = drift_state(host)
    make_drift(host)
    drifted = drift_state(host)
    run = bench.site("drift", names)
    runs.append(run)
    bench.save(runs)
    changed = run.hosts[host]["changed"]
    problems = drift_problems(before, drift_state(host), drifted)
    others = run.changed - changed
    said = "; ".join(problems) or "rule, file, mode and parameter put back"
    print(
        f"fleet_site: drift run {run.wall:.1f} s, {host} changed={changed}, others {others}: {said}",
        flush=True,
    )
    if changed == 0 or problems or others:
        failures.append(
            f"{len(names)} hosts: drift on {host}: changed={changed}, others changed={others}: {said}"
        )


def measure(bench, size, image, key, drift, runs, failures, calibration=False):
    remove_hosts()
    print(f"fleet_site: {size} fresh host(s)...", flush=True)
    names = start_hosts(size, image, key.with_suffix(".pub"))
    (bench.tmp / "hosts.yml").write_text(
        json.dumps(inventory(names, bench.connection, key, bench.control_dir))
    )
    cgroups = [sh("podman", "inspect", "--format", "{{.State.CgroupPath}}", n).stdout.strip() for n in names]
    bench.files = [cgroup_file(path) for path in cgroups]
    for label in ("first", "re-run"):
        runs.append(bench.site(label, names))
        bench.save(runs)
        print(
            f"fleet_site: {size} host(s): {label} {runs[-1].wall:.1f} s changed={runs[-1].changed}",
            flush=True,
        )
    if runs[-1].changed:
        failures.append(f"{size} hosts: the re-run changed {runs[-1].changed} task(s)")
    print(f"fleet_site: slowest tasks of the re-run, {size} host(s):\n{slowest_tasks(runs[-1])}")
    if drift:
        check_drift(bench, names, runs, failures)
    if calibration:
        per_task = calibrate(bench, names)
        print(f"fleet_site: {size} host(s): controller CPU per task per host: a task on the controller only"
              f" {per_task['local'] * 1000:.0f} ms, a task that runs one module on the host"
              f" {per_task['remote'] * 1000:.0f} ms", flush=True)  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--strategy", default="linear", choices=["linear", "free", "host_pinned"])
    parser.add_argument("--connection", default="ssh", choices=sorted(CONNECTIONS))
    parser.add_argument("--poll-interval", type=float, default=repo_poll_interval(),
                        help="internal_poll_interval, s (default: the repository's ansible.cfg)")
    parser.add_argument("--no-drift", action="store_true", help="skip the drift run")
    parser.add_argument("--calibrate", action="store_true", help="also time one local and one remote task")
    parser.add_argument("--json", type=Path, help="also write every run's numbers here")
    parser.add_argument("--keep", action="store_true", help="leave the last fleet running")
    args = parser.parse_args()
    if max(args.sizes) > 200:
        sys.exit("fleet_site: at most 200 hosts (one /24)")
    runs, failures = [], []
    with tempfile.TemporaryDirectory(prefix="sgb-") as tmp_name:
        tmp = Path(tmp_name)
        # A snapshot of the responder: edits in the work tree during the run must not
        # turn the re-run into an upgrade.
        responder_src = tmp / "sipresponder"
        shutil.copytree(REPO / "sipresponder", responder_src, ignore=shutil.ignore_patterns("__pycache__"))
        key = tmp / "id_ed25519"  # this run's key: the hosts accept nothing else
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sipguard-bench", "-f", key)
        image = ensure_bench_image()
        bench = Bench(
            tmp, args.connection, args.forks, args.strategy, responder_src, args.poll_interval, args.json
        )
        bench.control_dir.mkdir()
        install_wrappers(args.connection, tmp / "bin", tmp / "commands.log")
        try:
            for size in args.sizes:
                measure(bench, size, image, key, not args.no_drift, runs, failures, args.calibrate)
        finally:
            if not args.keep:
                remove_hosts()
                sh("podman", "network", "rm", NETWORK, check=False)
    print(f"\n{table(runs, title(args))}\n\n{ratios(runs)}\n")
    print(f"projection (not measured), from the controller CPU above:\n{projections(runs)}\n")
    print(f"reproduce: .venv/bin/python bench/fleet_site.py --sizes {' '.join(map(str, args.sizes))}"
          f" --forks {args.forks} --strategy {args.strategy} --connection {args.connection}"
          f" --poll-interval {args.poll_interval}")  # fmt: skip
    if failures:
        sys.exit("fleet_site: " + "\n".join(failures))


if __name__ == "__main__":
    main()
