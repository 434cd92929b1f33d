"""The CLI's side of the control socket: send one command, read the JSON answer."""

from __future__ import annotations

import errno
import json
import os
import socket


def control_request(path: str, line: str, timeout: float = 3.0) -> dict:
    """Send one command to a running responder's control socket (used by the CLI)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
                reason += " (is sipresponder running?)"
            raise ConnectionError(f"control socket {path}: {reason}") from None
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise ConnectionError(f"control socket {path}: unreadable answer") from None
