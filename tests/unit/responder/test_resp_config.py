"""softswitch.conf, endpoints.toml and responder.toml validation, and check-config's exit codes."""

import pytest

from sipresponder import cli, config


def test_softswitch_defaults_and_values():
    soft, warnings = config.parse_softswitch(
        "# VOS3000 style\nSS_REPLY_UNAUTHORIZED=off\nSS_SIP_PORT=5060,6060\nSS_AUTHCHALLENGEMODE=407\n"
        "SS_ENDPOINT_REGISTER_REPLACE=ON\nSS_RTP_PORT=10000\n"
    )
    assert soft.reply_unauthorized is False
    assert soft.sip_ports == (5060, 6060)
    assert soft.challenge_mode == 407
    assert soft.max_retry == 6 and soft.failed_suspend == 180 and soft.endpoint_expire == 3600
    assert warnings == ["softswitch.conf:6: unknown key SS_RTP_PORT ignored"]


@pytest.mark.parametrize(
    "line",
    [
        "SS_REPLY_UNAUTHORIZED=maybe",
        "SS_AUTHENTICATION_MAX_RETRY=1000",
        "SS_AUTHENTICATION_FAILED_SUSPEND=59",
        "SS_AUTHCHALLENGEMODE=403",
        "SS_SIP_PORT=5060,70000",
        "SS_SIP_PORT=",
        "no equals sign",
    ],
)
def test_softswitch_rejects_bad_values_with_the_line_number(line):
    with pytest.raises(config.ConfigError) as caught:
        config.parse_softswitch(f"# first\n{line}\n")
    (problem,) = caught.value.problems
    assert problem.startswith("softswitch.conf:2:")


def test_endpoints_collects_every_problem_and_never_shows_a_password():
    text = """
[[account]]
username = "1001"
password = "topsecret"
networks = ["300.1.1.1/24"]
[[account]]
username = "1001"
ha1_md5 = "nothex"
[[gateway]]
name = "gw"
"""
    with pytest.raises(config.ConfigError) as caught:
        config.parse_endpoints(text)
    problems = caught.value.problems
    assert any("300.1.1.1/24" in p for p in problems)
    assert any("defined twice" in p for p in problems)
    assert any("ha1_md5" in p for p in problems)
    assert any("needs addresses" in p for p in problems)
    assert not any("topsecret" in p for p in problems)
    assert "topsecret" not in repr(
        config.parse_endpoints(
            'lan_networks=["198.18.0.0/16"]\n[[account]]\nusername="a"\npassword="topsecret"\n'
        )
    )


def test_account_networks_default_to_lan_and_any_means_anywhere():
    endpoints = config.parse_endpoints(
        'lan_networks = ["198.18.10.0/24"]\n[[account]]\nusername = "a"\npassword = "p"\n'
        '[[account]]\nusername = "b"\npassword = "p"\nnetworks = ["any"]\n'
    )
    assert [str(n) for n in endpoints.accounts["a"].networks] == ["198.18.10.0/24"]
    assert endpoints.accounts["b"].anywhere


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[listen]\naddresses = ["nowhere"]', "not an IP address"),
        ('[auth]\nalgorithms = ["SHA-512"]', "algorithms"),
        ("[limits]\nmax_message_bytes = 10", "out of range"),
        ("[limits]\nrate_per_source = true", "must be an integer"),
        ('[stats]\nprometheus_listen = "0.0.0.0:9260"', "loopback"),
        ("[invite]\nfinal_status = 200", "out of range"),
        ("[typo]\nx = 1", "unknown key 'typo'"),
        ("[trace]\nenabeld = true", "unknown key 'enabeld'"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_responder_settings_problems(text, fragment):
    with pytest.raises(config.ConfigError) as caught:
        config.parse_settings(text)
    assert any(fragment in p for p in caught.value.problems), caught.value.problems


def test_check_config_exit_codes(tmp_path, capsys):
    soft = tmp_path / "softswitch.conf"
    endpoints = tmp_path / "endpoints.toml"
    settings = tmp_path / "responder.toml"
    soft.write_text("SS_REPLY_UNAUTHORIZED=Off\n")
    endpoints.write_text('[[gateway]]\nname = "gw"\naddresses = ["198.18.20.50"]\n')
    settings.write_text("")
    args = [
        "check-config",
        "--softswitch",
        str(soft),
        "--endpoints",
        str(endpoints),
        "--config",
        str(settings),
    ]
    assert cli.main(args) == 0
    assert "SS_REPLY_UNAUTHORIZED=Off" in capsys.readouterr().out
    soft.write_text("SS_REPLY_UNAUTHORIZED=sometimes\n")
    endpoints.unlink()
    assert cli.main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "Traceback" not in "".join(err)
