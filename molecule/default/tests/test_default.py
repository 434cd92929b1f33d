"""Smoke checks of the default scenario: a booted target, reachable over the
scenario network, whose SIP behaviour matches the public profile, converged and
audited from the collection as a user installs it."""

import json
import os
import re
from pathlib import Path

import testinfra
import yaml
from sipcheck import sip_probe

from testkit.ansible import ansible
from testkit.systemd import BOOTED, system_state
from testkit.topology import Topology

testinfra_hosts = ["mol-default-target"]

TOPO = Topology.of("default")
TARGET_WAN = TOPO.target_wan  # 198.19.0.10
TARGET_WAN6 = TOPO.target_wan6  # 2001:2:0:100::10
TARGET_LAN = TOPO.target_lan  # 198.19.1.10
# Where install-collection.sh installed the built tarball (molecule.yml points
# the converge there too).
COLLECTIONS = str(Path(__file__).resolve().parents[3] / ".cache" / "collection-install" / "collections")


def scanner():
    return testinfra.get_host("podman://mol-default-scanner")


def test_systemd_is_pid1_and_booted(host):
    assert system_state(host) in BOOTED


def test_scanner_reaches_target_over_ipv4_and_ipv6():
    # A TCP connect to a closed port is answered with RST: proves routing both ways.
    for addr in (TARGET_WAN, TARGET_WAN6):
        reply = sip_probe(scanner(), addr, port=9, transport="tcp", timeout=2)
        assert reply.get("tcp_refused"), f"{addr} not reachable from the scanner: {reply}"


def test_public_target_is_silent_to_a_stranger():
    for transport in ("udp", "tcp"):
        reply = sip_probe(scanner(), TARGET_WAN, method="OPTIONS", transport=transport)
        assert not reply["answered"], reply


def test_responder_runs_unprivileged(host):
    responder = host.service("sipresponder")
    assert responder.is_running
    pid = host.check_output("systemctl show -P MainPID sipresponder")
    assert host.check_output(f"ps -o user= -p {pid}") == "sipresponder"
    # CAP_NET_BIND_SERVICE (bit 10), plus CAP_NET_ADMIN (bit 12) for the ipset
    # kernel-block hook the public profile turns on; nothing else.
    effective = int(host.check_output(f"grep ^CapEff /proc/{pid}/status").split()[1], 16)
    assert effective & ~((1 << 10) | (1 << 12)) == 0, hex(effective)


def _as_a_user(tmp_path, *args):
    """ansible-playbook/ansible-doc run from a directory of the user's own, with only the installed
    collection: no ansible.cfg, no ANSIBLE_* settings of the clone, cwd outside it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(ANSIBLE_HOST_KEY_CHECKING="0")
    return ansible(*args[1:], tool=args[0], cwd=tmp_path, config=False, collections=COLLECTIONS,
                   env=env, inherit_env=False, timeout=600)


def test_installed_collection_documents_its_modules_and_roles(tmp_path):
    for module in ("firewall", "softswitch", "sip_probe", "sip_dns"):
        shown = _as_a_user(tmp_path, "ansible-doc", f"sipguard.hardening.{module}")
        assert shown.returncode == 0, shown.stderr
        assert f"sipguard.hardening.{module}" in shown.stdout
        assert COLLECTIONS in shown.stdout, "documented from somewhere other than the installed copy"
    for role in ("sipguard_profile", "sipguard_preflight", "sipguard_responder", "sipguard_softswitch",
                 "sipguard_firewall", "sipguard_audit", "sipguard_debug"):
        shown = _as_a_user(tmp_path, "ansible-doc", "-t", "role", f"sipguard.hardening.{role}")
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"ENTRY POINT: \*?main\*? - ", shown.stdout), shown.stdout[:400]


def test_a_user_playbook_elsewhere_audits_the_target(tmp_path):
    """Four lines in the user's own directory, an inventory there, FQCN only: the audit passes."""
    reach = {"ansible_connection": "containers.podman.podman",
             "ansible_python_interpreter": "/usr/bin/python3"}
    inventory = {"all": {"vars": reach, "children": {
        "targets": {"hosts": {"mol-default-target": {
            "sipguard_softswitch": "sipresponder", "sipguard_profile": "public",
            "sipguard_lan_networks": TOPO.lan_networks,  # ["198.19.1.0/24", "2001:2:0:101::/64"]
            "sipguard_accounts": [{"username": "1001", "password": "lab-phone-secret"}]}}},
        "probes": {"hosts": {"mol-default-scanner": {}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "audit.yml").write_text(
        "---\n- name: Audit my SIP servers\n  ansible.builtin.import_playbook: sipguard.hardening.audit\n")
    run = _as_a_user(tmp_path, "ansible-playbook", "-i", "hosts.yml", "audit.yml",
                     "-e", "sipguard_audit_outside_host=mol-default-scanner",
                     "-e", "sipguard_audit_lan_host=mol-default-scanner",
                     "-e", f"sipguard_audit_outside_address={TARGET_WAN}",
                     "-e", f"sipguard_audit_lan_address={TARGET_LAN}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # The reports land in reports/ of the directory the user ran from.
    (row,) = json.loads((tmp_path / "reports" / "audit.json").read_text())
    assert row["host"] == "mol-default-target"
    assert row["passed"], row
