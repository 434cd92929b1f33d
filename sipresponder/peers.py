"""`--workers N` with steering: N peer processes, each with its own slice of the sources.

Every endpoint is a SO_REUSEPORT group of N sockets whose program (steering.py) sends all
packets and connections from one source address (IPv6: one /64) to the same socket, and each
socket is read by one process. So a source's REGISTER, INVITE, failures, rate bucket, nonce
counts and suspension all live in one process, and every process handles every kind of
request itself: nothing is forwarded. The main process is peer 0 and also owns the control
socket, the ipset hook, the trace file, signals and reloads.

What still crosses processes is per account, pushed through the main process as JSON over a
socketpair per peer (the main process applies it and relays it to the others):

  bind     an account's bindings after a REGISTER (replacement across contacts and the set of
           registered addresses stay whole)
  afail    a failed digest answer counted against an account name (AccountGuard)
  trust    the sources an account last authenticated from
  suspend  a suspension (already local by steering; shared so it holds even if a group shrinks)

and to the main process only: block (the ipset hook), event (a trace record), stats. The main
process holds every socket of every group, so a peer that dies leaves its socket in place (its
packets wait) until the main process forks it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import selectors
import signal
import socket
import sys
import time
from typing import Protocol

from sipresponder.core import Core
from sipresponder.registrar import Binding
from sipresponder.workers import Inbox, channel_pair

CONFIG = b"P"  # prefix of a pickled configuration (main -> peer, between our own processes only)
ACK_TIMEOUT = 2.0  # how long the main process waits for peers to apply a reload or report counters


def _encode_shared(core: Core, now: float) -> dict | None:
    """What this process learnt since the last call that the others must learn too."""
    registrar = core.registrar
    message: dict = {}
    if registrar.changed:
        message["bind"] = [[user, [[b.contact, b.source, b.expires_at] for b in registrar.lookup(user, now)]]
                           for user in sorted(registrar.changed)]  # fmt: skip
        registrar.changed.clear()
    if core.shared:
        message["shared"] = [list(item) for item in core.shared]
        core.shared.clear()
    return message or None


def apply_shared(core: Core, message: dict) -> None:
    """Take what another process learnt (see _encode_shared) and suspensions."""
    for user, bindings in message.get("bind", []):
        core.registrar.adopt(user, [Binding(*binding) for binding in bindings])
    for item in message.get("shared", []):
        if item[0] == "afail":
            core.account_guard.fail(item[1], item[2])
        elif item[0] == "trust":
            core.trusted[item[1]] = tuple(item[2])
    for key, until in message.get("suspend", []):
        core.suspensions.until.put(key, until)


def start_journal(core: Core) -> None:
    core.registrar.changed = set()
    core.shared = []


class PeerServer(Protocol):
    """What the peers need from the server."""

    core: Core
    blocker: object

    def become_peer(self, index: int, link: Link) -> None:
        """In the forked child: keep slot `index` of every group, serve until stopped."""

    def watch(self, sock: socket.socket, callback) -> None: ...

    def unwatch(self, sock: socket.socket) -> None: ...

    def write_trace(self, event: dict) -> None: ...

    def apply_config(self, cfg) -> None: ...


def _share_learnt(core, out) -> None:
    """Hand `out` what this process learnt since the last batch (bindings, shared facts), if anything."""
    if core.registrar.changed or core.shared:
        message = _encode_shared(core, time.time())
        if message:
            out(message)


class Link:
    """A peer's side of its channel to the main process. Stands in, in the peer, for the pool
    (sync, suspend), the ipset hook (submit) and the trace file (enabled, write, flush)."""

    def __init__(self, server: PeerServer, channel: socket.socket, parent: int):
        self.server = server
        self.core = server.core
        self.channel = channel
        self.parent = parent
        self.inbox = Inbox(channel, 4 << 20)  # a configuration can be large (many accounts)
        self.enabled = server.core.trace_on
        self.path = ""
        self.error = ""
        self.calls = self.errors = 0  # the ipset hook's counters: the main process's Blocker counts
        start_journal(self.core)
        # A peer reports what it counted itself; the main process keeps its own counters.
        self.core.stats.counts = dict.fromkeys(self.core.stats.counts, 0)

    def send(self, message: dict) -> None:
        with contextlib.suppress(OSError):  # main busy or gone: a peer never blocks on it
            self.channel.send(json.dumps(message, separators=(",", ":")).encode())

    # -- the pool's part
    def sync(self) -> None:
        _share_learnt(self.core, self.send)

    def suspend(self, key: str, seconds: int) -> None:
        self.send({"suspend": [[key, time.time() + seconds]]})

    def broadcast(self, message: dict) -> None:  # only the main process broadcasts
        pass

    # -- the ipset hook's part
    def submit(self, address: str, seconds: int) -> None:
        self.send({"block": [address, seconds]})

    # -- the trace file's part
    def write(self, event: dict) -> None:
        self.send({"event": event})

    def flush(self) -> None:
        pass

    def report(self, ack: int = 0) -> None:
        gauges = self.core.stats.gauges
        self.send({"stats": self.core.stats.counts, "ack": ack,
                   "gauges": {name: gauges.get(name, 0) for name in ("tcp_connections", "tracked_sources")}})

    def on_channel(self, channel: socket.socket) -> None:
        """Apply everything the main process has queued."""
        for _attempt in range(1024):
            try:
                data = self.inbox.receive()
            except OSError:  # BlockingIOError: none left
                return
            if data.startswith(CONFIG):
                update = pickle.loads(data[1:])  # noqa: S301 - from our own main process, over a socketpair
                self.server.apply_config(update["config"])
                self.report(update["ack"])
                continue
            try:
                message = json.loads(data)
            except ValueError:
                continue
            apply_shared(self.core, message)
            if "trace" in message:
                self.enabled = self.core.trace_on = message["trace"]
            if "report" in message:
                self.report(message["report"])


class Peers:
    """The main process's side: fork the peers, relay what they share, collect their counters."""

    def __init__(self, core: Core, host: PeerServer, count: int):
        self.core = core
        self.host = host
        self.count = count
        self.children: dict[int, tuple[int, socket.socket]] = {}  # slot -> (pid, channel)
        self.inboxes: dict[socket.socket, Inbox] = {}
        self.peer_stats: dict[int, dict] = {}  # slot -> latest report
        self.retired: dict[str, int] = {}  # counts of peers that ended: counters never go back
        self.acks: dict[int, int] = {}  # slot -> last acknowledged request
        self.serial = 0
        start_journal(core)

    def start(self) -> None:
        for index in range(1, self.count):
            self.fork(index)

    def fork(self, index: int) -> None:
        mine, theirs = channel_pair()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the peer
            mine.close()
            for _pid, channel in self.children.values():
                channel.close()
            code = 0
            try:
                self.host.become_peer(index, Link(self.host, theirs, parent))
            except BaseException as exc:  # a peer must never fall back into the parent loop
                if not isinstance(exc, (SystemExit, KeyboardInterrupt)):
                    print(f"sipresponder: worker {index} failed ({exc.__class__.__name__})", file=sys.stderr)
                code = 1
            os._exit(code)
        theirs.close()
        mine.setblocking(False)
        self.children[index] = (pid, mine)
        self.inboxes[mine] = Inbox(mine, 1 << 20)
        self.host.watch(mine, self.on_channel)

    def stop(self) -> None:
        for pid, _channel in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for index, (pid, channel) in list(self.children.items()):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.on_channel(channel)  # its final counters
            self.forget(index)
        self.retired = self.totals()
        self.peer_stats.clear()

    def forget(self, index: int) -> None:
        _pid, channel = self.children.pop(index)
        self.inboxes.pop(channel, None)
        self.host.unwatch(channel)
        channel.close()

    def restart(self) -> None:
        """New listening endpoints: the peers re-fork with every group's slot."""
        self.stop()
        self.start()

    def check(self) -> list[int]:
        """Fork again any peer that died (its socket waited in the group meanwhile); the slots."""
        gone = []
        for index, (pid, channel) in list(self.children.items()):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.on_channel(channel)
                self.forget(index)
                stats = self.peer_stats.pop(index, {}).get("stats", {})
                for name, value in stats.items():
                    self.retired[name] = self.retired.get(name, 0) + value
                self.fork(index)
                gone.append(index)
        return gone

    def slot_of(self, channel: socket.socket) -> int:
        return next((index for index, (_pid, c) in self.children.items() if c is channel), 0)

    def on_channel(self, channel: socket.socket) -> bool:
        """Handle what a peer sent; True when nothing is left waiting."""
        inbox = self.inboxes.get(channel)
        if inbox is None:
            return True
        for _attempt in range(1024):
            try:
                data = inbox.receive()
            except OSError:
                return True
            try:
                message = json.loads(data)
            except ValueError:
                continue
            if "event" in message:
                self.host.write_trace(message["event"])
                continue
            if "stats" in message:
                index = self.slot_of(channel)
                self.peer_stats[index] = message
                self.acks[index] = max(self.acks.get(index, 0), message.get("ack", 0))
                continue
            if "block" in message:
                address, seconds = message["block"]
                self.host.blocker.submit(address, seconds)
                continue
            apply_shared(self.core, message)
            self.relay(data, channel)
        return False

    def relay(self, data: bytes, origin: socket.socket | None) -> None:
        for _pid, channel in self.children.values():
            if channel is not origin:
                with contextlib.suppress(OSError):
                    channel.send(data)

    def broadcast(self, message: dict) -> None:
        self.relay(json.dumps(message, separators=(",", ":")).encode(), None)

    def sync(self) -> None:
        """Share what the main process itself learnt (it is peer 0)."""
        _share_learnt(self.core, self.broadcast)

    def suspend(self, key: str, seconds: int) -> None:
        self.broadcast({"suspend": [[key, time.time() + seconds]]})

    def request(self, data: bytes) -> None:
        """Send `data` (which carries the next serial as its ack number) to every peer and wait,
        at most ACK_TIMEOUT, until each has answered it: a reload applies everywhere before it is
        reported done, and counters are fresh."""
        for _pid, channel in self.children.values():
            with contextlib.suppress(OSError):
                channel.send(data)
        deadline = time.monotonic() + ACK_TIMEOUT
        with selectors.DefaultSelector() as waiting:
            for _pid, channel in self.children.values():
                waiting.register(channel, selectors.EVENT_READ)
            while any(self.acks.get(index, 0) < self.serial for index in self.children):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                for key, _events in waiting.select(left):
                    self.on_channel(key.fileobj)

    def reconfigure(self, cfg) -> None:
        self.serial += 1
        self.request(CONFIG + pickle.dumps({"config": cfg, "ack": self.serial}))

    def refresh(self) -> None:
        self.serial += 1
        self.request(json.dumps({"report": self.serial}).encode())

    def totals(self) -> dict[str, int]:
        out = dict(self.retired)
        for report in self.peer_stats.values():
            for name, value in report.get("stats", {}).items():
                out[name] = out.get(name, 0) + value
        return out

    def gauges(self) -> dict[str, float]:
        reported = [report.get("gauges", {}) for report in self.peer_stats.values()]
        tcp = sum(gauges.get("tcp_connections", 0) for gauges in reported)
        tracked = max((gauges.get("tracked_sources", 0) for gauges in reported), default=0)
        return {"tcp_connections": tcp, "tracked_sources": tracked}
