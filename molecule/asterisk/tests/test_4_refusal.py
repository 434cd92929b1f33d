"""A pjsip.conf that does not include sipguard's file: the preflight refuses the host, shows the line to
add and changes nothing (a real site.yml run, after the rollback, on the mixed PBX)."""

from __future__ import annotations

import os

from testkit.ansible import ansible

PJSIP = "/etc/asterisk/pjsip.conf"


def _state(host) -> str:
    return host.check_output(
        "cd /etc/asterisk && find . -type f -print0 | sort -z | xargs -0 sha256sum; "
        "iptables-save -t filter | grep -ci sipguard || true; ls /var/lib/sipguard 2>/dev/null || true")


def test_preflight_refuses_a_pjsip_conf_without_the_include(topo):
    name = f"mol-{topo.name}-mixed"
    host = topo.host("mixed")
    original = host.check_output(f"cat {PJSIP}")
    host.check_output(f"cp -p {PJSIP} /root/pjsip.conf.keep")
    host.check_output(f"sed -i '/^#tryinclude pjsip_sipguard.conf/d' {PJSIP}")
    try:
        before = _state(host)
        run = ansible("-i", os.environ["MOLECULE_INVENTORY_FILE"], "playbooks/site.yml",
                      "--limit", f"{name},localhost", timeout=600)
        assert run.returncode != 0, run.stdout[-3000:]
        assert f"{PJSIP} does not include /etc/asterisk/pjsip_sipguard.conf" in run.stdout, run.stdout[-3000:]
        assert "#tryinclude pjsip_sipguard.conf" in run.stdout, run.stdout[-3000:]
        assert _state(host) == before
    finally:
        host.check_output(f"cp -p /root/pjsip.conf.keep {PJSIP}")
    assert host.check_output(f"cat {PJSIP}") == original
