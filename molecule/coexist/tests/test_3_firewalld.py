"""A host where firewalld is active (Debian's default, FirewallBackend=nftables). site.yml's firewall
part (the firewalld host is not in `targets`; the test puts it there for one run) may end in
exactly one of two ways:

  refused   the play fails, every failure names firewalld, and the kernel's rules and sets and
            sipguard's boot files are byte-identical before and after;
  integrated  the play succeeds and sipguard's layer is the same after `firewall-cmd --reload`.

Anything else (a success whose layer a reload removes, a failure for another reason, a refusal
that changed something) fails."""

import re

import pytest
from coexist_helpers import failed_results, run_site

_NOISE = (
    (re.compile(r"^#.*\n?", re.MULTILINE), ""),  # iptables-save's header and footer carry a date
    (re.compile(r"\[\d+:\d+\]"), ""),  # chain counters
    (re.compile(r"counter packets \d+ bytes \d+"), "counter"),  # nft rule counters
)

STATE = {
    "iptables-save": "iptables-save",
    "ip6tables-save": "ip6tables-save",
    "ipset list": "ipset list",
    "nft list ruleset": "nft list ruleset",
    "sipguard files": "ls -la /etc/sipguard/firewall /var/lib/sipguard/firewall 2>&1;"
                      " ls /etc/systemd/system | grep -i sipguard || true",
    "firewalld direct": "firewall-cmd --direct --get-all-chains; firewall-cmd --direct --get-all-rules;"
                        " firewall-cmd --get-ipsets",
}


def _state(host) -> dict[str, str]:
    state = {}
    for name, command in STATE.items():
        text = host.check_output(command)
        for pattern, replacement in _NOISE:
            text = pattern.sub(replacement, text)
        state[name] = text
    return state


def _layer(state: dict[str, str]) -> dict[str, list[str]]:
    """sipguard's objects wherever they live (iptables, ipset, nftables, firewalld)."""
    return {name: [line.strip() for line in text.splitlines() if "sipguard" in line.lower()]
            for name, text in state.items() if name != "sipguard files"}


@pytest.fixture(scope="module")
def firewalld_run(topo, tmp_path_factory):
    host = topo.host("firewalld")
    assert host.check_output("firewall-cmd --state") == "running"
    inventory = tmp_path_factory.mktemp("inventory") / "firewalld-in-targets.yml"
    inventory.write_text(f"targets:\n  hosts:\n    mol-{topo.name}-firewalld:\n")
    before = _state(host)
    # The firewall part of site.yml (sipguard_profile runs always): the responder does not matter here.
    run = run_site(f"mol-{topo.name}-firewalld", inventory, json_output=True, tags="firewall")
    return host, before, run


def test_firewalld_host_refused_clearly_or_keeps_the_layer_across_reload(firewalld_run):
    host, before, run = firewalld_run
    if run.returncode != 0:
        failures = failed_results(run)
        assert failures, run.stdout[-3000:] + run.stderr[-2000:]
        for failure in failures:
            assert "firewalld" in str(failure.get("msg", "")).lower(), \
                f"the play failed for another reason than firewalld: {failure['task']}: {failure.get('msg')}"
        after = _state(host)
        for name in STATE:
            assert after[name] == before[name], f"the refusal changed {name}"
        return
    layer = _layer(_state(host))
    assert any(layer.values()), "site.yml succeeded but no sipguard object exists"
    host.check_output("firewall-cmd --reload")
    assert host.check_output("firewall-cmd --state") == "running"
    assert _layer(_state(host)) == layer, "firewall-cmd --reload changed or removed sipguard's layer"
