"""debug: a time-boxed window on a public host turns replies, the trace and the
firewall's LOG rules on, and the host reverts by itself after the TTL, with no
controller involved (verified by waiting, not assumed)."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from sipcheck import sip_probe, trace_lines, wait_for

PROJECT = Path(__file__).resolve().parents[3]
TTL = 45
CONF = "/etc/sipresponder/softswitch.conf"


def _reply_setting(target) -> str:
    return target.check_output(f"sed -n 's/^SS_REPLY_UNAUTHORIZED=//p' {CONF}").strip('"')


def _log_rules(target) -> list[str]:
    return [line for line in target.check_output("iptables-save -t filter").splitlines() if "-j LOG" in line]


@pytest.fixture(scope="module")
def window(topo):
    """Open the debug window once for this module; return when it was opened."""
    target = topo.host("target")
    assert _reply_setting(target) == "Off", "the base profile (public) should be silent before the window"
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "playbooks/debug.yml",
         "-e", f"sipguard_debug_hosts=mol-{topo.name}-target", "-e", f"sipguard_debug_ttl={TTL}"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return time.monotonic()


def test_replies_are_on_during_the_window(topo, window):
    scanner = topo.host("scanner")
    assert _reply_setting(topo.host("target")) == "On"
    assert sip_probe(scanner, topo.target_wan, method="OPTIONS")["status"] == 403
    assert sip_probe(scanner, topo.target_wan, method="REGISTER")["status"] == 401


def test_trace_records_dropped_requests(topo, window):
    # An ACK from a stranger gets nothing back even with replies on; the trace still shows it.
    reply = sip_probe(topo.host("scanner"), topo.target_wan, method="ACK")
    assert not reply["answered"]

    def dropped_ack():
        scanner_address = f"{topo.wan}.100"
        return [e for e in trace_lines(topo.host("target"))
                if (e.get("method"), e.get("decision"), e.get("src")) == ("ACK", "drop", scanner_address)]

    assert wait_for(dropped_ack, timeout=5)


def test_log_rules_exist_and_are_rate_limited(topo, window):
    rules = _log_rules(topo.host("target"))
    assert rules, "no LOG rules during the debug window"
    assert all(re.search(r"-m limit --limit \S+", rule) for rule in rules), rules


def test_host_reverts_by_itself_after_the_ttl(topo, window):
    target = topo.host("target")
    remaining = TTL - (time.monotonic() - window)
    reverted = wait_for(lambda: _reply_setting(target) == "Off" and not _log_rules(target),
                        timeout=max(remaining, 0) + 60, interval=3)
    assert reverted, f"still in debug after TTL+60s: {_reply_setting(target)}, {_log_rules(target)}"
    assert not sip_probe(topo.host("scanner"), topo.target_wan, method="OPTIONS")["answered"]
    before = len(trace_lines(target))
    sip_probe(topo.host("scanner"), topo.target_wan, method="ACK")
    time.sleep(1)
    assert len(trace_lines(target)) == before, "the trace is still on after the revert"
