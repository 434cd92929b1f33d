"""The SIP vantage probe: one SIP request (or a flood) sent from inside a scenario's container.

sipguard's SIP codec and testkit/vantage_probe.py (both stdlib only) are passed to python3 in the
vantage container through testinfra, so the containers need nothing but python3.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_FILES = ("sipresponder/sip_codec.py", "testkit/vantage_probe.py")
# The codec first: its `from __future__` line must open the program, and the probe finds its functions
# in the same module when `sipresponder` is not importable (see vantage_probe.py).
PROGRAM = "\n".join((_REPO / name).read_text() for name in _FILES)


def _in_vantage(vantage, *args) -> str:
    """Run vantage_probe.py with `args` inside the vantage container."""
    quoted = " ".join(shlex.quote(str(a)) for a in args)
    result = vantage.run(f"python3 -c {shlex.quote(PROGRAM)} {quoted}")
    assert result.rc == 0, f"vantage script failed: {result.stderr}"
    return result.stdout


def sip_probe(vantage, host: str, *, port: int = 5060, transport: str = "udp", method: str = "OPTIONS",
              user_agent: str = "Linphone/5.2", user: str = "100", password: str = "",
              source: str = "", expires: int = 60, timeout: float = 2.0, display: str = "",
              call_id: str = "") -> dict:
    """Send one SIP request from the testinfra host `vantage`; return what came back.

    `status` is the last reply's code (None for silence); with `password` a digest
    challenge is answered once, and `statuses` holds both codes (e.g. [401, 200]). `display` and
    `call_id` set the From display name (none by default) and the Call-ID (random by default).
    """
    out = _in_vantage(vantage, "probe", host, port, transport, method, user_agent, timeout, user, password,
                      source, expires, display, call_id)
    return json.loads(out.strip().splitlines()[-1])


def flood(vantage, host: str, *, count: int, source: str = "", port: int = 5060,
          user_agent: str = "Linphone/5.2", seconds: float = 5.0) -> None:
    """Send at most `count` OPTIONS as fast as possible (and for at most `seconds`)."""
    _in_vantage(vantage, "flood", host, port, count, source, user_agent, seconds)
