"""`--workers N`: helper processes that take the strangers' share of a UDP flood.

The main process owns all state that must be consistent (registrations, suspensions, nonce
counts, TCP, the trace). Helpers are forked from it and read the *same* UDP sockets, so the
kernel hands each datagram to whichever process is free. A helper answers or drops only what
needs no shared state — strangers without credentials: the Off-mode silent drop and the
On-mode 401/403 — and forwards everything else to the main process over a socketpair:

  forwarded to main: gateways, registered sources, REGISTERs from account networks, anything
                     carrying Authorization, and every request while the trace is on.

The main process pushes what helpers need to classify a source (the registered source
addresses, new suspensions, the trace switch) and receives their counters once a second.
The update for a new registration is sent before its 200 OK, and helpers read updates before
packets, so a phone's next request is normally classified correctly; a helper that is already
in the middle of a batch when the update arrives may still treat one request as a stranger's
(in Off mode: dropped, and the phone retransmits).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Protocol

from sipresponder import policy
from sipresponder.core import Core

BATCH = 256


def _encode(index: int, address: str, port: int, data: bytes) -> bytes:
    return f"{index}|{address}|{port}|".encode() + data


class Inbox:
    """Datagrams from a channel, read into one buffer allocated once.

    socket.recv(n) allocates n bytes on every call, even when nothing is waiting; at the sizes
    a channel needs (updates can be large) that allocation costs about 10 µs a call, more than
    handling a request. recv_into a reused buffer, then one copy of what arrived, does not.
    """

    __slots__ = ("channel", "view")

    def __init__(self, channel: socket.socket, size: int):
        self.channel = channel
        # Anonymous memory, not a bytearray: untouched pages cost no RSS, so the buffer grows
        # into memory only as far as the largest datagram that ever arrives.
        self.view = memoryview(mmap.mmap(-1, size))

    def receive(self) -> bytes:
        """The next datagram; raises OSError (BlockingIOError when none is waiting)."""
        size = self.channel.recv_into(self.view)
        return self.view[:size].tobytes()


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """A datagram socketpair between the main process and a forked one, with room for bursts."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock in (mine, theirs):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return mine, theirs


def _decode(message: bytes) -> tuple[int, str, int, bytes]:
    index, address, port, data = message.split(b"|", 3)
    return int(index), address.decode(), int(port), data


class Helper:
    """The loop of one forked helper process."""

    def __init__(self, core: Core, sockets: list[socket.socket], channel: socket.socket, parent: int):
        self.core = core
        self.sockets = sockets
        self.channel = channel
        self.parent = parent
        self.forward_all = core.trace_on
        self.inbox = Inbox(channel, 1 << 20)
        # A helper reports only what it counted itself: forked at a reload, it holds a copy of the main
        # process's counters, which the main process adds to the helpers' reports already.
        core.stats.counts = dict.fromkeys(core.stats.counts, 0)
        core.trace_on = False  # the main process writes the trace; while it is on, everything goes there

    def run(self) -> None:
        selector = selectors.DefaultSelector()  # never the parent's: an inherited epoll is shared
        for index, sock in enumerate(self.sockets):
            selector.register(sock, selectors.EVENT_READ, index)
        self.channel.setblocking(False)
        selector.register(self.channel, selectors.EVENT_READ, -1)
        next_report = 0.0
        running = [True]
        signal.set_wakeup_fd(-1)  # the inherited wake-up pipe belongs to the main loop
        signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
        signal.signal(signal.SIGINT, lambda *_: running.__setitem__(0, False))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        while running[0]:
            # Updates before packets: a phone's 200 OK leaves the main process after its update did.
            for key, _ in selector.select(0.5):
                self.drain_updates()
                if key.data >= 0:
                    self.on_udp(key.data, key.fileobj)
            now = time.time()
            if now >= next_report:
                next_report = now + 1.0
                if os.getppid() != self.parent:
                    return  # the main process is gone
                self.report()
        self.report()  # stopped (a reload): the last second's counts are not lost

    def report(self) -> None:
        with contextlib.suppress(OSError):
            self.channel.send(json.dumps({"stats": self.core.stats.counts}).encode())

    def on_udp(self, index: int, sock: socket.socket) -> None:
        core = self.core
        source_kind = core.classifier.source_kind
        unknown = policy.UNKNOWN
        handle = core.handle
        recvfrom, sendto = sock.recvfrom, sock.sendto
        size = core.max_bytes + 1
        now = time.time()
        for _ in range(BATCH):
            try:
                data, peer = recvfrom(size)
            except OSError:  # BlockingIOError (drained), InterruptedError, ICMP errors
                return
            address = peer[0]
            kind = source_kind(address, data.startswith(b"REGISTER"))  # the core reuses it: classified once
            if self.forward_all or kind != unknown or b"uthorization:" in data or b"UTHORIZATION:" in data:
                try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
                    self.channel.send(_encode(index, address, peer[1], data))
                except OSError:  # main busy: drop, as a full socket buffer would
                    pass
                continue
            try:
                actions = handle(data, address, peer[1], "udp", now, kind)
            except Exception:  # one bad packet must never stop a helper
                core.stats.counts["internal_errors"] += 1
                continue
            for action in actions:
                if action[0] == "send":
                    try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
                        sendto(action[1], (address, action[2]))
                    except OSError:
                        pass

    def drain_updates(self) -> None:
        """Apply every update the main process has queued (one syscall when there is none)."""
        while True:
            try:
                data = self.inbox.receive()
            except OSError:  # BlockingIOError: none left
                return
            self.on_update(data)

    def on_update(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        sources = self.core.registrar.sources
        for address in message.get("add", []):
            sources[address] = 1
        for address in message.get("remove", []):
            sources.pop(address, None)
        for address, until in message.get("suspend", []):
            self.core.suspensions.until.put(address, until)
        if "trace" in message:
            self.forward_all = message["trace"]


class PoolHost(Protocol):
    """What the pool needs from the main process's event loop, and nothing more."""

    def udp_sockets(self) -> list[socket.socket]:
        """The UDP listeners, in a fixed order (a forward names its socket by index)."""

    def watch(self, sock: socket.socket, callback: Callable[[socket.socket], object]) -> None: ...

    def unwatch(self, sock: socket.socket) -> None: ...

    def carry_out(self, actions, sock: socket.socket, address: str, conn: None) -> None: ...

    def internal_error(self, exc: Exception) -> None: ...


class Pool:
    """The main process's side: fork helpers, feed them updates, take their forwards and counters."""

    def __init__(self, core: Core, host: PoolHost, count: int):
        self.core = core
        self.host = host
        self.count = count
        self.children: dict[int, socket.socket] = {}  # pid -> channel
        self.inboxes: dict[socket.socket, Inbox] = {}  # channel -> its receive buffer
        self.helper_stats: dict[int, dict[str, int]] = {}
        self.retired: dict[str, int] = {}  # counts of helpers that ended (reload): counters never go back
        self.sent_sources: set[str] = set()
        self.sent_version = -1
        self.udp: list[socket.socket] = []

    def start(self) -> None:
        self.udp = self.host.udp_sockets()
        self.sent_sources = set(self.core.registrar.sources)
        self.sent_version = self.core.registrar.version
        for _ in range(self.count - 1):
            mine, theirs = channel_pair()
            pid = os.fork()
            if pid == 0:  # the helper
                mine.close()
                code = 0
                try:
                    Helper(self.core, self.udp, theirs, os.getppid()).run()
                except BaseException:  # a helper must never fall back into the parent loop
                    code = 1
                os._exit(code)
            theirs.close()
            mine.setblocking(False)
            self.children[pid] = mine
            self.inboxes[mine] = Inbox(mine, 1 << 17)  # a forwarded request: at most 64 KiB and its address
            self.host.watch(mine, self.on_channel)

    def stop(self) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid, channel in self.children.items():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            for _ in range(64):  # what it forwarded last, and its final counters
                if self.on_channel(channel):
                    break
            self.host.unwatch(channel)
            channel.close()
        self.children.clear()
        self.inboxes.clear()
        self.retired = self.totals()
        self.helper_stats.clear()

    def restart(self) -> None:
        """After a reload: helpers re-fork with the new configuration and sockets."""
        self.stop()
        self.start()

    def on_channel(self, channel: socket.socket) -> bool:
        """Handle what a helper sent; True when nothing is left waiting."""
        host = self.host
        handle = self.core.handle
        now = time.time()
        receive = self.inboxes[channel].receive
        for _ in range(BATCH):
            try:
                message = receive()
            except (BlockingIOError, InterruptedError, OSError):
                return True
            if message.startswith(b"{"):
                pid = next((p for p, c in self.children.items() if c is channel), 0)
                with contextlib.suppress(ValueError):
                    self.helper_stats[pid] = json.loads(message)["stats"]
                continue
            try:
                index, address, port, data = _decode(message)
                sock = self.udp[index]
            except (ValueError, IndexError):
                continue
            try:
                actions = handle(data, address, port, "udp", now)
            except Exception as exc:  # one bad packet must never stop the server
                host.internal_error(exc)
                continue
            if actions:
                self.sync()  # before the answer goes out (see Server.on_udp)
                host.carry_out(actions, sock, address, None)
        return False

    def broadcast(self, message: dict) -> None:
        data = json.dumps(message).encode()
        for channel in self.children.values():
            with contextlib.suppress(OSError):
                channel.send(data)

    def sync(self) -> None:
        """Push changes of the registered source addresses to the helpers."""
        if not self.children:
            return
        registrar = self.core.registrar
        if registrar.version == self.sent_version:
            return
        self.sent_version = registrar.version
        now = set(registrar.sources)
        if now == self.sent_sources:
            return
        self.broadcast({"add": sorted(now - self.sent_sources), "remove": sorted(self.sent_sources - now)})
        self.sent_sources = now

    def suspend(self, address: str, seconds: int) -> None:
        self.broadcast({"suspend": [[address, time.time() + seconds]]})

    def totals(self) -> dict[str, int]:
        out = dict(self.retired)
        for counts in self.helper_stats.values():
            for name, value in counts.items():
                out[name] = out.get(name, 0) + value
        return out


