"""A real `sipresponder run` subprocess on loopback, with its three config files in a temp dir."""

import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sipresponder import sip_codec

REPO = Path(__file__).resolve().parents[3]

ENDPOINTS = """
lan_networks = ["127.0.0.10/32"]
[[account]]
username = "1001"
password = "s3cret-pw"
[[account]]
username = "1002"
password = "other-pw"
networks = ["127.0.0.11/32"]
[[gateway]]
name = "loopback-trunk"
addresses = ["127.0.0.20"]
"""
# 127.0.0.1 (and ::1) is where sipsak and SIPp send from; these endpoints make it an account network.
CLIENT_ENDPOINTS = ENDPOINTS.replace(
    'lan_networks = ["127.0.0.10/32"]', 'lan_networks = ["127.0.0.1/32", "::1/128"]'
)
MD5_FIRST = (
    '[auth]\nalgorithms = ["MD5", "SHA-256"]\n'  # sipsak and SIPp answer the first challenge, MD5 only
)
SIPP_SCENARIO = Path(__file__).with_name("sipp_register.xml")


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 and ::1 (checked by binding all four)."""
    for _ in range(50):
        port = random.randint(20000, 29999)  # noqa: S311 - not security relevant
        try:
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(family, kind) as probe:
                        probe.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


@dataclass
class Responder:
    proc: subprocess.Popen
    port: int
    directory: Path
    log: list[str] = field(default_factory=list)

    @property
    def softswitch(self) -> Path:
        return self.directory / "softswitch.conf"

    @property
    def endpoints(self) -> Path:
        return self.directory / "endpoints.toml"

    @property
    def settings(self) -> Path:
        return self.directory / "responder.toml"

    @property
    def control(self) -> Path:
        return self.directory / "control.sock"

    @property
    def trace(self) -> Path:
        return self.directory / "trace.jsonl"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "sipresponder", *args, "--config", str(self.settings)],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=REPO,
            check=False,
        )

    def stats(self) -> dict[str, float]:
        out = self.cli("stats").stdout
        return {name: float(value) for name, value in (line.split() for line in out.splitlines())}

    def wait_log(self, fragment: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log:
                if fragment in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{fragment!r} not logged; log: {self.log}")


def write_config(
    directory: Path, port: int, mode: str, softswitch: str, endpoints: str, settings: str
) -> None:
    (directory / "softswitch.conf").write_text(
        f"SS_REPLY_UNAUTHORIZED={mode}\nSS_SIP_PORT={port}\n{softswitch}"
    )
    (directory / "endpoints.toml").write_text(endpoints)
    control = f'control_socket = "{directory}/control.sock"\n'
    if "[stats]" in settings:  # the test sets its own [stats]: add our control socket to it
        settings = settings.replace("[stats]\n", "[stats]\n" + control)
    else:
        settings += '[stats]\nprometheus_listen = ""\n' + control
    (directory / "responder.toml").write_text(
        f'[listen]\naddresses = ["127.0.0.1", "::1"]\n[trace]\npath = "{directory}/trace.jsonl"\n{settings}'
    )


def udp_exchange(
    port: int, data: bytes, source: str = "127.0.0.1", target: str = "127.0.0.1", timeout: float = 0.5
) -> bytes | None:
    """Send one datagram from `source`; the reply, or None after `timeout` of silence."""
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.sendto(data, (target, port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def request(
    method: str,
    user: str = "1001",
    source: str = "127.0.0.1",
    headers: str = "",
    cseq: int = 1,
    call_id: str = "it-call",
    branch: str = "z9hG4bKit1",
    transport: str = "UDP",
) -> bytes:
    """A request from a phone at `source` (the codec's builder); `headers` adds raw header lines."""
    host = sip_codec.host_for_uri(source)
    return sip_codec.build_request(
        method,
        f"sip:{user}@{host}",
        f"{host}:5060",
        branch,
        f"sip:{user}@{host}",
        "it",
        call_id,
        cseq,
        transport=transport,
        contact=f"sip:{user}@{host}:5060" if method == "REGISTER" else None,
        user_agent="integration-test",
        headers=[headers] if headers else [],
    )


def sipp_register(port: int, workdir: Path, target: str = "127.0.0.1", transport: str = "u1"):
    """One digest REGISTER of account 1001 by SIPp (sipp_register.xml); the CompletedProcess."""
    local = "::1" if ":" in target else "127.0.0.1"
    command = ["sipp", "-sf", str(SIPP_SCENARIO), "-s", "1001", "-au", "1001", "-ap", "s3cret-pw",
               "-i", local, "-p", "0", "-m", "1", "-t", transport, "-nostdin", "-timeout", "10s",
               f"{target}:{port}"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, cwd=workdir)
