"""The preflight refuses hosts sipguard cannot manage, before any change anywhere (issue 13, items 3, 4).

Two containers from the lab image stand in for the hosts: one as built, one without
ipset. Several inventory hosts point at them (ansible_host names the container), each
with one thing wrong. site.yml runs once against all of them; every host must be refused
with a message naming it, what was found and what to do, and ``podman diff`` of both
containers (every file added, changed or deleted since the image) must be the same
after the run as before it.
"""

import os
from pathlib import Path

import pytest
from podman_targets import ct, recap, run_playbook, sh, targets

# Stands in for a CentOS 7 host's python2.7: answers the probe the way that interpreter would.
FAKE_PYTHON = "/opt/fake/python2.7"
# The image's real python3 with tomllib and toml shadowed (PYTHONPATH precedes the standard library):
# a Python 3.9/3.10 host without python3-toml, as the responder's check meets it.
NO_TOML_PYTHON = "/opt/fake/python3-without-toml"
pytestmark = pytest.mark.slow


def changes(name):
    """What differs in the container from its image, without Ansible's own temporary directory
    (/root/.ansible, which also marks /root itself as changed)."""
    lines = sh("podman", "diff", name).stdout.splitlines()
    return sorted(line for line in lines if "/root/.ansible" not in line and line != "C /root")


@pytest.fixture(scope="module")
def hosts():
    tag = os.getpid() % 100000
    with targets([f"sgpf{tag}-plain", f"sgpf{tag}-noipset"], "preflight") as (plain, no_ipset):
        ct(plain, "sh", "-c", f"mkdir -p {Path(FAKE_PYTHON).parent} && printf '#!/bin/sh\\necho 2.7.18\\n' > "
           f"{FAKE_PYTHON} && chmod 0755 {FAKE_PYTHON}")
        ct(plain, "sh", "-c", "mkdir -p /opt/fake/shadow && for m in tomllib toml; do "
           "echo 'raise ImportError(\"shadowed by the test\")' > /opt/fake/shadow/$m.py; done && "
           "printf '#!/bin/sh\\nPYTHONPATH=/opt/fake/shadow exec /usr/bin/python3 \"$@\"\\n'"
           f" > {NO_TOML_PYTHON} && chmod 0755 {NO_TOML_PYTHON}")
        ct(no_ipset, "sh", "-c", 'rm -f "$(command -v ipset)"')
        yield plain, no_ipset


def refusal(out, host):
    """The failure message of ``host`` (the assert's msg, on one line)."""
    for line in out.splitlines():
        if line.startswith(f"[ERROR]: Task failed: Action failed: {host}: "):
            return line.split("Action failed: ", 1)[1]
    raise AssertionError(f"no refusal for {host} in:\n{out[-4000:]}")


@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
def test_each_unmanageable_host_is_refused_and_nothing_changes(hosts, tmp_path, check_mode):
    plain, no_ipset = hosts
    before = {name: changes(name) for name in hosts}
    result = run_playbook(tmp_path, "playbooks/site.yml", {
        "no-softswitch": {"ansible_host": plain},
        "unknown-softswitch": {"ansible_host": plain, "sipguard_softswitch": "freeswitch"},
        "old-python": {"ansible_host": plain, "sipguard_softswitch": "sipresponder",
                       "ansible_python_interpreter": FAKE_PYTHON},
        "vos-without-conf": {"ansible_host": plain, "sipguard_softswitch": "vos3000"},
        "vos-elsewhere": {"ansible_host": plain, "sipguard_softswitch": "vos3000",
                          "sipguard_softswitch_path": "/opt/vos3000/etc/softswitch.conf"},
        "no-ipset": {"ansible_host": no_ipset, "sipguard_softswitch": "sipresponder"},
        "responder-without-toml": {"ansible_host": plain, "sipguard_softswitch": "sipresponder",
                                   "sipguard_responder_python": NO_TOML_PYTHON},
        "responder-python-missing": {"ansible_host": plain, "sipguard_softswitch": "sipresponder",
                                     "sipguard_responder_python": "/usr/bin/python3.99"},
    }, {"sipguard_profile": "public"}, *(["--check", "--diff"] if check_mode else []))
    out = result.stdout + result.stderr
    assert result.returncode != 0

    message = refusal(out, "no-softswitch")
    assert "sipguard_softswitch is not set" in message
    assert "sipguard_softswitch: sipresponder" in message and "sipguard_softswitch: vos3000" in message

    assert 'unknown sipguard_softswitch "freeswitch"' in refusal(out, "unknown-softswitch")

    message = refusal(out, "old-python")
    assert f"Python 2.7.18 at {FAKE_PYTHON}" in message
    assert "ansible-core 2.19 cannot manage" in message and "3.8 or later" in message
    assert "the ansible-core 2.16 toolchain (docs/development.md)" in message

    message = refusal(out, "vos-without-conf")
    assert "/home/kunshi/mbx3000/etc/softswitch.conf does not exist" in message
    assert "set sipguard_softswitch_path" in message
    assert "/opt/vos3000/etc/softswitch.conf does not exist" in refusal(out, "vos-elsewhere")

    message = refusal(out, "no-ipset")
    assert message.startswith("no-ipset: ipset not found") and "apt-get install iptables ipset" in message

    message = refusal(out, "responder-without-toml")
    assert f"sipguard_responder_python {NO_TOML_PYTHON} is Python 3." in message
    assert "without tomllib or toml" in message and "apt-get install python3-toml" in message
    message = refusal(out, "responder-python-missing")
    assert "sipguard_responder_python /usr/bin/python3.99 cannot be run" in message
    assert "set sipguard_responder_python to the host's Python 3.9+" in message

    # Every host stopped in the first play: the second never started.
    assert "Harden the SIP fleet" not in out
    for host in ("no-softswitch", "unknown-softswitch", "old-python", "vos-without-conf", "vos-elsewhere",
                 "no-ipset", "responder-without-toml", "responder-python-missing"):
        counts = recap(out, host)
        assert counts["changed"] == 0 and counts["failed"] == 1, (host, counts)
    after = {name: changes(name) for name in hosts}
    difference = {name: sorted(set(after[name]) ^ set(before[name])) for name in hosts}
    assert difference == {name: [] for name in hosts}
