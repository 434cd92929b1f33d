"""The responder role's path, interpreter and user knobs really move the service (issue 15, item 5).

One container from the lab image is hardened with every knob changed: install prefix, config
directory, system user and the firewall layer's name. The responder must run from there, as that
user, reading those files, with the block sets of that layer, and nothing may be left at the
reference unit's default paths.
"""

import os

import pytest
from podman_targets import ct, recap, run_playbook, targets

pytestmark = pytest.mark.slow
KNOBS = {
    "sipguard_responder_prefix": "/srv/sg/lib",
    "sipguard_responder_config_dir": "/srv/sg/etc",
    "sipguard_responder_user": "sgresp",
    "sipguard_firewall_name": "sgx",
}


def test_changed_paths_user_and_layer_name_are_what_the_service_uses(tmp_path):
    name = f"sgpaths{os.getpid() % 100000}"
    with targets([name], "paths"):
        host = {name: {"sipguard_softswitch": "sipresponder", **KNOBS}}
        common = {"sipguard_profile": "public", "sipguard_lan_networks": ["198.18.99.0/24"]}
        run = run_playbook(tmp_path, "playbooks/site.yml", host, common)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

        assert ct(name, "systemctl", "is-active", "sipresponder").strip() == "active"
        pid = ct(name, "systemctl", "show", "-P", "MainPID", "sipresponder").strip()
        assert ct(name, "ps", "-o", "user=", "-p", pid).strip() == "sgresp"
        command = ct(name, "cat", f"/proc/{pid}/cmdline")
        assert "/srv/sg/etc/softswitch.conf" in command, command
        # (The process's own environ is not readable from podman exec: no CAP_SYS_PTRACE.)
        environment = ct(name, "systemctl", "show", "-P", "Environment", "sipresponder")
        assert "PYTHONPATH=/srv/sg/lib" in environment.split(), environment
        assert ct(name, "sh", "-c", "test -f /srv/sg/lib/sipresponder/core.py && echo installed").strip()
        # Nothing at the reference unit's defaults.
        for default in ("/etc/sipresponder", "/opt/sipresponder"):
            assert ct(name, "sh", "-c", f"test -e {default} && echo present || true").strip() == "", default
        # The responder feeds the block sets of the layer named sgx.
        toml = ct(name, "cat", "/srv/sg/etc/responder.toml")
        assert 'ipset4 = "sgx-block4"' in toml and 'ipset6 = "sgx-block6"' in toml, toml
        assert {"sgx-block4", "sgx-block6"} <= set(ct(name, "ipset", "list", "-n").split())

        again = run_playbook(tmp_path, "playbooks/site.yml", host, common)
        assert again.returncode == 0, again.stdout[-4000:]
        assert recap(again.stdout, name)["changed"] == 0, again.stdout[-4000:]
