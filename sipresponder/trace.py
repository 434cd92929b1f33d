"""The request trace: one JSON line per request, dropped ones included.

Silent mode hides the server from strangers and so also from its operator; the trace
is how the operator still sees every request and why it got the answer (or silence) it got.
It never records a credential: only source, method, User-Agent, decision and reason.
"""

from __future__ import annotations

import json
import os


class Trace:
    def __init__(self, path: str, enabled: bool):
        self.path = path
        self.enabled = False
        self._file = None
        self.error = ""
        self.switch(enabled)

    def switch(self, enabled: bool) -> bool:
        """Turn the trace on or off; False (with .error set) when the file cannot be opened."""
        if enabled and self._file is None:
            try:
                directory = os.path.dirname(self.path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
            except OSError as exc:
                self.error = f"cannot open trace file {self.path}: {exc.strerror}"
                self.enabled = False
                return False
        if not enabled:
            self.close()
        self.enabled = enabled
        return True

    def write(self, event: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps(event, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.enabled = False
