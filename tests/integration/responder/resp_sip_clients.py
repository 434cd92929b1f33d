"""Drive real SIP clients (SIPp, sipsak, baresip, pjsua2) through one digest REGISTER of account 1001.

Each function returns (ran, output): `ran` is False when the client is not installed. Whether the
registration worked is read from the responder's own counters by the caller, never from the
client's output, so every client is judged the same way.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from resp_live_helpers import sipp_register

USER, PASSWORD = "1001", "s3cret-pw"


def _host(target: str) -> str:
    return f"[{target}]" if ":" in target else target


def sipp(port: int, workdir: Path, target: str = "127.0.0.1", transport: str = "udp") -> tuple[bool, str]:
    if shutil.which("sipp") is None:
        return False, "sipp is not installed"
    done = sipp_register(port, workdir, _host(target), {"udp": "u1", "tcp": "t1"}[transport])
    return True, done.stdout[-3000:] + done.stderr[-2000:]


def sipsak(port: int, workdir: Path, target: str = "127.0.0.1", transport: str = "udp") -> tuple[bool, str]:
    if shutil.which("sipsak") is None:
        return False, "sipsak is not installed"
    command = ["sipsak", "-v", "-U", "--transport", transport, "-s", f"sip:{USER}@{_host(target)}:{port}",
               "-u", USER, "-a", PASSWORD]  # fmt: skip
    if ":" in target:
        command[1:1] = ["-l", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, cwd=workdir)
    return True, done.stdout[-3000:] + done.stderr[-2000:]


def baresip(port: int, workdir: Path, target: str = "127.0.0.1", transport: str = "udp") -> tuple[bool, str]:
    """baresip (Debian's baresip-core): one account, no audio, quits after a few seconds."""
    if shutil.which("baresip") is None:
        return False, "baresip is not installed"
    home = workdir / "baresip"
    home.mkdir(exist_ok=True)
    local = "::1" if ":" in target else "127.0.0.1"
    (home / "config").write_text(
        textwrap.dedent(f"""\
            poll_method epoll
            sip_listen {_host(local)}:0
            module_path /usr/lib/baresip/modules
            module stdio.so
            module_app account.so
            module_app menu.so
            audio_player aufile,/dev/null
            audio_source aufile,/dev/null
            """)
    )
    (home / "accounts").write_text(
        f"<sip:{USER}@{_host(target)}:{port};transport={transport}>;auth_pass={PASSWORD};regint=60\n"
    )
    family = "-6" if ":" in target else "-4"
    done = subprocess.run(["baresip", family, "-f", str(home), "-t", "4"], capture_output=True, text=True,
                          timeout=30, check=False, cwd=workdir, stdin=subprocess.DEVNULL)  # fmt: skip
    return True, done.stdout[-3000:] + done.stderr[-2000:]


_PJSUA2 = """
import sys, time
import pjsua2 as pj
port, target, transport = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ep = pj.Endpoint()
ep.libCreate()
cfg = pj.EpConfig()
cfg.logConfig.level = 3
cfg.logConfig.consoleLevel = 3
cfg.uaConfig.threadCnt = 0
cfg.uaConfig.mainThreadOnly = True
ep.libInit(cfg)
ep.audDevManager().setNullDev()
v6 = ":" in target
kind = {("udp", False): pj.PJSIP_TRANSPORT_UDP, ("udp", True): pj.PJSIP_TRANSPORT_UDP6,
        ("tcp", False): pj.PJSIP_TRANSPORT_TCP, ("tcp", True): pj.PJSIP_TRANSPORT_TCP6}[(transport, v6)]
tcfg = pj.TransportConfig()
tcfg.boundAddress = "::1" if v6 else "127.0.0.1"
transport_id = ep.transportCreate(kind, tcfg)
ep.libStart()
host = f"[{target}]" if v6 else target
acfg = pj.AccountConfig()
acfg.idUri = f"sip:1001@{host}"
acfg.regConfig.registrarUri = f"sip:{host}:{port};transport={transport}"
acfg.sipConfig.transportId = transport_id
acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", "1001", 0, "s3cret-pw"))
acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
acfg.natConfig.contactRewriteUse = 0
acfg.natConfig.viaRewriteUse = 0
account = pj.Account()
account.create(acfg)
deadline = time.time() + 6
status = 0
while time.time() < deadline:
    ep.libHandleEvents(50)
    info = account.getInfo()
    status = info.regStatus
    if status >= 200:
        break
print("pjsua2 register status", status, pj.Endpoint.instance().libVersion().full)
account.shutdown()
ep.libDestroy()
"""


def pjsua2(port: int, workdir: Path, target: str = "127.0.0.1", transport: str = "udp") -> tuple[bool, str]:
    """pjsua2 (PyPI pjsua2-python, pinned in requirements-dev.txt), run in a child interpreter."""
    probe = subprocess.run([sys.executable, "-c", "import pjsua2"], capture_output=True, check=False)
    if probe.returncode != 0:
        return False, "pjsua2 is not installed"
    done = subprocess.run([sys.executable, "-c", _PJSUA2, str(port), target, transport], capture_output=True,
                          text=True, timeout=40, check=False, cwd=workdir)  # fmt: skip
    return True, done.stdout[-3000:] + done.stderr[-3000:]


CLIENTS = {"sipp": sipp, "sipsak": sipsak, "baresip": baresip, "pjsua2": pjsua2}
