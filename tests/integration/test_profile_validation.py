"""Bad profile inputs stop site.yml in its first tasks, naming the host and the value.

The target is a podman container name that does not exist: a task that got past
validation would fail to connect instead of changing anything, so these runs
are safe on any machine. The trunk case resolves against a loopback port where
nothing listens.
"""

import json
import re

import pytest

from testkit.ansible import ansible

HOST = "rt-validation-nonexistent"
pytestmark = pytest.mark.slow


def run_site(tmp_path, *args, **host_vars):
    # JSON is YAML: a one-host inventory with the host in "targets".
    host_vars["ansible_connection"] = "containers.podman.podman"
    host_vars.setdefault("sipguard_softswitch", "sipresponder")
    inventory = {"all": {"children": {"targets": {"hosts": {HOST: host_vars}}}}}
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    return ansible("-i", tmp_path / "hosts.yml", "playbooks/site.yml", *args, timeout=120)


def run_validation_only(tmp_path, **host_vars):
    """site.yml with every role but sipguard_profile (tagged always) skipped: no connection at all."""
    return run_site(tmp_path, "--skip-tags", "preflight,responder,softswitch,firewall", **host_vars)


def assert_stopped_by_validation(result, *needles):
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{HOST}:" in out
    for needle in needles:
        assert needle in out, out[-2000:]
    # Nothing after validation ran: no connection attempt to the (missing) host.
    assert "sipguard_responder" not in out
    assert "UNREACHABLE" not in out
    assert re.search(rf"^{HOST}\s*:.*\bchanged=0\b", out, re.MULTILINE), out[-2000:]


def test_unknown_profile(tmp_path):
    result = run_site(tmp_path, sipguard_profile="publik", sipguard_lan_networks=["198.18.10.0/24"])
    assert_stopped_by_validation(result, '"publik"', "private_lan")


def test_invalid_lan_network(tmp_path):
    result = run_site(tmp_path, sipguard_profile="private_lan", sipguard_lan_networks=["198.18.10.0/33"])
    assert_stopped_by_validation(result, "198.18.10.0/33")


def test_lan_only_profile_without_networks(tmp_path):
    result = run_site(tmp_path, sipguard_profile="mixed")
    assert_stopped_by_validation(result, "both empty")


def test_account_problem_does_not_leak_the_password(tmp_path):
    result = run_site(
        tmp_path,
        sipguard_profile="private_lan",
        sipguard_lan_networks=["198.18.10.0/24"],
        sipguard_accounts=[{"username": "1001", "password": "leak-me-not", "networks": ["nowhere"]}],
    )
    assert_stopped_by_validation(result, "'nowhere'")
    assert "leak-me-not" not in result.stdout + result.stderr


def test_trunk_that_does_not_resolve(tmp_path):
    result = run_site(
        tmp_path,
        sipguard_profile="mixed",
        sipguard_lan_networks=["198.18.10.0/24"],
        sipguard_trunks=[{"name": "carrier", "dns": "missing.trunk.invalid"}],
        sipguard_dns_nameservers=["127.0.0.1"],
    )
    assert_stopped_by_validation(result, '"carrier"', "missing.trunk.invalid")


# --- typed, complete validation (issue 10, item 5) -------------------------------------------------


def test_port_string_is_refused_before_anything_changes(tmp_path):
    # Accepted before: the argument spec splits the string, the role then iterated its characters
    # into SS_SIP_PORT=5,0,6,0,,,5,0,7,0 and the module failed after other roles changed the host.
    result = run_site(tmp_path, sipguard_profile="public", sipguard_sip_ports="5060,5070")
    assert_stopped_by_validation(
        result, "sipguard_sip_ports '5060,5070' is a string", "YAML list", "[5060, 5070]")


@pytest.mark.parametrize(
    ("host_vars", "needles"),
    [
        ({"sipguard_sip_ports": [5060, 22]}, ("port 22 ", "sipguard_management_ports")),
        ({"sipguard_sip_ports": [5060, 2222], "ansible_port": 2222}, ("port 2222 ", "ansible_port")),
    ],
    ids=["ssh", "ansible_port"],
)
def test_management_port_among_sip_ports_is_refused(tmp_path, host_vars, needles):
    result = run_site(tmp_path, sipguard_profile="public", **host_vars)
    assert_stopped_by_validation(result, *needles)


def test_misspelled_variable_is_refused_with_the_closest_name(tmp_path):
    # Ignored before: the run went on with sipguard_profile "" and said only that "" is no profile.
    result = run_site(tmp_path, sipguard_profle="public")
    assert_stopped_by_validation(result, "unknown variable sipguard_profle", "did you mean sipguard_profile?")


def test_empty_scanner_list_in_public_is_refused(tmp_path):
    result = run_site(tmp_path, sipguard_profile="public", sipguard_scanner_user_agents=[])
    assert_stopped_by_validation(
        result, "sipguard_scanner_user_agents is empty", "sipguard_scanner_user_agents_empty_ok: true")


def test_empty_scanner_list_is_accepted_when_asked_for(tmp_path):
    result = run_validation_only(
        tmp_path, sipguard_profile="public", sipguard_scanner_user_agents=[],
        sipguard_scanner_user_agents_empty_ok=True,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "Set the effective profile settings" in out


def test_profile_a_product_cannot_honour_is_refused(tmp_path):
    # Asterisk has no silent mode and public keeps SIP open to the world: the backend table says refused.
    result = run_site(tmp_path, sipguard_softswitch="asterisk", sipguard_profile="public")
    assert_stopped_by_validation(result, "cannot be honoured on sipguard_softswitch asterisk",
                                 "no silent mode", "private_lan, mixed, debug")


def test_backend_differences_are_merged_into_the_settings(tmp_path):
    # A product with no differences gets the profile row unchanged; validation accepts it.
    result = run_validation_only(tmp_path, sipguard_softswitch="kamailio", sipguard_profile="public")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
