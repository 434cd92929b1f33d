"""The thin I/O layer: sockets, the event loop, signals, reloads.

One process, one selector loop. UDP sockets are drained in batches so a flood costs one
select() per batch, and the clock is read once per batch. TCP connections are framed by
Content-Length, capped in number, size and idle time. Everything the core decides comes
back as actions (see core.py), carried out here. The control socket and the Prometheus
endpoint are control.py, the helper processes workers.py; each sees the server only through
a small interface (ControlHost, PoolHost) that Server implements.

With `--workers N` the server is one of N peers (peers.py) when the kernel steers by source
address (steering.py); each peer runs this same loop over its own socket of every endpoint.
Where steering is refused, the main process runs helpers (workers.py) instead.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable

from sipresponder import config as config_mod
from sipresponder import policy, steering
from sipresponder.blocker import Blocker
from sipresponder.control import Control
from sipresponder.core import Core
from sipresponder.listen import open_listener
from sipresponder.peers import Link, Peers
from sipresponder.sip_codec import frame
from sipresponder.trace import Trace
from sipresponder.workers import Pool

UDP_BATCH = 256  # datagrams handled per readiness event before looking at other sockets
TCP_READ = 65536


def log(message: str) -> None:
    print(f"sipresponder: {message}", file=sys.stderr, flush=True)


def _endpoints(cfg: config_mod.Config) -> set[tuple[str, str, int]]:
    settings = cfg.settings
    return {
        (transport, address, port)
        for transport in settings.listen_transports
        for address in settings.listen_addresses
        for port in cfg.softswitch.sip_ports
    }


def _source_group(address: str) -> str | bytes:
    """What the per-source TCP cap counts: the address, or for IPv6 its /64 (one site's prefix)."""
    if ":" not in address:
        return address
    try:
        return socket.inet_pton(socket.AF_INET6, address.partition("%")[0])[:8]
    except OSError:
        return address


class Connection:
    __slots__ = ("address", "closing", "group", "inbuf", "last", "outbuf", "port", "sock", "spoken")

    def __init__(self, sock: socket.socket, address: str, port: int, now: float, group: str | bytes):
        self.sock = sock
        self.address = address
        self.port = port
        self.group = group  # its key in Server.per_source
        self.inbuf = b""
        self.outbuf = b""
        # The time of the last complete message (or keep-alive), else of the accept: a byte alone
        # does not count, so a trickle cannot keep a connection.
        self.last = now
        self.spoken = False  # a complete message has arrived
        self.closing = False  # closes once its answer is out


class Server:
    def __init__(self, cfg: config_mod.Config, paths: tuple[str, str, str], workers: int = 1):
        self.paths = paths
        self.cfg = cfg
        now = time.time()
        self.core = Core(cfg, os.urandom(32), now)
        self.workers = workers
        self.pool: Pool | Peers | Link | None = None
        self.no_steering = ""  # why the kernel does not steer ("" when it does), with workers > 1
        self.groups: dict[tuple[str, str, int], list[socket.socket]] = {}  # peers: every process's socket
        if workers > 1:
            self.no_steering = steering.unavailable()
            pool = Pool if self.no_steering else Peers
            self.pool = pool(self.core, self, workers)
        self.trace = Trace(cfg.settings.trace_path, False)
        self.selector = selectors.DefaultSelector()
        self.listeners: dict[tuple[str, str, int], socket.socket] = {}
        self.connections: dict[socket.socket, Connection] = {}
        self.per_source: dict[str | bytes, int] = {}  # open connections per source (IPv6: per /64)
        self.blocker = Blocker(cfg.settings.blocking_ipset4, cfg.settings.blocking_ipset6)
        self.running = True
        self.next_error_log = 0.0
        self.reload_requested = False
        self.local = Control(self)

    # ------------------------------------------------------------------ set-up

    def open_listeners(self, wanted: set[tuple[str, str, int]]) -> bool:
        """Open what is missing, then close what is no longer wanted; all or nothing. True when
        the set of endpoints changed."""
        opened: dict[tuple[str, str, int], list[socket.socket]] = {}
        peers = isinstance(self.pool, Peers)
        try:
            for endpoint in sorted(wanted - set(self.listeners)):
                if peers:
                    opened[endpoint] = steering.open_group(*endpoint, self.workers)
                else:
                    opened[endpoint] = [open_listener(*endpoint)]
        except (OSError, steering.SteeringUnavailable) as exc:
            for group in opened.values():
                for sock in group:
                    sock.close()
            transport, address, port = endpoint
            why = getattr(exc, "strerror", None) or exc
            problem = f"cannot listen on {transport} {address} port {port}: {why}"
            raise config_mod.ConfigError([problem]) from None
        for endpoint, group in opened.items():
            handler = self.on_udp if endpoint[0] == "udp" else self.on_accept
            self.selector.register(group[0], selectors.EVENT_READ, handler)
            self.listeners[endpoint] = group[0]
            if peers:
                self.groups[endpoint] = group  # the main process keeps every slot: a peer's outlives it
        gone = set(self.listeners) - wanted
        for endpoint in gone:
            sock = self.listeners.pop(endpoint)
            self.selector.unregister(sock)
            for member in self.groups.pop(endpoint, [sock]):
                member.close()
        return bool(opened or gone)

    def open_local(self) -> None:
        """The control socket and the Prometheus endpoint, as [stats] says."""
        self.local.open(self.cfg.settings, self.watch)

    def install_signals(self) -> None:
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self.on_wake)
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload_requested", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "running", False))
        signal.signal(signal.SIGUSR1, lambda *_: self.set_trace(not self.core.trace_on))

    # ------------------------------------------------------------------ the loop

    def serve(self) -> None:
        if self.cfg.settings.trace_enabled:
            self.set_trace(True)
        self.blocker.start()
        if self.pool is not None:
            self.pool.start()
        listening = ", ".join(f"{t} {a} port {p}" for t, a, p in sorted(self.listeners))
        mode = "On" if self.cfg.softswitch.reply_unauthorized else "Off"
        workers = ""
        if self.pool is not None:
            how = "peers by source"
            if self.no_steering:
                how = f"helpers: steering unavailable, {self.no_steering}"
            workers = f"; {self.pool.count} workers ({how})"
        log(f"ready: SS_REPLY_UNAUTHORIZED={mode}; listening on {listening}{workers}")
        self.loop(self.housekeeping)
        self.shutdown()

    def loop(self, tick: Callable[[float], object]) -> None:
        """The event loop, main process and peers alike; `tick(now)` once a second."""
        next_tick = 0.0
        select = self.selector.select
        while self.running:
            for key, _ in select(0.5):
                key.data(key.fileobj)
            now = time.time()
            if self.reload_requested:  # only ever set in the main process (a peer ignores SIGHUP)
                self.reload_requested = False
                self.reload()
            if now >= next_tick:
                next_tick = now + 1.0
                tick(now)

    def stats_snapshot(self) -> dict[str, float]:
        """Counters of this process plus the helpers' latest reports."""
        self.refresh_stats(time.time())
        snapshot = self.core.stats.snapshot()
        if isinstance(self.pool, Peers):
            self.pool.refresh()  # counters as of now, not as of each peer's last report
            gauges = self.pool.gauges()
            snapshot["tcp_connections"] += gauges["tcp_connections"]
            snapshot["tracked_sources"] = max(snapshot["tracked_sources"], gauges["tracked_sources"])
        if self.pool is not None:
            for name, value in self.pool.totals().items():
                snapshot[name] = snapshot.get(name, 0) + value
        return snapshot

    def refresh_stats(self, now: float) -> None:
        self.core.tick(now)
        counts = self.core.stats.counts
        counts["block_hook_calls"], counts["block_hook_errors"] = self.blocker.calls, self.blocker.errors
        self.core.stats.gauges["tcp_connections"] = len(self.connections)

    def housekeeping(self, now: float) -> None:
        self.refresh_stats(now)
        if isinstance(self.pool, Peers):
            for index in self.pool.check():
                log(f"worker {index} ended; started it again")
        self.trace.flush()
        settings = self.cfg.settings
        idle = settings.limits_tcp_idle_seconds
        first = min(idle, settings.limits_tcp_first_message_seconds)
        expired = [c for c in self.connections.values() if now - c.last > (idle if c.spoken else first)]
        for conn in expired:
            self.core.stats.counts["tcp_connections_timed_out"] += 1
            self.close(conn)

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        for conn in list(self.connections.values()):
            self.close(conn)
        for sock in self.listeners.values():
            sock.close()
        for group in self.groups.values():
            for sock in group:
                sock.close()
        self.local.close()
        self.blocker.stop()
        self.trace.close()
        log("stopped")

    # ------------------------------------------------------------------ actions

    def carry_out(self, actions, sock: socket.socket, address: str, conn: Connection | None) -> None:
        if self.pool is not None:
            # A suspension reaches the helpers before the reply that goes with it leaves (as a
            # registration does): else the source's next request can meet a helper not yet told.
            for action in actions:
                if action[0] == "block":
                    self.pool.suspend(action[1], action[2])
        for action in actions:
            kind = action[0]
            if kind == "send":
                if conn is None:
                    # ENOBUFS under a flood or an unreachable port: UDP is best effort.
                    try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
                        sock.sendto(action[1], (address, action[2]))
                    except OSError:
                        pass
                else:
                    self.send_tcp(conn, action[1])
            elif kind == "trace":
                if self.trace.enabled:
                    self.trace.write(action[1])
            elif kind == "block":
                self.blocker.submit(action[1], action[2])
            elif kind == "close" and conn is not None:
                self.close_after_answer(conn)

    def internal_error(self, exc: Exception) -> None:
        """A bug met a packet: count it, log its type (never the packet: it may hold credentials)."""
        self.core.stats.counts["internal_errors"] += 1
        now = time.monotonic()
        if now >= self.next_error_log:
            self.next_error_log = now + 10  # at most one line per 10 s under a flood
            log(f"internal error handling a request ({exc.__class__.__name__}); please report it")

    # ------------------------------------------------------------------ UDP

    def on_udp(self, sock: socket.socket) -> None:
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        handle = self.core.handle
        # Helpers must learn of a registration before its answer leaves (the phone's next request may
        # reach one); peers get the phone's next request themselves, so they share once per batch.
        helpers = self.pool if isinstance(self.pool, Pool) else None
        size = self.cfg.settings.limits_max_message_bytes + 1
        now = time.time()
        for _ in range(UDP_BATCH):
            try:
                data, peer = recvfrom(size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # e.g. ICMP port unreachable reported on a later recv
            try:
                actions = handle(data, peer[0], peer[1], "udp", now)
            except Exception as exc:  # one bad packet must never stop the server
                self.internal_error(exc)
                continue
            if not actions:
                continue
            if helpers is not None:
                helpers.sync()
            first = actions[0]
            if len(actions) == 1 and first[0] == "send":  # the common case, without the dispatch
                try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
                    sendto(first[1], (peer[0], first[2]))
                except OSError:
                    pass
            else:
                self.carry_out(actions, sock, peer[0], None)
        if self.pool is not None and helpers is None:
            self.pool.sync()

    # ------------------------------------------------------------------ TCP

    def on_accept(self, listener: socket.socket) -> None:
        now = time.time()
        settings = self.cfg.settings
        counts = self.core.stats.counts
        for _ in range(64):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not self.core.accept_tcp(peer[0], now):
                # Off mode: a stranger's connection is closed before a byte is read or written.
                self.core.stats.counts["dropped_unknown"] += 1
                if self.core.trace_on:
                    self.trace.write(self.core.event(now, peer[0], peer[1], "tcp", "", "", "drop",
                                                     "unknown (TCP connection closed)"))
                sock.close()
                continue
            # No source holds the server: a cap per source (a trunk's is its own, larger one), and
            # at the global cap only a known source gets in, in place of a connection still silent.
            gateway = self.core.classifier.is_gateway(peer[0])
            group = peer[0] if gateway else _source_group(peer[0])
            cap = settings.limits_tcp_max_per_gateway if gateway else settings.limits_tcp_max_per_source
            if self.per_source.get(group, 0) >= cap:
                counts["tcp_connections_refused_source"] += 1
                sock.close()
                continue
            if len(self.connections) >= settings.limits_tcp_max_connections and not self.make_room(peer[0]):
                counts["tcp_connections_refused"] += 1
                sock.close()
                continue
            sock.setblocking(False)
            conn = Connection(sock, peer[0], peer[1], now, group)
            self.connections[sock] = conn
            self.per_source[group] = self.per_source.get(group, 0) + 1
            self.selector.register(sock, selectors.EVENT_READ, self.on_tcp)

    def make_room(self, address: str) -> bool:
        """At tcp_max_connections: close the oldest connection that has not sent a complete message
        yet, if the newcomer is a gateway, a registered phone or inside an account network."""
        if self.core.classifier.source_kind(address, True) == policy.UNKNOWN:
            return False
        silent = [conn for conn in self.connections.values() if not conn.spoken]
        if not silent:
            return False
        self.core.stats.counts["tcp_connections_evicted"] += 1
        self.close(min(silent, key=lambda conn: conn.last))
        return True

    def on_tcp(self, sock: socket.socket) -> None:
        conn = self.connections.get(sock)
        if conn is None:
            return
        try:
            data = sock.recv(TCP_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        now = time.time()
        conn.inbuf += data
        limit = self.cfg.settings.limits_max_message_bytes
        while conn.sock in self.connections and not conn.closing:
            if conn.spoken and conn.inbuf.startswith(b"\r\n\r\n"):
                conn.last = now  # an RFC 5626 keep-alive keeps a connection that has spoken
            message, conn.inbuf, too_big = frame(conn.inbuf, limit)
            if too_big:
                self.core.stats.counts["dropped_oversize"] += 1
                self.close(conn)
                return
            if message is None:
                return
            conn.spoken = True
            conn.last = now
            try:
                actions = self.core.handle(message, conn.address, conn.port, "tcp", now)
            except Exception as exc:  # one bad message must never stop the server
                self.internal_error(exc)
                self.close(conn)
                return
            if self.pool is not None:
                self.pool.sync()
            self.carry_out(actions, sock, conn.address, conn)

    def send_tcp(self, conn: Connection, data: bytes) -> None:
        if conn.outbuf:
            conn.outbuf += data
            return
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close(conn)
            return
        if sent < len(data):
            conn.outbuf = data[sent:]
            self.selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self.on_tcp_event)

    def on_tcp_event(self, sock: socket.socket) -> None:
        conn = self.connections.get(sock)
        if conn is None:
            return
        if conn.outbuf:
            try:
                sent = sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close(conn)
                return
            conn.outbuf = conn.outbuf[sent:]
            if len(conn.outbuf) > 4 * TCP_READ or (conn.closing and not conn.outbuf):
                self.close(conn)  # its answer is out; or a peer that does not read its answers gets no more
                return
            if not conn.outbuf:
                self.selector.modify(sock, selectors.EVENT_READ, self.on_tcp)
        if not conn.closing:
            self.on_tcp(sock)

    def close_after_answer(self, conn: Connection) -> None:
        if not conn.outbuf:
            self.close(conn)
            return
        conn.closing = True  # on_tcp_event closes it once the answer is out; nothing more is read
        self.selector.modify(conn.sock, selectors.EVENT_WRITE, self.on_tcp_event)

    def close(self, conn: Connection) -> None:
        if self.connections.pop(conn.sock, None) is not None:
            left = self.per_source.pop(conn.group, 1) - 1
            if left:
                self.per_source[conn.group] = left
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn.sock)
            conn.sock.close()

    # ------------------------------------------------------------------ signals

    def on_wake(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.recv(512)

    # ------------------------------------------------------------------ what control.py and workers.py see

    # ControlHost: stats_snapshot (above), prometheus_text, set_trace, trace_status, reload.
    # PoolHost: udp_sockets, watch, unwatch, carry_out and internal_error (above).

    def prometheus_text(self) -> str:
        return self.core.stats.prometheus(self.stats_snapshot())

    def trace_status(self) -> tuple[bool, str]:
        return self.core.trace_on, self.trace.error

    def udp_sockets(self) -> list[socket.socket]:
        return [sock for (kind, _, _), sock in sorted(self.listeners.items()) if kind == "udp"]

    def watch(self, sock: socket.socket, callback) -> None:
        self.selector.register(sock, selectors.EVENT_READ, callback)

    def unwatch(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)

    def write_trace(self, event: dict) -> None:
        """A peer's trace record: the main process writes them all, so lines never interleave."""
        if self.trace.enabled:
            self.trace.write(event)

    def apply_config(self, cfg: config_mod.Config) -> None:
        """In a peer: the configuration the main process validated and applied."""
        self.cfg = cfg
        self.core.apply(cfg)

    # ------------------------------------------------------------------ a peer (forked by peers.py)

    def become_peer(self, index: int, link: Link) -> None:
        """In a freshly forked child: keep slot `index` of every group and serve until stopped."""
        signal.set_wakeup_fd(-1)  # the inherited wake-up socket belongs to the main loop
        for signum in (signal.SIGHUP, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_IGN)  # the main process reloads and switches the trace
        self.running = True
        self.selector.close()  # the inherited epoll is shared with the main process: never use it
        self.selector = selectors.DefaultSelector()
        for sock in (self.wake_r, self.wake_w, self.local.control, self.local.prometheus):
            if sock is not None:
                sock.close()
        for conn in self.connections.values():
            conn.sock.close()  # the main process's: a copy held here would keep them open
        self.connections, self.per_source = {}, {}
        self.main_trace = self.trace  # kept unflushed and unclosed: its buffer is the main process's
        self.trace = self.blocker = self.pool = link
        mine = {endpoint: group[index] for endpoint, group in self.groups.items()}
        for group in self.groups.values():
            for position, sock in enumerate(group):
                if position != index:
                    sock.close()  # the fd only: the main process keeps the socket in the group
        self.groups, self.listeners = {}, {}
        for endpoint, sock in mine.items():
            handler = self.on_udp if endpoint[0] == "udp" else self.on_accept
            self.selector.register(sock, selectors.EVENT_READ, handler)
            self.listeners[endpoint] = sock
        link.channel.setblocking(False)
        self.selector.register(link.channel, selectors.EVENT_READ, link.on_channel)

        def tick(now: float) -> None:
            if os.getppid() != link.parent:
                self.running = False  # the main process is gone
                return
            self.housekeeping(now)
            link.report()

        self.loop(tick)
        link.report()  # the last second's counts are not lost
        for conn in list(self.connections.values()):
            self.close(conn)

    def set_trace(self, enabled: bool) -> bool:
        ok = self.trace.switch(enabled)
        self.core.trace_on = self.trace.enabled
        if self.pool is not None:
            self.pool.broadcast({"trace": self.core.trace_on})
        log(f"trace {'on' if self.trace.enabled else 'off'}" + ("" if ok else f": {self.trace.error}"))
        return ok

    def reload(self) -> bool:
        """SIGHUP: a valid new configuration applies; an invalid one is refused and the old one stays."""
        counts = self.core.stats.counts
        try:
            cfg = config_mod.load(*self.paths)
            moved = self.open_listeners(_endpoints(cfg))
        except config_mod.ConfigError as exc:
            counts["reload_failures"] += 1
            for problem in exc.problems:
                log(f"reload refused, old configuration kept: {problem}")
            return False
        for warning in cfg.warnings:
            log(f"warning: {warning}")
        self.cfg = cfg
        self.core.apply(cfg)
        self.blocker.configure(cfg.settings.blocking_ipset4, cfg.settings.blocking_ipset6)
        if cfg.settings.trace_path != self.trace.path:
            self.trace.close()
            self.trace.path = cfg.settings.trace_path
        self.set_trace(cfg.settings.trace_enabled)
        counts["reloads"] += 1
        if isinstance(self.pool, Peers) and not moved:
            self.pool.reconfigure(cfg)  # peers keep their state: they take the configuration in place
        elif self.pool is not None:
            self.pool.restart()  # new configuration and sockets by re-forking (peers: new groups)
        log("configuration reloaded")
        return True


def run(paths: tuple[str, str, str], workers: int = 1) -> int:
    try:
        cfg = config_mod.load(*paths)
    except config_mod.ConfigError as exc:
        for problem in exc.problems:
            log(f"error: {problem}")
        return 2
    for warning in cfg.warnings:
        log(f"warning: {warning}")
    server = Server(cfg, paths, workers)
    try:
        server.open_listeners(_endpoints(cfg))
        server.open_local()
    except config_mod.ConfigError as exc:
        for problem in exc.problems:
            log(f"error: {problem}")
        server.shutdown()
        return 1
    server.install_signals()
    server.serve()
    return 0
