"""The responder's management side: the local control socket and the Prometheus endpoint.

Both are served from the event loop, one short exchange per connection (0.5 s timeout each:
a local client that stalls must not stall the loop for long), and reach the server only
through ControlHost. The CLI's side of the control socket is client.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from typing import Protocol

from sipresponder.config import ConfigError, Settings
from sipresponder.listen import open_listener


class ControlHost(Protocol):
    """What the endpoints need from the server, and nothing more."""

    def stats_snapshot(self) -> dict[str, float]: ...

    def prometheus_text(self) -> str: ...

    def set_trace(self, enabled: bool) -> bool: ...

    def trace_status(self) -> tuple[bool, str]:
        """(whether the trace is on, why the last switch failed)."""

    def reload(self) -> bool: ...


class Control:
    def __init__(self, host: ControlHost):
        self.host = host
        self.control: socket.socket | None = None
        self.control_path = ""
        self.prometheus: socket.socket | None = None

    def open(self, settings: Settings, watch: Callable[[socket.socket, Callable], None]) -> None:
        """Open what [stats] asks for and hand each socket to `watch`; ConfigError when one cannot open."""
        if settings.stats_control_socket:
            path = settings.stats_control_socket
            with contextlib.suppress(OSError):  # systemd's RuntimeDirectory makes it; by hand we may have to
                os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                old_umask = os.umask(0o177)  # only our user (and root) may talk to it
                try:
                    sock.bind(path)
                finally:
                    os.umask(old_umask)
                sock.listen(8)
            except OSError as exc:
                sock.close()
                raise ConfigError([f"cannot open control socket {path}: {exc.strerror}"]) from None
            sock.setblocking(False)
            self.control = sock
            self.control_path = path  # [stats] applies at restart: remember what we bound
            watch(sock, self.on_control)
        if settings.stats_prometheus_listen:
            host, _, port = settings.stats_prometheus_listen.rpartition(":")
            host = host.strip("[]")
            try:
                sock = open_listener("tcp", host, int(port))
            except OSError as exc:
                raise ConfigError(
                    [f"cannot listen for Prometheus on {settings.stats_prometheus_listen}: {exc.strerror}"]
                ) from None
            self.prometheus = sock
            watch(sock, self.on_prometheus)

    def close(self) -> None:
        for sock in (self.control, self.prometheus):
            if sock is not None:
                sock.close()
        if self.control is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.control_path)

    def command(self, line: str) -> dict:
        host = self.host
        words = line.split()
        if words == ["stats"]:
            return {"ok": True, "stats": host.stats_snapshot()}
        if len(words) == 2 and words[0] == "trace" and words[1] in ("on", "off"):
            ok = host.set_trace(words[1] == "on")
            enabled, error = host.trace_status()
            return {"ok": ok, "trace": enabled, **({"error": error} if not ok else {})}
        if words == ["reload"]:
            return {"ok": host.reload()}
        return {"ok": False, "error": "unknown command; try: stats, trace on, trace off, reload"}

    def on_control(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(0.5)  # a local client that stalls must not stall the loop for long
            try:
                line = sock.recv(256).decode("utf-8", "replace")
                sock.sendall((json.dumps(self.command(line)) + "\n").encode())
            except OSError:
                pass

    def on_prometheus(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(0.5)
            try:
                sock.recv(4096)
                body = self.host.prometheus_text().encode()
                head = (f"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                sock.sendall(head + body)
            except OSError:
                pass
