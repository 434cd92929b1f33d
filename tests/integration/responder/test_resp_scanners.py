"""Real sipvicious scanners (svmap, svwar, svcrack) against a running responder on loopback.

sipvicious always sends `User-Agent: friendly-scanner`, which the default scanner list drops
in every mode; tests of the SS_REPLY_UNAUTHORIZED rule itself empty that list, standing in
for a scanner that disguises its User-Agent.
"""

import shutil
import subprocess

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("svmap") is None, reason="sipvicious is not installed"),
]

NO_UA_FILTER = "[scanner]\nuser_agents = []\n"
# sipvicious only computes MD5 digests: offer MD5 so svcrack really tries each password.
CRACKABLE = NO_UA_FILTER + '[auth]\nalgorithms = ["MD5"]\n'


def run(*command: str, timeout: float = 60) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    return done.stdout + done.stderr


def test_svmap_finds_the_server_in_on_mode(start_responder):
    responder = start_responder("On", settings=NO_UA_FILTER)
    out = run("svmap", "-p", str(responder.port), "127.0.0.1")
    assert f"127.0.0.1:{responder.port}" in out


@pytest.mark.parametrize(("mode", "settings"), [("Off", NO_UA_FILTER), ("On", "")])
def test_svmap_finds_nothing_in_off_mode_or_with_the_scanner_list(start_responder, mode, settings):
    responder = start_responder(mode, settings=settings)
    out = run("svmap", "-p", str(responder.port), "127.0.0.1")
    assert "found nothing" in out
    assert f"127.0.0.1:{responder.port}" not in out
    assert responder.stats()["received"] >= 1  # it did arrive: silence was a decision


def _extensions(out: str) -> set[str]:
    return {
        line.split("|")[1].strip()
        for line in out.splitlines()
        if line.startswith("|") and line.split("|")[1].strip().isdigit()
    }


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_cannot_single_out_the_real_account_from_an_unknown_source(start_responder, method):
    responder = start_responder("On", settings=NO_UA_FILTER)
    out = run("svwar", "--force", "-m", method, "-e", "1000-1003", "-p", str(responder.port), "127.0.0.1")
    found = _extensions(out)
    # Either every probed extension looks the same (all "reqauth") or none is reported.
    assert found in (set(), {"1000", "1001", "1002", "1003"}), out


def test_svwar_gets_no_answer_at_all_in_off_mode(start_responder):
    responder = start_responder("Off", settings=NO_UA_FILTER)
    out = run("svwar", "--force", "-e", "1000-1003", "-p", str(responder.port), "127.0.0.1")
    assert _extensions(out) == set()
    assert responder.stats().get("replied_challenge", 0) == 0


def test_svcrack_cannot_learn_a_password_from_an_unknown_source(start_responder, tmp_path):
    responder = start_responder("On", softswitch="SS_AUTHENTICATION_MAX_RETRY=0\n", settings=CRACKABLE)
    words = tmp_path / "words.txt"
    words.write_text("123456\ns3cret-pw\npassword\n")  # the real password is in the list
    out = run("svcrack", "-u", "1001", "-d", str(words), "-p", str(responder.port), "127.0.0.1")
    assert "s3cret-pw" not in out
    stats = responder.stats()
    assert stats["auth_success"] == 0 and stats["auth_failure"] >= 1


def test_svcrack_from_the_account_network_is_stopped_by_suspension(start_responder, tmp_path):
    responder = start_responder("On", softswitch="SS_AUTHENTICATION_MAX_RETRY=3\n", settings=CRACKABLE)
    words = tmp_path / "words.txt"
    words.write_text("a\nb\nc\nd\ns3cret-pw\n")  # found on the 5th try, after the 3rd failure suspends
    out = run(
        "svcrack", "-b", "127.0.0.10", "-u", "1001", "-d", str(words), "-p", str(responder.port), "127.0.0.1"
    )
    assert "s3cret-pw" not in out
    stats = responder.stats()
    assert stats["suspensions"] == 1 and stats["dropped_suspended"] >= 1
