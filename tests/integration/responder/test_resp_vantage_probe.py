"""The Molecule vantage probe against a live responder on loopback, run the way the scenarios run it.

testkit/vantage.py sends the SIP codec's text followed by testkit/vantage_probe.py to `python3 -c` in a
container that has no sipresponder package; here an isolated system interpreter stands in for that
container, so the probe finds the codec in its own program text, as it does there.
"""

import json
import subprocess
from pathlib import Path

import pytest

from testkit.vantage import PROGRAM

pytestmark = pytest.mark.integration
SYSTEM_PYTHON = Path("/usr/bin/python3")


def probe(port: int, method: str = "REGISTER", *, transport: str = "udp", user: str = "1001",
          password: str = "", source: str = "127.0.0.10") -> dict:
    done = subprocess.run(
        [str(SYSTEM_PYTHON), "-I", "-c", PROGRAM, "probe", "127.0.0.1", str(port), transport, method,
         "Linphone/5.2", "2", user, password, source, "60", "", ""],
        capture_output=True, text=True, timeout=30, cwd="/", check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(autouse=True)
def _like_a_container():
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no system python3")
    importable = subprocess.run([str(SYSTEM_PYTHON), "-I", "-c", "import sipresponder"], cwd="/",
                                capture_output=True, check=False)
    assert importable.returncode != 0, "the stand-in for a container can import sipresponder"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_an_account_registers_with_the_codecs_digest_answer(start_responder, transport):
    responder = start_responder("On")
    result = probe(responder.port, transport=transport, password="s3cret-pw")  # noqa: S106 - the test account of ENDPOINTS
    assert result["statuses"] == [401, 200]


def test_a_wrong_password_is_not_accepted(start_responder):
    responder = start_responder("On")
    result = probe(responder.port, password="not-the-password")  # noqa: S106
    assert result["statuses"][0] == 401
    assert result["status"] != 200


def test_a_stranger_hears_nothing_in_silent_mode_and_a_403_otherwise(start_responder):
    silent = probe(start_responder("Off").port, "OPTIONS", source="127.0.0.99")
    assert silent["answered"] is False and silent["status"] is None
    answered = probe(start_responder("On").port, "OPTIONS", source="127.0.0.99")
    assert answered["status"] == 403 and answered["first_line"].startswith("SIP/2.0 403")
