"""The kernel blocking hook: suspended sources go into an ipset the firewall layer drops.

`ipset add SET ADDR timeout SECS -exist` runs in a worker thread fed by a bounded queue,
so a slow or failing ipset never holds up the packet loop; when the queue is full the
request is counted as an error and skipped (the responder still drops the source itself).
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import sys
import threading

QUEUE_SIZE = 1024


def _log(message: str) -> None:
    print(f"sipresponder: {message}", file=sys.stderr, flush=True)


class Blocker:
    def __init__(self, ipset4: str, ipset6: str):
        self.configure(ipset4, ipset6)
        self.queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self.calls = 0
        self.errors = 0
        self.thread: threading.Thread | None = None

    def configure(self, ipset4: str, ipset6: str) -> None:
        self.sets = {4: ipset4, 6: ipset6}

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="ipset-hook", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            try:
                self.queue.put_nowait(None)
            except queue.Full:
                return  # daemon thread: it ends with the process
            self.thread.join(timeout=2)

    def submit(self, address: str, seconds: int) -> None:
        name = self.sets[6 if ":" in address else 4]
        if not name:
            return
        try:
            self.queue.put_nowait((name, address, seconds))
        except queue.Full:
            self.errors += 1

    def _work(self) -> None:
        ipset = shutil.which("ipset") or "/usr/sbin/ipset"
        while (item := self.queue.get()) is not None:
            name, address, seconds = item
            command = [ipset, "add", name, address, "timeout", str(seconds), "-exist"]
            self.calls += 1
            try:
                # The command is a fixed list; the set name comes from root-owned config and the address
                # from the kernel (a socket's peer), never from a SIP header.
                result = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)  # noqa: S603
            except (OSError, subprocess.TimeoutExpired) as exc:
                self.errors += 1
                _log(f"block hook: {' '.join(command)}: {exc}")
                continue
            if result.returncode != 0:
                self.errors += 1
                message = result.stderr.strip().splitlines()[-1:] or ["failed"]
                _log(f"block hook: {' '.join(command)}: {message[0]}")
