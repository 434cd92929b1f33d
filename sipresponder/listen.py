"""Opening a listening socket: the SIP listeners and the Prometheus endpoint share it."""

from __future__ import annotations

import contextlib
import socket


def open_listener(transport: str, address: str, port: int, reuseport: bool = False) -> socket.socket:
    """A bound, non-blocking UDP socket or listening TCP socket; raises OSError.

    `reuseport`: join the endpoint's SO_REUSEPORT group (steering.py), one socket per process.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            # "0.0.0.0" and "::" side by side need a v6-only socket; it also keeps
            # v4-mapped addresses out of the source-address checks.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if kind == socket.SOCK_DGRAM:
            with contextlib.suppress(OSError):  # a bigger buffer rides out bursts; best effort
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
