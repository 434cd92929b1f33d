"""sipguard_softswitch: edits a softswitch.conf in a temporary directory, no network."""

from __future__ import annotations

import os
import stat

import pytest
from ansible.module_utils.basic import AnsibleModule

SAMPLE = """\
# VOS3000 softswitch parameters
SS_REPLY_UNAUTHORIZED=On
SS_SIP_PORT="5060,6060"

# keys the module does not manage stay as they are
SS_SOMETHING_ELSE=42
SS_AUTHENTICATION_MAX_RETRY = 6   # spaces and a trailing comment
"""


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "softswitch.conf"
    path.write_text(SAMPLE)
    path.chmod(0o600)
    return path


def test_sets_value_and_keeps_everything_else(run_module, conf):
    result = run_module(
        "softswitch", {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "off"}}
    )

    assert result["changed"]
    assert result["previous"] == {"SS_REPLY_UNAUTHORIZED": "On"}
    assert result["params"] == {"SS_REPLY_UNAUTHORIZED": "Off"}
    assert conf.read_text() == SAMPLE.replace("SS_REPLY_UNAUTHORIZED=On", "SS_REPLY_UNAUTHORIZED=Off")


def test_second_run_is_unchanged(run_module, conf):
    args = {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": False, "SS_AUTHENTICATION_MAX_RETRY": 3}}
    assert run_module("softswitch", args)["changed"]
    written = conf.read_text()

    again = run_module("softswitch", args)

    assert not again["changed"]
    assert again["previous"] == {"SS_REPLY_UNAUTHORIZED": "Off", "SS_AUTHENTICATION_MAX_RETRY": "3"}
    assert conf.read_text() == written


def test_quoting_spacing_and_comment_are_kept(run_module, conf):
    run_module(
        "softswitch",
        {"path": str(conf), "params": {"SS_SIP_PORT": [5060, 5062], "SS_AUTHENTICATION_MAX_RETRY": "10"}},
    )
    text = conf.read_text()
    assert 'SS_SIP_PORT="5060,5062"\n' in text
    assert "SS_AUTHENTICATION_MAX_RETRY = 10   # spaces and a trailing comment\n" in text


def test_new_key_is_appended_and_null_removes(run_module, conf):
    result = run_module(
        "softswitch",
        {"path": str(conf), "params": {"SS_AUTHCHALLENGEMODE": 407, "SS_SIP_PORT": None}},
    )
    assert result["previous"] == {"SS_AUTHCHALLENGEMODE": None, "SS_SIP_PORT": "5060,6060"}
    lines = conf.read_text().splitlines()
    assert lines[-1] == "SS_AUTHCHALLENGEMODE=407"
    assert not any(line.startswith("SS_SIP_PORT") for line in lines)


def test_previous_values_restore_the_original_file(run_module, conf):
    changed = run_module(
        "softswitch",
        {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "no", "SS_ENDPOINT_EXPIRE": 600}},
    )
    restored = run_module("softswitch", {"path": str(conf), "params": changed["previous"]})
    assert restored["changed"]
    assert conf.read_text() == SAMPLE


def test_check_mode_reports_but_writes_nothing(run_module, conf):
    before = conf.stat()
    result = run_module(
        "softswitch", {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}}, check=True
    )
    assert result["changed"]
    assert result["previous"] == {"SS_REPLY_UNAUTHORIZED": "On"}
    assert conf.read_text() == SAMPLE
    assert conf.stat().st_mtime_ns == before.st_mtime_ns


def test_diff_shows_before_and_after(run_module, conf):
    result = run_module(
        "softswitch", {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}}, diff=True
    )
    assert result["diff"]["before"] == SAMPLE
    assert "SS_REPLY_UNAUTHORIZED=Off" in result["diff"]["after"]
    assert result["diff"]["after_header"] == str(conf)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"SS_NOT_A_PARAMETER": "1"}, "SS_NOT_A_PARAMETER"),
        ({"SS_REPLY_UNAUTHORIZED": "maybe"}, "SS_REPLY_UNAUTHORIZED='maybe'"),
        ({"SS_AUTHENTICATION_MAX_RETRY": 1000}, "SS_AUTHENTICATION_MAX_RETRY=1000"),
        ({"SS_AUTHENTICATION_FAILED_SUSPEND": 59}, "SS_AUTHENTICATION_FAILED_SUSPEND=59"),
        ({"SS_AUTHENTICATION_FAILED_SUSPEND": True}, "SS_AUTHENTICATION_FAILED_SUSPEND=True"),
        ({"SS_AUTHCHALLENGEMODE": 403}, "SS_AUTHCHALLENGEMODE=403"),
        ({"SS_SIP_PORT": "5060,5060"}, "listed twice"),
        ({"SS_SIP_PORT": "5060,70000"}, "outside 1-65535"),
        ({"SS_SIP_PORT": "5060;6060"}, "SS_SIP_PORT='5060;6060'"),
        ({"SS_ENDPOINT_EXPIRE": "-5"}, "SS_ENDPOINT_EXPIRE='-5'"),
    ],
)
def test_bad_input_fails_and_leaves_the_file_alone(run_module, conf, params, named):
    # A good key next to the bad one proves validation happens before any write.
    result = run_module(
        "softswitch", {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "Off", **params}}
    )
    assert result["failed"]
    assert named in result["msg"]
    assert "Traceback" not in result["msg"]
    assert conf.read_text() == SAMPLE


@pytest.mark.parametrize("word", ["on", "ON", "true", "yes", "1", True, 1])
def test_human_spellings_of_on(run_module, conf, word):
    result = run_module(
        "softswitch", {"path": str(conf), "params": {"SS_ENDPOINT_REGISTER_REPLACE": word}}
    )
    assert result["params"] == {"SS_ENDPOINT_REGISTER_REPLACE": "On"}
    assert conf.read_text().endswith("SS_ENDPOINT_REGISTER_REPLACE=On\n")


def test_atomic_write_keeps_mode_and_leaves_no_temp_file(run_module, conf):
    inode = conf.stat().st_ino
    run_module("softswitch", {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}})
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert conf.stat().st_ino != inode, "the file is replaced by a rename, not rewritten in place"
    assert sorted(os.listdir(conf.parent)) == ["softswitch.conf"]


def test_backup_copy_holds_the_old_text(run_module, conf):
    result = run_module(
        "softswitch",
        {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}, "backup": True},
    )
    with open(result["backup_file"]) as handle:
        assert handle.read() == SAMPLE


def test_missing_file_is_an_error_unless_create(run_module, tmp_path):
    path = tmp_path / "new.conf"
    refused = run_module(
        "softswitch", {"path": str(path), "params": {"SS_REPLY_UNAUTHORIZED": "On"}}
    )
    assert refused["failed"]
    assert "create: true" in refused["msg"]
    assert not path.exists()

    created = run_module(
        "softswitch",
        {"path": str(path), "params": {"SS_REPLY_UNAUTHORIZED": "On"}, "create": True, "mode": "0604"},
    )
    assert created["changed"]
    assert path.read_text() == "SS_REPLY_UNAUTHORIZED=On\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o604


def test_removing_from_a_missing_file_changes_nothing(run_module, tmp_path):
    path = tmp_path / "absent.conf"
    result = run_module("softswitch", {"path": str(path), "params": {"SS_REPLY_UNAUTHORIZED": None}})
    assert not result.get("failed")
    assert not result["changed"]
    assert not path.exists()


def test_crlf_file_keeps_its_line_endings(run_module, tmp_path):
    path = tmp_path / "dos.conf"
    path.write_bytes(b"SS_REPLY_UNAUTHORIZED=On\r\nSS_SIP_PORT=5060")
    run_module(
        "softswitch",
        {"path": str(path), "params": {"SS_REPLY_UNAUTHORIZED": "Off", "SS_ENDPOINT_EXPIRE": 3600}},
    )
    assert (
        path.read_bytes() == b"SS_REPLY_UNAUTHORIZED=Off\r\nSS_SIP_PORT=5060\r\nSS_ENDPOINT_EXPIRE=3600\r\n"
    )


def test_documentation_matches_the_argument_spec(documentation_check):
    documentation_check("softswitch")


def test_duplicate_key_is_set_everywhere_and_last_is_previous(run_module, tmp_path):
    path = tmp_path / "twice.conf"
    path.write_text("SS_REPLY_UNAUTHORIZED=On\n# later override\nSS_REPLY_UNAUTHORIZED=Off\n")
    result = run_module(
        "softswitch", {"path": str(path), "params": {"SS_REPLY_UNAUTHORIZED": "yes"}}
    )
    assert result["previous"] == {"SS_REPLY_UNAUTHORIZED": "Off"}
    assert path.read_text() == "SS_REPLY_UNAUTHORIZED=On\n# later override\nSS_REPLY_UNAUTHORIZED=On\n"


def test_check_mode_does_not_create_a_missing_file(run_module, tmp_path):
    path = tmp_path / "new.conf"
    result = run_module(
        "softswitch",
        {"path": str(path), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}, "create": True},
        check=True,
        diff=True,
    )
    assert result["changed"]
    assert result["diff"]["before"] == ""
    assert result["diff"]["after"] == "SS_REPLY_UNAUTHORIZED=Off\n"
    assert not path.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"mode": "rw-r--r--"}, "not an octal mode"), ({"owner": "no-such-user-here"}, "does not exist")],
)
def test_bad_create_attributes_fail_even_in_check_mode(run_module, tmp_path, extra, message):
    path = tmp_path / "new.conf"
    args = {"path": str(path), "params": {"SS_REPLY_UNAUTHORIZED": "On"}, "create": True, **extra}
    for check in (True, False):
        result = run_module("softswitch", args, check=check)
        assert result["failed"]
        assert message in result["msg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_write_goes_through_ansibles_atomic_move(run_module, conf, monkeypatch):
    # AnsibleModule.atomic_move keeps the old file's SELinux context (and owner and mode).
    moves = []
    real_move = AnsibleModule.atomic_move

    def recording_move(self, src, dest, *args, **kwargs):
        moves.append((os.path.dirname(src), dest))
        return real_move(self, src, dest, *args, **kwargs)

    monkeypatch.setattr(AnsibleModule, "atomic_move", recording_move)
    run_module("softswitch", {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}})
    assert moves == [(str(conf.parent), str(conf))]
    assert "SS_REPLY_UNAUTHORIZED=Off\n" in conf.read_text()


def test_backup_only_when_something_changes_and_never_in_check_mode(run_module, conf):
    args = {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}, "backup": True}
    previewed = run_module("softswitch", args, check=True)
    assert previewed["changed"] and "backup_file" not in previewed
    assert sorted(os.listdir(conf.parent)) == ["softswitch.conf"]

    changed = run_module("softswitch", args)
    again = run_module("softswitch", args)
    assert "backup_file" not in again
    backup = os.path.basename(changed["backup_file"])
    assert sorted(os.listdir(conf.parent)) == sorted(["softswitch.conf", backup])


@pytest.mark.parametrize("check", [True, False])
def test_missing_vos3000_file_fails_naming_the_path_in_check_mode_too(run_module, tmp_path, check):
    path = tmp_path / "home" / "kunshi" / "mbx3000" / "etc" / "softswitch.conf"
    args = {"path": str(path), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}}
    result = run_module("softswitch", args, check=check)
    assert result["failed"]
    assert str(path) in result["msg"] and "does not exist" in result["msg"]
    assert not (tmp_path / "home").exists()


def test_a_directory_at_the_path_fails_in_check_mode(run_module, tmp_path):
    args = {"path": str(tmp_path), "params": {"SS_REPLY_UNAUTHORIZED": "Off"}}
    result = run_module("softswitch", args, check=True)
    assert result["failed"]
    assert str(tmp_path) in result["msg"] and "directory" in result["msg"]


def test_check_mode_shows_the_parameter_changes_from_the_real_file(run_module, conf):
    result = run_module(
        "softswitch",
        {"path": str(conf), "params": {"SS_REPLY_UNAUTHORIZED": "Off", "SS_SIP_PORT": "5060,6060",
                                       "SS_ENDPOINT_EXPIRE": 600}},
        check=True, diff=True,
    )
    assert result["changes"] == {
        "SS_REPLY_UNAUTHORIZED": {"before": "On", "after": "Off"},
        "SS_ENDPOINT_EXPIRE": {"before": None, "after": "600"},
    }
    assert result["diff"]["before"] == SAMPLE
    assert "SS_REPLY_UNAUTHORIZED=Off\n" in result["diff"]["after"]
    assert conf.read_text() == SAMPLE
    assert run_module("softswitch", {"path": str(conf), "params": {"SS_SIP_PORT": "5060,6060"}},
                      check=True)["changes"] == {}
