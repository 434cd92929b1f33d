"""The profile table and the filters that validate a host's inputs and judge an audit.

The filters are plain functions in plugins/filter/; they are loaded
from their files so these tests need no Ansible run.
"""

import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


profile = load(ROLES.parent / "plugins/filter/profile.py")
audit = load(ROLES.parent / "plugins/filter/audit.py")
TABLE = yaml.safe_load((ROLES / "sipguard_profile/vars/main.yml").read_text())
PROFILES = TABLE["sipguard_profiles"]
METHODS = TABLE["sipguard_profile_audit_methods"]


# --- the profile table: what the brief promises, as data --------------------------------------


def test_table_has_exactly_the_four_profiles():
    assert set(PROFILES) == {"private_lan", "public", "mixed", "debug"}


@pytest.mark.parametrize(
    ("name", "reply", "allow"),
    [
        ("private_lan", "On", "lan_and_trunks"),
        ("public", "Off", "world"),
        ("mixed", "Off", "lan_and_trunks"),
        ("debug", "On", "lan_and_trunks"),
    ],
)
def test_profile_matches_the_brief(name, reply, allow):
    row = PROFILES[name]
    assert row["reply_unauthorized"] == reply
    assert row["firewall"]["allow"] == allow
    # Scanner User-Agents are dropped where SIP is reachable from strangers' networks; the
    # LAN-only profiles let the LAN's own tools (svmap, sipsak) through.
    assert row["scanner_drop"] is (reply == "Off")


def test_only_debug_logs_and_traces():
    assert {n for n, r in PROFILES.items() if r["firewall"]["log"]} == {"debug"}
    assert {n for n, r in PROFILES.items() if r["trace"]} == {"debug"}


def test_only_public_rate_limits():
    assert {n for n, r in PROFILES.items() if r["firewall"]["rate_limit"] > 0} == {"public"}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_no_profile_answers_the_internet(name):
    # Every profile keeps strangers on the internet in silence; only the LAN may hear 401/403.
    assert all(status is None for status in PROFILES[name]["audit"]["outside"].values())
    assert set(PROFILES[name]["audit"]["outside"]) == set(METHODS)
    assert set(PROFILES[name]["audit"]["lan"]) == set(METHODS)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_lan_expectation_follows_reply_unauthorized(name):
    lan = PROFILES[name]["audit"]["lan"]
    if PROFILES[name]["reply_unauthorized"] == "On":
        assert lan == {"OPTIONS": 403, "REGISTER": 401, "INVITE": 403}
    else:
        # Off: silence, except REGISTER from the phones' network, challenged alike for every
        # user so that nobody there can enumerate accounts.
        assert lan == {"OPTIONS": None, "REGISTER": 401, "INVITE": None}


# --- input validation ----------------------------------------------------------------------------


def test_valid_networks_pass():
    assert profile.sipguard_invalid_networks(["198.18.10.0/24", "2001:2:0:10::/64", "198.18.20.50"]) == []


@pytest.mark.parametrize(
    "bad",
    ["198.18.10.0/33", "198.18.10.5/24", "lan", "", "2001:2::10::/64", None],
)
def test_invalid_network_is_named(bad):
    problems = profile.sipguard_invalid_networks(["198.18.10.0/24", bad])
    assert len(problems) == 1
    assert repr(bad) in problems[0]


def test_a_string_instead_of_a_list_is_refused():
    assert profile.sipguard_invalid_networks("198.18.10.0/24")


def test_trunk_needs_exactly_one_source():
    problems = profile.sipguard_trunk_problems(
        [
            {"name": "ok-static", "addresses": ["198.18.20.50"]},
            {"name": "ok-dns", "dns": "trunk.lab.sipguard.test"},
            {"name": "both", "addresses": ["198.18.20.50"], "dns": "x.test"},
            {"name": "neither"},
            {"name": "bad-net", "addresses": ["198.18.20.500"]},
            {"addresses": ["198.18.20.50"]},
        ]
    )
    assert len(problems) == 4
    assert any("'both'" in p for p in problems)
    assert any("'neither'" in p for p in problems)
    assert any("'bad-net'" in p and "198.18.20.500" in p for p in problems)
    assert any("needs a name" in p for p in problems)


def test_account_problems_never_show_the_secret():
    problems = profile.sipguard_account_problems(
        [
            {"username": "1001", "password": "s3cret", "ha1_md5": "abc"},
            {"username": "1002", "password": "hunter2", "networks": ["10.0.0.0/8", "nope"]},
            {"username": "1003", "password": "fine", "networks": ["any"]},
        ]
    )
    assert len(problems) == 2
    assert not any("s3cret" in p or "hunter2" in p for p in problems)
    assert any("'nope'" in p for p in problems)


def test_trunk_table_merges_static_and_dns_in_order():
    trunks = [{"name": "dns", "dns": "t.test"}, {"name": "static", "addresses": ["198.18.20.60"]}]
    dns_results = [{"item": trunks[0], "addresses": ["198.18.20.50", "2001:2:0:20::50"]}]
    assert profile.sipguard_trunk_table(trunks, dns_results) == [
        {"name": "dns", "addresses": ["198.18.20.50", "2001:2:0:20::50"]},
        {"name": "static", "addresses": ["198.18.20.60"]},
    ]


# --- typed lists: ports, transports, IP versions, scanner User-Agents ------------------------------


def test_port_list_passes():
    assert profile.sipguard_port_problems([5060, 5070, 1, 65535]) == []


def test_a_port_string_is_refused_with_the_list_it_meant():
    # The string the issue found: the templates would write SS_SIP_PORT=5,0,6,0,,,5,0,7,0.
    problems = profile.sipguard_port_problems("5060,5070")
    assert len(problems) == 1
    assert "'5060,5070' is a string" in problems[0]
    assert "YAML list" in problems[0] and "[5060, 5070]" in problems[0]
    assert "[5060]" in profile.sipguard_port_problems("5060")[0]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [("5060", "without quotes"), (True, "not a port"), (5060.0, "not a port"), (None, "not a port"),
     (0, "out of range"), (65536, "out of range"), (-1, "out of range")],
)
def test_each_port_is_an_integer_in_range(bad, reason):
    problems = profile.sipguard_port_problems([5060, bad])
    assert len(problems) == 1
    assert reason in problems[0]


def test_empty_port_list_only_where_allowed():
    assert profile.sipguard_port_problems([])
    assert profile.sipguard_port_problems([], allow_empty=True) == []
    assert profile.sipguard_port_problems({"sip": 5060})


def test_sip_port_that_is_a_management_port_is_named():
    problems = profile.sipguard_port_overlap([5060, 22], [22, 2222])
    assert len(problems) == 1
    assert "port 22 " in problems[0] and "sipguard_management_ports" in problems[0]


def test_ansible_port_counts_as_a_management_port():
    for ansible_port in (2200, "2200"):
        problems = profile.sipguard_port_overlap([5060, 2200], [22], ansible_port)
        assert len(problems) == 1
        assert "port 2200 " in problems[0] and "ansible_port" in problems[0]
    assert profile.sipguard_port_overlap([5060], [22], 2200) == []


def test_overlap_is_not_judged_on_malformed_lists():
    # sipguard_port_problems reports those; no second, confusing message.
    assert profile.sipguard_port_overlap("5060,22", [22]) == []
    assert profile.sipguard_port_overlap([5060], "22") == []


def test_choice_lists():
    assert profile.sipguard_choice_problems(["udp", "tcp"], ["udp", "tcp"]) == []
    assert "'tls'" in profile.sipguard_choice_problems(["udp", "tls"], ["udp", "tcp"])[0]
    assert "is a string" in profile.sipguard_choice_problems("4,6", [4, 6])[0]
    assert profile.sipguard_choice_problems([], [4, 6])
    assert profile.sipguard_choice_problems([True], [1])  # True == 1 but is not a choice


def test_user_agent_list():
    assert profile.sipguard_user_agent_problems(["friendly-scanner", "sipvicious"]) == []
    assert profile.sipguard_user_agent_problems([]) == []  # the profile decides whether empty is allowed
    assert "is a string" in profile.sipguard_user_agent_problems("friendly-scanner")[0]
    problems = profile.sipguard_user_agent_problems(["", "  ", 7, "smap\n"])
    assert len(problems) == 4
    assert "control characters" in problems[3]


# --- unknown variables ---------------------------------------------------------------------------


KNOWN = ["sipguard_profile", "sipguard_profiles", "sipguard_sip_ports", "sipguard_management_ports",
         "sipguard_scanner_user_agents", "sipguard_firewall_rate_limit"]


def test_misspelled_variable_gets_the_closest_name():
    problems = profile.sipguard_unknown_variables(
        ["sipguard_profle", "sipguard_managment_ports", "sipguard_firewall_rate_limt", "sipguard_profile"],
        KNOWN,
    )
    assert problems == [
        "unknown variable sipguard_firewall_rate_limt (did you mean sipguard_firewall_rate_limit?)",
        "unknown variable sipguard_managment_ports (did you mean sipguard_management_ports?)",
        "unknown variable sipguard_profle (did you mean sipguard_profile?)",
    ]


def test_unknown_sipguard_variable_without_a_close_name():
    assert profile.sipguard_unknown_variables(["sipguard_office_cidr"], KNOWN) == [
        "unknown variable sipguard_office_cidr (no sipguard role reads it)"]


def test_other_names_only_when_they_are_a_near_miss():
    problems = profile.sipguard_unknown_variables(
        ["sipgaurd_profile", "inventory_hostname", "ansible_port", "vault_sipguard_password_1001", "profile"],
        KNOWN,
    )
    assert problems == ["unknown variable sipgaurd_profile (did you mean sipguard_profile?)"]


BACKENDS = TABLE["sipguard_profile_backends"]


def good_inputs(**changes):
    """One host's inputs as validate.yml passes them, all valid, with ``changes`` applied."""
    inputs = {
        "host_variables": ["sipguard_profile", "sipguard_softswitch", "ansible_host"],
        "known_variables": ["sipguard_profile", "sipguard_softswitch", "sipguard_lan_networks"],
        "profile": "private_lan", "profiles": PROFILES, "backends": BACKENDS,
        "softswitch": "sipresponder", "softswitch_set": True,
        "lan_networks": ["198.18.10.0/24"], "trunks": [], "accounts": [],
        "sip_ports": [5060], "management_ports": [22], "ansible_port": None,
        "sip_transports": ["udp", "tcp"], "ip_versions": [4, 6],
        "scanner_user_agents": ["friendly-scanner"], "scanner_user_agents_empty_ok": False,
    }
    inputs.update(changes)
    return inputs


problems_of = profile.sipguard_profile_problems


def test_good_inputs_have_no_problems():
    for name in PROFILES:
        assert problems_of(good_inputs(profile=name)) == []


def test_all_problems_are_reported_at_once():
    problems = problems_of(good_inputs(
        lan_networks=["198.18.10.0/33"], sip_ports="5060", sip_transports=["sctp"], ansible_port=5060))
    text = "; ".join(problems)
    assert "sipguard_lan_networks '198.18.10.0/33'" in text
    assert "sipguard_sip_ports '5060' is a string" in text
    assert "sipguard_sip_transports 'sctp' is not one of" in text
    assert len(problems) == 3


def test_a_misspelt_variable_comes_alone():
    problems = problems_of(good_inputs(
        host_variables=["sipguard_profle"], profile="", lan_networks=["bad"]))
    assert problems == ["unknown variable sipguard_profle (did you mean sipguard_profile?)"]


def test_unknown_profile_and_unset_softswitch_are_both_named():
    problems = problems_of(good_inputs(profile="publik", softswitch=None, softswitch_set=False))
    assert problems[0] == ('unknown sipguard_profile "publik";'
                           ' known profiles: debug, mixed, private_lan, public')
    assert problems[1].startswith("sipguard_softswitch is not set; say in the inventory what runs SIP")
    assert "sipguard_softswitch: asterisk (an Asterisk PBX" in problems[1]
    assert len(problems) == 2


def test_unknown_softswitch_is_quoted():
    problems = problems_of(good_inputs(softswitch="freeswitch"))
    assert problems[0].startswith('unknown sipguard_softswitch "freeswitch";')


def test_a_profile_the_product_refuses_names_what_it_can_honour():
    problems = problems_of(good_inputs(profile="public", softswitch="asterisk"))
    assert len(problems) == 1
    assert problems[0].startswith("sipguard_profile public cannot be honoured on sipguard_softswitch"
                                  " asterisk: Asterisk has no silent mode")
    assert problems[0].endswith(". Profiles it can honour: private_lan, mixed, debug (docs/backends.md)")


def test_rollback_judges_the_softswitch_alone():
    """rollback.yml must run on a host whose profile inputs are wrong; only sipguard_softswitch counts."""
    judge = profile.sipguard_softswitch_problems
    inputs = good_inputs(profile="publik", lan_networks=["bad"])
    assert judge(inputs) == []
    unset = judge(good_inputs(softswitch=None, softswitch_set=False))
    assert unset[0].startswith("sipguard_softswitch is not set")
    assert "cannot be honoured" in judge(good_inputs(profile="public", softswitch="asterisk"))[0]


def test_lan_only_profile_needs_a_lan_or_a_trunk():
    problems = problems_of(good_inputs(profile="mixed", lan_networks=[]))
    assert problems == ["profile mixed allows SIP only from the LAN and trunks, but sipguard_lan_networks and"
                        " sipguard_trunks are both empty"]
    trunk = [{"name": "carrier", "addresses": ["198.18.20.1"]}]
    assert problems_of(good_inputs(profile="mixed", lan_networks=[], trunks=trunk)) == []
    assert problems_of(good_inputs(profile="public", lan_networks=[])) == []


@pytest.mark.parametrize(("empty_ok", "refused"),
                         [(False, True), ("no", True), (True, False), ("yes", False)])
def test_empty_scanner_list_only_on_purpose(empty_ok, refused):
    problems = problems_of(good_inputs(
        profile="public", scanner_user_agents=[], scanner_user_agents_empty_ok=empty_ok))
    assert bool(problems) is refused
    assert all("drops scanner User-Agents" in p for p in problems)


def test_variable_names_per_kind_of_role_file():
    tasks = [
        {"name": "a", "ansible.builtin.set_fact": {"sipguard_x": 1, "cacheable": True, "other": 2}},
        {"block": [{"command": "true", "register": "sipguard_y"}],
         "rescue": [{"set_fact": {"sipguard_z": 1}}]},
        {"sipguard_firewall": {"name": "x"}},  # a module call names no variable
    ]
    assert profile.variable_names("tasks", tasks) == {"sipguard_x", "sipguard_y", "sipguard_z"}
    specs = {"argument_specs": {"main": {"options": {"sipguard_a": {}}},
                                "close": {"options": {"sipguard_b": {}}},
                                "empty": None}}
    assert profile.variable_names("meta/argument_specs", specs) == {"sipguard_a", "sipguard_b"}
    assert profile.variable_names("defaults", {"sipguard_c": 1, "other": 2}) == {"sipguard_c"}
    assert profile.variable_names("defaults", None) == set()


REPO = ROLES.parent
LEGITIMATE = set(TABLE["sipguard_profile_other_variables"])
ROLE_KNOWN = set(profile.sipguard_known_variables(ROLES, LEGITIMATE))


def _yaml(path):
    return profile.load_yaml(path.read_text())


def _sipguard_keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("sipguard_"):
                yield key
            yield from _sipguard_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _sipguard_keys(item)


def test_known_variables_cover_the_documented_facts_and_every_role_input():
    assert {"sipguard_settings", "sipguard_trunks_resolved", "sipguard_profile",
            "sipguard_scanner_user_agents_empty_ok", "sipguard_firewall_result",
            "sipguard_audit_port"} <= ROLE_KNOWN


def test_every_variable_the_inventories_and_molecule_set_is_known():
    used = set()
    for path in (REPO / "inventory").rglob("*.yml"):
        used |= set(_sipguard_keys(_yaml(path)))
    for path in (REPO / "molecule").glob("*/molecule.yml"):
        used |= set(_sipguard_keys(_yaml(path)["provisioner"]["inventory"]))
    for path in (REPO / "molecule/shared").glob("*.yml"):
        for play in _yaml(path) or []:
            used |= profile.variable_names("tasks", play.get("tasks", []) + play.get("pre_tasks", []))
    for path in [*(REPO / "molecule").rglob("*.py"), *(REPO / "tests").rglob("*.py")]:
        used |= set(re.findall(r"""["']-e["'],\s*f?["'](sipguard_\w+)=""", path.read_text()))
    assert used  # the scan found the lab's and Molecule's variables at all
    assert used - ROLE_KNOWN == set()


# --- audit verdicts -------------------------------------------------------------------------------


def probes(outside, lan, scanner=None, transports=("udp", "tcp")):
    """Fake registered loop results: ``outside``/``lan`` map method -> status or None."""
    results = []
    for vantage, seen in (("outside", outside), ("lan", lan)):
        for transport in transports:
            for method, status in seen.items():
                item = {"vantage": vantage, "transport": transport, "method": method, "scanner": False}
                results.append({"item": item, "answered": status is not None, "status_code": status})
    item = {"vantage": "lan", "transport": "udp", "method": "OPTIONS", "scanner": True}
    results.append({"item": item, "answered": scanner is not None, "status_code": scanner})
    return results


def row_for(name, results, reply=None):
    row = PROFILES[name]
    host = {
        "host": f"sg-{name}",
        "profile": name,
        "reply_unauthorized": row["reply_unauthorized"] if reply is None else reply,
        "expected": row["audit"],
        "expected_reply": row["reply_unauthorized"],
    }
    return audit.sipguard_audit_row(results, host)


SILENT = dict.fromkeys(METHODS)
CHALLENGE = {"OPTIONS": 403, "REGISTER": 401, "INVITE": 403}
OFF_LAN = {"OPTIONS": None, "REGISTER": 401, "INVITE": None}


def test_private_host_as_expected_passes():
    row = row_for("private_lan", probes(SILENT, CHALLENGE, scanner=403))
    assert row["passed"] and not row["exposed"] and row["problems"] == []


def test_public_host_answering_the_internet_is_exposed():
    row = row_for("public", probes({**SILENT, "REGISTER": 401}, OFF_LAN))
    assert not row["passed"] and row["exposed"]
    assert any("REGISTER from outside over udp" in p for p in row["problems"])


def test_answered_scanner_is_exposed_where_the_profile_drops_it():
    row = row_for("public", probes(SILENT, OFF_LAN, scanner=200))
    assert row["exposed"]
    assert "scanner" in row["problems"][0]


def test_silent_lan_on_private_host_is_a_mismatch_not_exposure():
    row = row_for("private_lan", probes(SILENT, SILENT))
    assert not row["passed"] and not row["exposed"]


def test_wrong_reply_setting_fails():
    row = row_for("public", probes(SILENT, OFF_LAN), reply="On")
    assert not row["passed"]
    assert "SS_REPLY_UNAUTHORIZED" in row["problems"][0]


def test_table_shows_silence_and_split_transports():
    mixed_up = probes(SILENT, CHALLENGE)
    for result in mixed_up:  # TCP from the LAN goes silent
        if result["item"]["vantage"] == "lan" and result["item"]["transport"] == "tcp":
            result["answered"], result["status_code"] = False, None
    rows = [row_for("public", probes(SILENT, OFF_LAN)), row_for("private_lan", mixed_up)]
    lines = audit.sipguard_audit_table(rows, METHODS).splitlines()
    assert lines[0].split()[:4] == ["host", "profile", "SS_REPLY_UNAUTHORIZED", "outside"]
    assert lines[2].split()[3:] == ["-", "-", "-", "-", "401", "-", "dropped", "ok"]
    assert "udp:401 tcp:-" in lines[3] and lines[3].split()[-1] == "MISMATCH"


def test_junit_counts_failures():
    exposed = probes({**SILENT, "INVITE": 403}, OFF_LAN)
    rows = [row_for("public", probes(SILENT, OFF_LAN)), row_for("public", exposed)]
    # Our own output, not untrusted input.
    suite = ET.fromstring(audit.sipguard_audit_junit(rows)).find("testsuite")  # noqa: S314
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failures = suite.findall("testcase/failure")
    assert len(failures) == 1 and "INVITE" in failures[0].get("message")
