"""file_compare: which files already hold the expected content, owner, group and mode (changing nothing)."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd

import pytest

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "responder.toml"
    path.write_bytes(b"[sip]\nport = 5060\n")
    path.chmod(0o640)
    return path


def wanted(path, data=b"[sip]\nport = 5060\n", **attributes):
    return dict({"path": str(path), "checksum": sha256(data), "owner": ME, "group": MY_GROUP, "mode": "0640"},
                **attributes)


def test_a_file_that_is_right_is_matched_with_its_checksum(run_module, conf):
    result = run_module("file_compare", {"files": [wanted(conf)]})
    assert not result.get("failed") and not result["changed"]
    assert result["matched"] == {str(conf): sha256(b"[sip]\nport = 5060\n")}
    assert result["differences"] == {}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"data": b"[sip]\nport = 5070\n"}, "content differs"),
        ({"mode": "0644"}, "mode 0640, not 0644"),
        ({"owner": "nobody-sipguard-test"}, f"owner {ME}, not nobody-sipguard-test"),
        ({"group": "nogroup-sipguard-test"}, f"group {MY_GROUP}, not nogroup-sipguard-test"),
    ],
)
def test_each_difference_is_named(run_module, conf, change, reason):
    result = run_module("file_compare", {"files": [wanted(conf, **change)]})
    assert not result.get("failed") and not result["changed"]
    assert result["matched"] == {}
    assert result["differences"] == {str(conf): reason}


def test_a_trailing_newline_is_content(run_module, conf):
    result = run_module("file_compare", {"files": [wanted(conf, data=b"[sip]\nport = 5060")]})
    assert result["differences"] == {str(conf): "content differs"}


def test_missing_file_and_directory_differ(run_module, tmp_path):
    result = run_module("file_compare", {"files": [wanted(tmp_path / "absent"), wanted(tmp_path)]})
    assert result["matched"] == {}
    assert result["differences"] == {str(tmp_path / "absent"): "missing", str(tmp_path): "not a regular file"}


def test_unset_attributes_are_not_compared(run_module, conf):
    entry = {"path": str(conf), "checksum": sha256(b"[sip]\nport = 5060\n").upper()}
    result = run_module("file_compare", {"files": [entry]})
    assert list(result["matched"]) == [str(conf)]


def test_several_files_in_one_run(run_module, conf, tmp_path):
    other = tmp_path / "endpoints.toml"
    other.write_bytes(b"[accounts]\n")
    other.chmod(0o600)
    result = run_module("file_compare", {"files": [wanted(conf), wanted(other, data=b"[accounts]\n")]})
    assert list(result["matched"]) == [str(conf)]
    assert result["differences"] == {str(other): "mode 0600, not 0640"}


def test_check_mode_gives_the_same_answer_and_writes_nothing(run_module, conf):
    before = conf.stat()
    result = run_module("file_compare", {"files": [wanted(conf, data=b"other")]}, check=True)
    assert result["differences"] == {str(conf): "content differs"}
    after = conf.stat()
    assert (after.st_mtime_ns, after.st_mode, conf.read_bytes()) == (before.st_mtime_ns, before.st_mode,
                                                                      b"[sip]\nport = 5060\n")


def test_a_mode_that_is_not_octal_is_refused(run_module, conf):
    result = run_module("file_compare", {"files": [wanted(conf, mode="rw-r-----")]})
    assert result["failed"]
    assert "'rw-r-----' is not an octal string" in result["msg"]


def test_a_symlink_is_followed(run_module, conf, tmp_path):
    link = tmp_path / "link.toml"
    link.symlink_to(conf)
    result = run_module("file_compare", {"files": [wanted(link)]})
    assert list(result["matched"]) == [str(link)]
