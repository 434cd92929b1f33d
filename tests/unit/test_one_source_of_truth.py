"""Data and code written once: the SS_* parameter table, the scanner User-Agent list, the SIP codec.

- The softswitch module and the responder use one SS_* table: the module's module_utils file and the
  responder's ``softswitch_params.py`` are the same file, the responder's parser and the module's checks
  are built from it, and whatever the module writes, the responder reads back as the same value.
- The scanner list the roles use by default is the responder's default, read from one data file.
- The SIP codec (plugins/module_utils/sipguard_sip.py) is the responder's sip_codec.py, and every part that
  builds, frames or authenticates SIP (probe module, responder, vantage probe, benchmarks) uses it.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import sipmsg  # bench/ is on the test path
import yaml
from ansible_collections.sipguard.hardening.plugins.lookup import scanner_user_agents as scanner_lookup
from ansible_collections.sipguard.hardening.plugins.module_utils import sipguard_sip
from ansible_collections.sipguard.hardening.plugins.module_utils import sipguard_softswitch_params as shared
from ansible_collections.sipguard.hardening.plugins.modules import sip_probe, softswitch

from sipresponder import config, digest, message, server, sip_codec, softswitch_params
from testkit import vantage
from testkit.ansible import ansible

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- the SS_* table


def test_the_responder_ships_the_modules_file():
    link = ROOT / "sipresponder/softswitch_params.py"
    # A relative link, so clones and the collection build keep it.
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.samefile(ROOT / "plugins/module_utils/sipguard_softswitch_params.py")
    assert Path(softswitch_params.__file__).resolve() == Path(shared.__file__).resolve()


def test_module_and_responder_use_the_same_table():
    assert softswitch.KNOWN_PARAMS is shared.PARAMS
    assert config._SOFTSWITCH_KEYS is softswitch_params.PARAMS
    assert softswitch_params.PARAMS == shared.PARAMS


def test_the_responders_defaults_are_the_tables():
    assert config.Softswitch() == config.Softswitch(**shared.defaults())
    assert config.parse_softswitch("")[0] == config.Softswitch()


def test_the_tar_step_packs_the_linked_file():
    install = yaml.safe_load((ROOT / "roles/sipguard_responder/tasks/install.yml").read_text())
    argv = next(task["ansible.builtin.command"]["argv"] for block in install if "block" in block
                for task in block["block"] if "ansible.builtin.command" in task)
    assert argv[0] == "tar" and "--dereference" in argv


def _boundaries(param):
    kind, allowed = param["kind"], param["allowed"]
    if kind == shared.ON_OFF:
        return ["On", "Off", "on", "maybe", "1"]
    if kind == shared.CHOICE:
        return [*allowed, min(allowed) - 1, max(allowed) + 1, 403]
    low, high = allowed
    return [low - 1, low, low + 1, high - 1, high, high + 1]


@pytest.mark.parametrize("key", sorted(shared.PARAMS))
def test_what_the_module_writes_the_responder_reads_and_the_ranges_agree(key):
    for value in _boundaries(shared.PARAMS[key]):
        try:
            written = softswitch.canonical_params({key: value})[key]
        except softswitch.BadValue:
            continue  # refused by the module (the responder refuses it too: the next test)
        soft, _ = config.parse_softswitch(f"{key}={written}\n")
        assert getattr(soft, shared.PARAMS[key]["name"]) == shared.file_value(key, written) is not None


@pytest.mark.parametrize("line", [
    "SS_REPLY_UNAUTHORIZED=Off  # silent to strangers",
    "SS_REPLY_UNAUTHORIZED = 'On'\t# LAN",
    'SS_REPLY_UNAUTHORIZED="Off"#x',
    "SS_AUTHENTICATION_MAX_RETRY = 6   # spaces and a trailing comment",
    "SS_SIP_PORT=5060,5070 # two ports",
])
def test_the_module_and_the_responder_read_an_end_of_line_comment_alike(line):
    # One line grammar (LINE in the shared file): the value is what the module would rewrite.
    key = line.partition("=")[0].strip()
    module_value = softswitch.current_values([line + "\n"])[key]
    soft, _ = config.parse_softswitch(line + "\n")
    assert getattr(soft, shared.PARAMS[key]["name"]) == shared.file_value(key, module_value) is not None


@pytest.mark.parametrize("line", ['SS_REPLY_UNAUTHORIZED="Off" x', "SS_REPLY_UNAUTHORIZED=Off x",
                                  "SS_REPLY_UNAUTHORIZED=\"Off"])
def test_text_after_a_value_that_is_not_a_comment_is_refused(line):
    with pytest.raises(config.ConfigError):
        config.parse_softswitch(line + "\n")


@pytest.mark.parametrize("key", [k for k, p in shared.PARAMS.items() if p["kind"] == shared.NUMBER])
def test_a_number_out_of_the_tables_range_is_refused_by_both(key):
    low, high = shared.PARAMS[key]["allowed"]
    for value in (low - 1, high + 1):
        with pytest.raises(softswitch.BadValue):
            softswitch.canonical_params({key: value})
        with pytest.raises(config.ConfigError):
            config.parse_softswitch(f"{key}={value}\n")
    for value in (low, high):
        assert softswitch.canonical_params({key: value})[key] == str(value)
        assert getattr(config.parse_softswitch(f"{key}={value}\n")[0], shared.PARAMS[key]["name"]) == value


def test_ss_endpoint_expire_is_the_vos3000_range():
    assert shared.PARAMS["SS_ENDPOINT_EXPIRE"]["allowed"] == (60, 86400)
    with pytest.raises(config.ConfigError):
        config.parse_softswitch("SS_ENDPOINT_EXPIRE=30\n")


def test_the_docs_tables_show_the_tables_ranges():
    formats = (ROOT / "docs/config-formats.md").read_text()
    for key, param in shared.PARAMS.items():
        if param["kind"] == shared.NUMBER:
            low, high = param["allowed"]
            assert f"| `{key}` | {low}\N{EN DASH}{high}" in formats, key


# --------------------------------------------------------------------------- the scanner list


def test_the_responders_default_scanners_are_the_data_file():
    data = json.loads((ROOT / "sipresponder/scanner_user_agents.json").read_text(encoding="utf-8"))
    assert isinstance(data, list) and data and all(isinstance(ua, str) and ua for ua in data)
    assert tuple(data) == config.DEFAULT_SCANNERS
    assert config.parse_settings("").scanner_user_agents == tuple(data)


def test_the_lookup_reads_the_responders_data_file():
    assert tuple(scanner_lookup.read_scanner_user_agents()) == config.DEFAULT_SCANNERS
    assert Path(scanner_lookup.DATA_FILE).resolve() == config.SCANNER_USER_AGENTS_FILE.resolve()


@pytest.mark.parametrize("content", ['{"friendly-scanner": 1}', '["sipvicious", ""]', "[sipvicious"])
def test_the_lookup_refuses_a_broken_data_file(tmp_path, content):
    path = tmp_path / "scanner_user_agents.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        scanner_lookup.read_scanner_user_agents(str(path))


def test_the_roles_default_scanner_list_is_the_responders(tmp_path):
    # What Ansible makes of the role's default, evaluated by Ansible itself: the documented default is the
    # same expression, so the list exists once, in the responder's data file.
    defaults = ROOT / "roles/sipguard_profile/defaults/main.yml"
    specs = yaml.safe_load((ROOT / "roles/sipguard_profile/meta/argument_specs.yml").read_text())
    documented = specs["argument_specs"]["main"]["options"]["sipguard_scanner_user_agents"]["default"]
    assert documented == yaml.safe_load(defaults.read_text())["sipguard_scanner_user_agents"]
    play = tmp_path / "show.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False, "vars_files": [str(defaults)],
        "tasks": [{"ansible.builtin.copy": {"content": "{{ sipguard_scanner_user_agents | to_json }}",
                                            "dest": str(tmp_path / "list.json"), "mode": "0644"}}]}]))
    interpreter = f"ansible_python_interpreter={sys.executable}"
    result = ansible("-i", "localhost,", "-c", "local", "-e", interpreter, play, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert tuple(json.loads((tmp_path / "list.json").read_text())) == config.DEFAULT_SCANNERS


def test_the_responder_role_renders_the_profiles_list():
    # The responder role and the firewall role take sipguard_scanner_user_agents (the profile's default)
    # unchanged when the profile drops scanners.
    responder = yaml.safe_load((ROOT / "roles/sipguard_responder/defaults/main.yml").read_text())
    rendered = responder["sipguard_responder_scanner_user_agents"]
    assert rendered.startswith("{{ sipguard_scanner_user_agents if ")
    firewall = (ROOT / "roles/sipguard_firewall/tasks/apply.yml").read_text()
    assert 'scanner_user_agents: "{{ sipguard_scanner_user_agents if ' in firewall


# --------------------------------------------------------------------------- the SIP codec


def test_the_responder_ships_the_probe_modules_codec():
    link = ROOT / "sipresponder/sip_codec.py"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.samefile(ROOT / "plugins/module_utils/sipguard_sip.py")


def test_every_consumer_uses_the_codecs_tables_and_functions():
    # Compact forms: the responder's parser reads the codec's table (they once disagreed, 11 against 10).
    assert message.COMPACT is sip_codec.COMPACT_HEADERS
    assert sip_codec.COMPACT_HEADERS == sipguard_sip.COMPACT_HEADERS
    # One TCP framer, one Digest computation and parser for the server and every client.
    assert server.frame is sip_codec.frame and sip_probe.frame is sipguard_sip.frame
    assert digest.parse_params is sip_codec.auth_params and digest.hexdigest is sip_codec.digest_hex
    assert sipmsg.DigestAnswer is sip_codec.DigestClient
    # The vantage program carries the codec's text itself, ahead of the probe's.
    assert vantage.PROGRAM.startswith((ROOT / "plugins/module_utils/sipguard_sip.py").read_text())


def test_the_server_accepts_what_the_client_side_answers():
    """The codec's client answer passes the responder's check, for both algorithms; another method fails."""
    for algorithm in ("MD5", "SHA-256"):
        challenge = {"realm": "sipguard", "nonce": "n1", "algorithm": algorithm, "qop": "auth"}
        header = sip_codec.DigestClient(challenge, "1001", "pw", "REGISTER", "sip:198.18.0.1").header(3, "cn")
        creds = digest.Credentials.from_header(header)
        ha1 = sip_codec.digest_hex(algorithm, "1001:sipguard:pw")
        assert creds.nc == "00000003" and creds.algorithm == algorithm
        assert digest.expected_response(ha1, algorithm, "REGISTER", creds) == creds.response
        assert digest.expected_response(ha1, algorithm, "INVITE", creds) != creds.response
