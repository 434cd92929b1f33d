"""Issue 11, items 2 and 5 (configuration): the switch that matters cannot be lost, and smaller slips are
caught. Every case here passed silently (or rejected a whole file blindly) before."""

import json
from pathlib import Path

import pytest

from sipresponder import cli, config

ENDPOINTS = 'lan_networks = ["198.18.10.0/24"]\n[[account]]\nusername = "1001"\npassword = "pw"\n'


def _files(tmp_path, softswitch: bytes, endpoints: bytes = ENDPOINTS.encode(), settings: bytes = b""):
    paths = []
    for name, data in (("softswitch.conf", softswitch), ("endpoints.toml", endpoints),
                       ("responder.toml", settings)):  # fmt: skip
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def _check(paths, *extra):
    return cli.main(["check-config", "--softswitch", paths[0], "--endpoints", paths[1], "--config", paths[2],
                     *extra])  # fmt: skip


# --------------------------------------------------------------------------- item 2


def test_a_byte_order_mark_does_not_hide_the_first_key(tmp_path):
    cfg = config.load(*_files(tmp_path, b"\xef\xbb\xbfSS_REPLY_UNAUTHORIZED=Off\r\n"))
    assert cfg.softswitch.reply_unauthorized is False
    assert cfg.warnings == ()
    soft, warnings = config.parse_softswitch("\ufeffSS_REPLY_UNAUTHORIZED=Off\n")
    assert soft.reply_unauthorized is False and warnings == []


def test_a_bom_in_a_toml_file_is_ignored_too(tmp_path):
    cfg = config.load(*_files(tmp_path, b"", b"\xef\xbb\xbf" + ENDPOINTS.encode(), b"\xef\xbb\xbf[auth]\n"))
    assert "1001" in cfg.endpoints.accounts


@pytest.mark.parametrize(
    ("key", "right"),
    [
        ("SS_REPLY_UNAUTHORISED", "SS_REPLY_UNAUTHORIZED"),
        ("ss_reply_unauthorized", "SS_REPLY_UNAUTHORIZED"),
        ("SS_REPLY_UNAUTHORIZE", "SS_REPLY_UNAUTHORIZED"),
        ("SS_REPLY_UNATHORIZED", "SS_REPLY_UNAUTHORIZED"),
        ("SS_REPLY_UNAUTHROIZED", "SS_REPLY_UNAUTHORIZED"),
        ("SS_AUTHENTICATION_MAX_RETRYS", "SS_AUTHENTICATION_MAX_RETRY"),
        ("SS_SIP_PROT", "SS_SIP_PORT"),
    ],
)
def test_a_near_miss_of_a_known_key_is_an_error_naming_the_right_key(key, right):
    with pytest.raises(config.ConfigError) as caught:
        config.parse_softswitch(f"{key}=Off\n")
    (problem,) = caught.value.problems
    assert problem == f"softswitch.conf:1: unknown key {key}: did you mean {right}?"


def test_keys_of_a_real_vos3000_file_stay_warnings():
    # Other VOS3000 keys, some close to ours in spelling, are not slips of ours.
    _, warnings = config.parse_softswitch("SS_RTP_PORT=10000\nSS_SIP_TIMER_T1=500\nSS_MAX_CALLS=100\n")
    assert len(warnings) == 3


@pytest.mark.parametrize("value", ['"Off', "Off'", "'Off\"", '"', "Of", "1", '"Off" public', "Off public",
                                   ""])
def test_reply_unauthorized_other_than_on_or_off_is_an_error(value):
    with pytest.raises(config.ConfigError) as caught:
        config.parse_softswitch(f"SS_REPLY_UNAUTHORIZED={value}\n")
    assert caught.value.problems[0].startswith("softswitch.conf:1: SS_REPLY_UNAUTHORIZED")


# An end-of-line comment is not part of the value: the softswitch module reads the line the same way.
@pytest.mark.parametrize("value", ['"Off"', "'Off'", "off", " OFF ", "Off # public", '"Off"  # public'])
def test_quoted_and_any_case_values_are_fine(value):
    assert config.parse_softswitch(f"SS_REPLY_UNAUTHORIZED={value}\n")[0].reply_unauthorized is False


def test_a_key_given_twice_is_an_error_naming_both_lines():
    with pytest.raises(config.ConfigError) as caught:
        config.parse_softswitch("SS_REPLY_UNAUTHORIZED=Off\n# later\nSS_REPLY_UNAUTHORIZED=On\n")
    assert caught.value.problems == [
        "softswitch.conf:3: SS_REPLY_UNAUTHORIZED is set again (first on line 1); set it once"
    ]


def test_check_config_strict_fails_on_any_unknown_key(tmp_path, capsys):
    paths = _files(tmp_path, b"SS_REPLY_UNAUTHORIZED=Off\nSS_RTP_PORT=10000\n")
    assert _check(paths) == 0  # a copy of a real VOS3000 file: a warning
    assert "warning: " in capsys.readouterr().err
    assert _check(paths, "--strict") == 1
    err = capsys.readouterr().err
    assert "error: " in err and "SS_RTP_PORT" in err and "--strict" in err
    assert _check(_files(tmp_path, b"SS_REPLY_UNAUTHORIZED=Off\n"), "--strict") == 0


def test_check_config_exits_1_on_the_misspelled_switch(tmp_path, capsys):
    assert _check(_files(tmp_path, b"SS_REPLY_UNAUTHORISED=Off\n")) == 1
    assert "did you mean SS_REPLY_UNAUTHORIZED?" in capsys.readouterr().err


def test_the_role_validates_with_strict():
    # The role's validation wrapper checks files sipguard manages: unknown keys there are errors.
    wrapper = Path(cli.__file__).parents[1] / "roles/sipguard_responder/templates/sipguard-check-config.j2"
    assert " check-config --strict " in wrapper.read_text()


# --------------------------------------------------------------------------- item 5 (configuration)


@pytest.mark.parametrize("realm", ["sip\r\nX-Injected: 1", "sip\nguard", "sip\rguard", "tab\tx", "nul\x00"])
def test_a_realm_with_a_line_break_or_control_character_is_refused(realm):
    text = f"[auth]\nrealm = {json.dumps(realm)}\n"
    with pytest.raises(config.ConfigError) as caught:
        config.parse_settings(text)
    assert "[auth] realm" in caught.value.problems[0]


@pytest.mark.parametrize("line", ['SS_AUTHCHALLENGEMODE="4', "SS_SIP_PORT=5060'", "SS_ENDPOINT_EXPIRE='6\""])
def test_an_unbalanced_quote_is_an_error(line):
    with pytest.raises(config.ConfigError) as caught:
        config.parse_softswitch(f"{line}\n")
    assert "unbalanced quote" in caught.value.problems[0]


def test_a_repeated_key_of_any_of_ours_is_an_error():
    with pytest.raises(config.ConfigError) as caught:
        config.parse_softswitch("SS_SIP_PORT=5060\nSS_SIP_PORT=6060\n")
    assert "set again" in caught.value.problems[0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[[gateway]]\nname = "gw"\naddresses = []\n', "needs addresses"),
        ('[[gateway]]\nname = "gw"\naddresses = ["0.0.0.0/0"]\n', "every address"),
        ('[[gateway]]\nname = "gw"\naddresses = ["::/0"]\n', "every address"),
        (ENDPOINTS + 'networks = ["0.0.0.0/0"]\n', 'networks = ["any"]'),
        (ENDPOINTS + 'networks = ["198.18.0.0/16", "::/0"]\n', 'networks = ["any"]'),
        ('lan_networks = ["0.0.0.0/0"]\n', "every address"),
    ],
)
def test_an_empty_or_everything_gateway_or_network_is_an_error(text, fragment):
    with pytest.raises(config.ConfigError) as caught:
        config.parse_endpoints(text)
    assert any(fragment in p for p in caught.value.problems), caught.value.problems


def test_networks_any_is_still_the_explicit_way():
    endpoints = config.parse_endpoints('[[account]]\nusername = "1"\npassword = "p"\nnetworks = ["any"]\n')
    assert endpoints.accounts["1"].anywhere


@pytest.mark.parametrize("name", ["-exist", "a b", "x" * 32, "set;rm", "s\n", "é"])
def test_ipset_names_are_validated(name):
    with pytest.raises(config.ConfigError) as caught:
        config.parse_settings(f"[blocking]\nipset4 = {json.dumps(name)}\n")
    assert "[blocking] ipset4" in caught.value.problems[0]


@pytest.mark.parametrize("name", ["sipguard-block4", "a", "x" * 31, "my_set.v4:1"])
def test_good_ipset_names_pass(name):
    assert config.parse_settings(f'[blocking]\nipset6 = "{name}"\n').blocking_ipset6 == name


def test_a_non_utf8_comment_in_softswitch_conf_is_ignored(tmp_path):
    # A VOS3000 file may carry GBK or Latin-1 comments; only our keys matter.
    data = b"# r\xe9glages \xc4\xe3\xba\xc3\nSS_REPLY_UNAUTHORIZED=Off\n"
    cfg = config.load(*_files(tmp_path, data))
    assert cfg.softswitch.reply_unauthorized is False


def test_a_non_utf8_byte_outside_a_comment_names_the_line(tmp_path):
    paths = _files(tmp_path, b"# ok\nSS_REPLY_UNAUTHORIZED=Off\xa0\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(*paths)
    assert caught.value.problems == [f"{paths[0]}:2: not UTF-8 (byte 0xa0); only a comment line may be in "
                                     "another encoding"]  # fmt: skip


def test_a_non_utf8_byte_in_a_toml_file_names_the_line(tmp_path):
    paths = _files(tmp_path, b"", ENDPOINTS.encode() + b"# caf\xe9\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(*paths)
    assert caught.value.problems[0].startswith(f"{paths[1]}:5: not UTF-8 (byte 0xe9)")
