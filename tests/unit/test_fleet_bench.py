"""The fleet benchmark's pure parts (bench/fleet_site.py, bench/fleet/callback_plugins/fleet_counts.py):
inventory and ssh options, the command count, cgroup accounting, the drift, the fit and the projection."""

import configparser
import importlib.util
import ipaddress
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import fleet_site as fs
import pytest

from testkit.topology import topology

REPO = Path(__file__).resolve().parents[2]
FLEET_NET = ipaddress.ip_network(topology()["bench"]["fleet"]["ipv4"])

# `iptables -S` of a public-profile host, as the layer writes it (a quoted --string among the rules).
IPTABLES_S = """-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N sipguard-INPUT
-N sipguard-SIP
-A INPUT -j sipguard-INPUT
-A sipguard-INPUT -p tcp -m multiport --dports 22 -j RETURN
-A sipguard-INPUT -p udp -m multiport --dports 5060 -j sipguard-SIP
-A sipguard-SIP -m set --match-set sipguard-allow4 src -j RETURN
-A sipguard-SIP -p udp -m string --string "friendly scanner" --algo bm --icase -j DROP
"""

SOFTSWITCH = """# VOS3000-style softswitch parameters, managed by sipguard (sipguard_softswitch module)
SS_AUTHENTICATION_MAX_RETRY=6
SS_REPLY_UNAUTHORIZED=On
SS_SIP_PORT=5060
"""


# --- inventory, ssh options, image ------------------------------------------------------------------


def test_ssh_inventory_reaches_each_host_on_the_bench_network_only(tmp_path):
    names = [f"sgb-{i:02d}" for i in range(1, 5)]
    inv = fs.inventory(names, "ssh", tmp_path / "key", tmp_path / "cp")
    common = inv["all"]["vars"]
    hosts = inv["all"]["children"]["targets"]["hosts"]
    assert common["ansible_connection"] == "ansible.builtin.ssh"
    assert common["ansible_ssh_pipelining"] is True
    assert common["ansible_ssh_host_key_checking"] is False
    assert common["ansible_ssh_private_key_file"] == str(tmp_path / "key")
    assert common["ansible_control_path_dir"] == str(tmp_path / "cp")
    addresses = [ipaddress.ip_address(h["ansible_host"]) for h in hosts.values()]
    assert all(a in FLEET_NET for a in addresses)
    assert len(set(addresses)) == len(names)
    first = topology()["bench"]["fleet"]["first_host"]
    assert [int(str(a).rsplit(".", 1)[1]) for a in addresses] == list(range(first, first + len(names)))
    assert [h["sipguard_profile"] for h in hosts.values()] == [
        "private_lan",
        "public",
        "debug",
        "private_lan",
    ]
    # The management network the layer trusts is the bench's own /24.
    assert common["sipguard_lan_networks"] == [str(FLEET_NET)]
    json.dumps(inv)  # written as JSON (which is YAML)


def test_podman_inventory_has_no_ssh_settings():
    inv = fs.inventory(["sgb-01"], "podman")
    assert inv["all"]["vars"]["ansible_connection"] == "containers.podman.podman"
    assert not any(k.startswith("ansible_ssh") for k in inv["all"]["vars"])
    assert "ansible_host" not in inv["all"]["children"]["targets"]["hosts"]["sgb-01"]


def test_ssh_args_multiplex_without_compression_or_host_keys():
    args = fs.ssh_args(300).split()
    options = {args[i + 1] for i, word in enumerate(args) if word == "-o"}
    assert {"ControlMaster=auto", "ControlPersist=300s", "StrictHostKeyChecking=no"} <= options
    assert "UserKnownHostsFile=/dev/null" in options
    assert "-C" not in args
    assert len(options) * 2 == len(args)  # every word is an -o pair: nothing that ssh would take as a host


def test_bench_image_tag_follows_base_image_and_recipe():
    tag = fs.bench_image_tag("sha256:aaa", "FROM x\n")
    assert tag.startswith(fs.BENCH_IMAGE + ":")
    assert tag == fs.bench_image_tag("sha256:aaa", "FROM x\n")
    assert tag != fs.bench_image_tag("sha256:bbb", "FROM x\n")
    assert tag != fs.bench_image_tag("sha256:aaa", "FROM x\nRUN true\n")


# --- counting -----------------------------------------------------------------------------------------


def test_wrapper_logs_each_call_and_runs_the_real_program(tmp_path):
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "echo"
    wrapper.write_text(fs.wrapper_script("/bin/echo", log))
    wrapper.chmod(0o755)
    for word in ("198.18.40.10 first", "198.18.40.11 second"):
        out = subprocess.run(
            [str(wrapper), "-o", "X=1", *word.split()], capture_output=True, text=True, check=True
        )
        assert out.stdout == f"-o X=1 {word}\n"
    assert log.read_text().splitlines() == ["-o X=1 198.18.40.10 first", "-o X=1 198.18.40.11 second"]


def test_count_commands_per_host():
    hosts = {"sgb-01": "198.18.40.10", "sgb-02": "198.18.40.11"}
    lines = [
        "-o ControlMaster=auto -o User=root 198.18.40.10 /bin/sh -c 'python3 && sleep 0'",
        "-o ControlMaster=auto 198.18.40.11 /bin/sh -c 'echo 198.18.40.10'",  # the other host in the command
        "-o ControlMaster=auto 198.18.40.10 /bin/sh -c true",
        "-O exit 198.18.40.1",  # not a host (the gateway)
        "",
    ]
    assert fs.count_commands(lines, hosts) == {"sgb-01": 2, "sgb-02": 1}
    assert fs.count_commands([], hosts) == {"sgb-01": 0, "sgb-02": 0}


def test_count_commands_podman_names_containers():
    lines = ["exec -i sgb-01 /bin/sh -c true", "cp /tmp/x sgb-02:/tmp/x", "exec sgb-02 true"]
    # `podman cp` names the container as NAME:PATH: not a word of its own, so not a command of the host.
    assert fs.count_commands(lines, {"sgb-01": "sgb-01", "sgb-02": "sgb-02"}) == {"sgb-01": 1, "sgb-02": 1}


def load_callback():
    spec = importlib.util.spec_from_file_location(
        "fleet_counts", REPO / "bench" / "fleet" / "callback_plugins" / "fleet_counts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(host, action, changed=False, delegate_to=None):
    return SimpleNamespace(
        _host=SimpleNamespace(get_name=lambda: host),
        _task=SimpleNamespace(action=action, delegate_to=delegate_to),
        _result={"changed": changed},
    )


def test_callback_counts_tasks_modules_and_changes(tmp_path, monkeypatch):
    callback = load_callback().CallbackModule()
    callback.v2_runner_on_ok(result("h1", "ansible.builtin.copy", changed=True))
    callback.v2_runner_on_ok(result("h1", "ansible.builtin.set_fact"))  # controller only
    callback.v2_runner_on_ok(result("h1", "ansible.builtin.tempfile", delegate_to="localhost"))  # controller
    callback.v2_runner_on_skipped(result("h1", "ansible.builtin.systemd_service"))
    callback.v2_runner_on_ok(result("h1", "sipguard.hardening.firewall"))
    callback.v2_runner_on_failed(result("h2", "ansible.builtin.command"))
    out = tmp_path / "counts.json"
    monkeypatch.setenv("SIPGUARD_FLEET_COUNTS", str(out))
    callback.v2_playbook_on_stats(None)
    hosts = json.loads(out.read_text())["hosts"]
    assert hosts["h1"] == {"tasks": 5, "skipped": 1, "remote": 2, "changed": 1, "failed": 0}
    assert hosts["h2"] == {"tasks": 1, "skipped": 0, "remote": 1, "changed": 0, "failed": 1}


def test_callback_times_each_task_until_the_next(monkeypatch):
    module = load_callback()
    clock = iter([10.0, 12.5, 13.0, 20.0])
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    callback = module.CallbackModule()
    for name in ("a", "b", "a"):
        callback.v2_playbook_on_task_start(SimpleNamespace(get_name=lambda n=name: n), False)
    callback.v2_playbook_on_stats(None)  # closes the last task
    assert callback.tasks == {"a": 2.5 + 7.0, "b": 0.5}


# --- cgroups -------------------------------------------------------------------------------------------


def test_parse_cgroup_cpu_v1_and_v2():
    assert fs.parse_cgroup_cpu("2274110648\n", 1) == pytest.approx(2.274110648)
    stat = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
    assert fs.parse_cgroup_cpu(stat, 2) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        fs.parse_cgroup_cpu("user_usec 1\n", 2)


def test_cgroup_file_by_version(tmp_path):
    path = "/libpod_parent/libpod-abc"
    assert fs.cgroup_file(path, tmp_path) == (tmp_path / "cpuacct/libpod_parent/libpod-abc/cpuacct.usage", 1)
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert fs.cgroup_file(path, tmp_path) == (tmp_path / "libpod_parent/libpod-abc/cpu.stat", 2)


def test_targets_cpu_sums_the_hosts(tmp_path):
    (tmp_path / "a").write_text("1000000000\n")
    (tmp_path / "b").write_text("usage_usec 250000\n")
    assert fs.targets_cpu([(tmp_path / "a", 1), (tmp_path / "b", 2)]) == pytest.approx(1.25)


# --- drift ---------------------------------------------------------------------------------------------


def test_layer_rules_are_sipguards_chains_only():
    rules = fs.layer_rules(IPTABLES_S)
    assert len(rules) == 4
    assert all(rule.startswith("-A sipguard-") for rule in rules)  # not the INPUT jump, not -N/-P


def test_rule_to_delete_unquotes_the_last_rule():
    assert fs.rule_to_delete(IPTABLES_S) == [
        "-D", "sipguard-SIP", "-p", "udp", "-m", "string", "--string", "friendly scanner", "--algo", "bm",
        "--icase", "-j", "DROP",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        fs.rule_to_delete("-P INPUT ACCEPT\n-A INPUT -j ACCEPT\n")


@pytest.mark.parametrize(("value", "flipped"), [("On", "Off"), ("Off", "On"), ('"on"', "Off"), ("off", "On")])
def test_flip_param_turns_one_value_around(value, flipped):
    text = SOFTSWITCH.replace("SS_REPLY_UNAUTHORIZED=On", f"SS_REPLY_UNAUTHORIZED = {value}")
    out = fs.flip_param(text, "SS_REPLY_UNAUTHORIZED")
    changed = [(a, b) for a, b in zip(text.splitlines(), out.splitlines(), strict=True) if a != b]
    assert changed == [(f"SS_REPLY_UNAUTHORIZED = {value}", f"SS_REPLY_UNAUTHORIZED={flipped}")]


def test_flip_param_refuses_a_missing_key():
    with pytest.raises(ValueError):
        fs.flip_param(SOFTSWITCH, "SS_NOT_THERE")


def test_drift_problems():
    before = {"rules": "r", "file": "f", "param": "p"}
    drifted = {"rules": "r2", "file": "f2", "param": "p2"}
    assert fs.drift_problems(before, dict(before), drifted) == []
    assert fs.drift_problems(before, {**before, "file": "f2"}, drifted) == [
        "file: not put back by the drift run"
    ]
    # A drift that changed nothing proves nothing.
    assert fs.drift_problems(before, before, {**drifted, "param": "p"}) == [
        "param: the drift did not change it"
    ]


# --- fit, projection, report ---------------------------------------------------------------------------


def test_fit_recovers_fixed_and_per_host_cost():
    a, b = fs.fit([(1, 5.0 + 1.5), (5, 5.0 + 7.5), (20, 5.0 + 30.0)])
    assert a == pytest.approx(5.0)
    assert b == pytest.approx(1.5)
    assert fs.fit([(4, 8.0)]) == (0.0, 2.0)
    assert fs.fit([(4, 8.0), (4, 10.0)]) == (0.0, 2.25)  # one size: no fixed part to separate


def test_projection_is_cpu_bound_or_latency_bound():
    # 100 hosts at 1.5 s each plus 5 s: 155 s of CPU; on 2 cores 77.5 s, above 2 groups of 50 x 20 s.
    assert fs.projection(5.0, 1.5, 20.0, 100, 2, 50) == {"cpu": 155.0, "wall": 77.5}
    # On 8 cores the CPU takes 19.4 s: the two groups of 50 hosts, 20 s each, set the wall time.
    assert fs.projection(5.0, 1.5, 20.0, 100, 8, 50) == {"cpu": 155.0, "wall": 40.0}
    # 1000 hosts, 1 s each: 500 s on 2 cores, but 20 groups of 50 hosts at 30 s each take 600 s.
    assert fs.projection(0.0, 1.0, 30.0, 1000, 2, 50)["wall"] == 600.0


def run(size, label, wall, cpu, changed=0):
    hosts = {
        f"h{i}": {"tasks": 70, "skipped": 30, "remote": 30, "changed": changed, "failed": 0}
        for i in range(size)
    }
    return fs.Run(label, wall, cpu, 1.0, hosts, dict.fromkeys(hosts, 50), {})


def test_ratios_and_table():
    runs = [run(1, "first", 40.0, 10.0, 20), run(1, "re-run", 20.0, 8.0), run(5, "first", 100.0, 30.0),
            run(5, "re-run", 30.0, 20.0)]  # fmt: skip
    lines = fs.ratios(runs).splitlines()
    assert lines[1].split() == ["1", "0.50", "1.00", "1.00"]
    assert lines[2].split() == ["5", "0.30", "2.50", "1.50"]
    rows = fs.table(runs, "title").splitlines()[3:]
    assert rows[0].split() == ["1", "first", "40.0", "20", "10.0", "10.00", "70", "30", "50", "1.0"]
    assert rows[3].split()[:6] == ["5", "re-run", "30.0", "0", "20.0", "4.00"]


def test_projections_use_the_fit_of_each_run_kind():
    runs = [run(1, "re-run", 20.0, 6.5), run(5, "re-run", 30.0, 12.5), run(20, "re-run", 60.0, 35.0)]
    text = fs.projections(runs, forks=50)
    assert "re-run: controller CPU = 5.0 s + 1.50 s * hosts" in text
    assert "  100 hosts: CPU 3 min; wall 1.3 min on 2 cores, 0.7 min on 8 cores" in text


def test_bench_config_keeps_the_repository_settings_from_another_directory(tmp_path):
    text = (REPO / "ansible.cfg").read_text()
    out = fs.bench_config(text, Path("/repo"), 0.02)
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(out)
    paths = config["defaults"]["collections_path"].split(":")
    assert paths[0] == "/repo/.ansible/collections"
    assert paths[1:] == ["~/.ansible/collections", "/usr/share/ansible/collections"]
    assert config["defaults"]["internal_poll_interval"] == "0.02"
    assert config["ssh_connection"]["pipelining"] == "true"
    # Everything else as the repository has it.
    original = configparser.ConfigParser(interpolation=None)
    original.read_string(text)
    for key, value in original["defaults"].items():
        if key not in ("collections_path", "inventory", "internal_poll_interval"):
            assert config["defaults"][key] == value


def test_the_bench_polls_as_the_repository_does_unless_told():
    original = configparser.ConfigParser(interpolation=None)
    original.read_string((REPO / "ansible.cfg").read_text())
    # The repository sets it (Ansible's 1 ms costs a fleet's controller CPU), and the bench measures that.
    assert float(original["defaults"]["internal_poll_interval"]) == 0.01
    assert fs.repo_poll_interval() == 0.01


def test_calibration_playbooks():
    local = fs.calibration_playbook("local", 3)
    remote = fs.calibration_playbook("remote", 3)
    assert [p["hosts"] for p in local + remote] == ["targets", "targets"]
    assert not local[0]["gather_facts"]
    assert [next(k for k in t if k != "name") for t in local[0]["tasks"]] == ["ansible.builtin.assert"] * 3
    assert [next(k for k in t if k != "name") for t in remote[0]["tasks"]] == ["ansible.builtin.stat"] * 3
    assert fs.calibration_playbook("local", 0)[0]["tasks"] == []


def test_calibrate_takes_out_the_start_and_divides_by_tasks_and_hosts(tmp_path):
    cpu = {"[]": 3.0}  # an empty playbook: ansible-playbook's start alone

    class FakeBench:
        tmp = tmp_path

        def site(self, label, names, playbook):
            tasks = json.loads(Path(playbook).read_text())[0]["tasks"]
            per = 0.1 if label == "cal-local" else 0.25
            return SimpleNamespace(controller_cpu=cpu["[]"] + per * len(tasks) * len(names))

    per_task = fs.calibrate(FakeBench(), ["a", "b"], tasks=10)
    assert per_task == pytest.approx({"local": 0.1, "remote": 0.25})
