"""Start and stop the two servers under test on 127.0.0.1, each in a fresh temp directory.

Both behave the same way (see bench/kamailio/responder-like.cfg for the rule):
`reply_unauthorized` switches between silent mode and 401/403 replies, account
1001 / bench-secret may register from 127.0.0.0/16, and 198.18.0.10 is a gateway.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procstats

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
KAMAILIO_CFG = BENCH_DIR / "kamailio" / "responder-like.cfg"
ACCOUNT, PASSWORD = "1001", "bench-secret"
ACCOUNT_NETWORK = "127.0.0.0/16"
PHONE = "127.0.0.1"  # where the account's REGISTERs come from (inside ACCOUNT_NETWORK)
SCANNER = "127.1.0.1"  # an unknown source: outside ACCOUNT_NETWORK, not a gateway
MANY_SCANNERS_FROM = "127.2.0.1"  # first of the memory case's distinct unknown sources
GATEWAY = "198.18.0.10"  # never sent to: it only has to exist in both configs
START_TIMEOUT = 10.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process tree listening on UDP 127.0.0.1:`port`."""

    name = "server"

    def __init__(self, *, reply_unauthorized: bool, workers: int = 2, per_source_limit: bool = False):
        self.reply_unauthorized = reply_unauthorized
        # Only the responder has one; the throughput cases turn it off, since all their
        # load comes from one address (Kamailio's config has no pike either).
        self.per_source_limit = per_source_limit
        self.workers = workers
        self.port = free_udp_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        self.process: subprocess.Popen | None = None
        self.startup_s = 0.0

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> "Server":
        """Start and wait until the UDP port is bound (that time is `startup_s`)."""
        log = (self.workdir / "output.log").open("wb")
        started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                self.command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as error:  # e.g. kamailio not installed
            self.stop()
            raise RuntimeError(f"cannot start {self.name}: {error}") from None
        while not procstats.udp_port_bound(self.port):
            if self.process.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                output = (self.workdir / "output.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"{self.name} did not bind 127.0.0.1:{self.port}:\n{output}")
            time.sleep(0.002)
        self.startup_s = time.monotonic() - started
        return self

    def counters(self) -> dict[str, float]:
        """The server's own counters, where it has a way to report them ({} otherwise)."""
        return {}

    def pids(self) -> list[int]:
        return procstats.process_tree(self.process.pid) if self.process else []

    def stop(self) -> None:
        """Stop the server and everything it forked (its own session and process group)."""
        if self.process:
            group = self.process.pid  # start_new_session: the group id is the server's pid
            self._signal_group(group, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self._signal_group(group, signal.SIGKILL)
                self.process.wait(5)
            # Kamailio's children normally exit with their parent; make sure none is left.
            time.sleep(0.1)
            self._signal_group(group, signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _signal_group(group: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signum)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Kamailio(Server):
    name = "kamailio"

    def command(self) -> list[str]:
        cmd = [
            "kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-l", f"udp:127.0.0.1:{self.port}",
            "-n", str(self.workers), "-Y", str(self.workdir), "-P", str(self.workdir / "kamailio.pid"),
            "-m", "64", "-M", "8",
        ]
        if self.reply_unauthorized:
            cmd += ["-A", "REPLY_UNAUTHORIZED"]
        return cmd


class BarePython(Server):
    """bench/bare_responder.py: the plain-Python reference, unknown-source paths only."""

    name = "bare"

    def command(self) -> list[str]:
        mode = "on" if self.reply_unauthorized else "off"
        return [sys.executable, str(BENCH_DIR / "bare_responder.py"), str(self.port), mode, str(self.workers)]


class Responder(Server):
    """sipguard's responder, `python3 -m sipresponder run`, with config files written here."""

    name = "responder"

    def __init__(self, *, profile: Path | None = None, **options):
        super().__init__(**options)
        self.profile = profile  # cProfile output file; the responder writes it when it stops

    def write_config(self) -> list[str]:
        """Write the three config files; return the command-line options that name them."""
        softswitch = self.workdir / "softswitch.conf"
        softswitch.write_text(
            f"SS_REPLY_UNAUTHORIZED={'On' if self.reply_unauthorized else 'Off'}\nSS_SIP_PORT={self.port}\n"
        )
        endpoints = self.workdir / "endpoints.toml"
        endpoints.write_text(
            f'[[account]]\nusername = "{ACCOUNT}"\npassword = "{PASSWORD}"\n'
            f'networks = ["{ACCOUNT_NETWORK}"]\n\n'
            f'[[gateway]]\nname = "bench-gw"\naddresses = ["{GATEWAY}"]\n'
        )
        # Like the Kamailio config: MD5 only, no trace, no stats listener; everything else
        # (scanner list, max_tracked_sources, ...) at the responder's defaults.
        limits = "" if self.per_source_limit else "[limits]\nrate_per_source = 0\n\n"
        responder = self.config_path = self.workdir / "responder.toml"
        responder.write_text(
            '[listen]\naddresses = ["127.0.0.1"]\ntransports = ["udp"]\n\n'
            '[auth]\nalgorithms = ["MD5"]\n\n'
            f"{limits}"
            "[trace]\nenabled = false\n\n"
            f'[stats]\nprometheus_listen = ""\ncontrol_socket = "{self.workdir / "control.sock"}"\n'
        )
        return [
            "--softswitch", str(softswitch),
            "--endpoints", str(endpoints),
            "--config", str(responder),
        ]

    def counters(self) -> dict[str, float]:
        """`sipresponder stats --json` over the control socket named in responder.toml."""
        command = [sys.executable, "-m", "sipresponder", "stats", "--json", "--config", str(self.config_path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        try:
            return json.loads(done.stdout) if done.returncode == 0 else {}
        except json.JSONDecodeError:
            return {}

    def command(self) -> list[str]:
        options = self.write_config()
        profiler = ["-m", "cProfile", "-o", str(self.profile)] if self.profile else []
        run = ["-m", "sipresponder", "run", *options, "--workers", str(self.workers)]
        return [sys.executable, *profiler, *run]


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return done.stdout.strip()


def responder_version() -> str:
    """The commit of sipresponder/ being measured, and whether the work tree differs from it."""
    commit = _output(["git", "-C", str(REPO), "log", "-1", "--format=%h", "--", "sipresponder"])
    dirty = _output(["git", "-C", str(REPO), "status", "--porcelain", "--", "sipresponder"])
    return f"sipresponder/ at {commit or 'unknown commit'}{' + uncommitted changes' if dirty else ''}"


def kamailio_version() -> str:
    first = _output(["kamailio", "-v"]).splitlines()
    return first[0].removeprefix("version: ").strip() if first else "not found"


@contextlib.contextmanager
def running(kind: type[Server], **options: object):
    server = kind(**options)
    try:
        yield server.start()
    finally:
        server.stop()
