"""Bounded per-source state: rate buckets, failure counters, suspensions.

Every table has a fixed capacity and forgets its least recently used entry when full, so
a flood from millions of spoofed sources costs a bounded amount of memory. Forgetting is
safe in each case: a forgotten bucket starts full again (the flood still meets the cap on
the next burst), a forgotten failure count starts at zero, and suspensions are also pushed
to the kernel block set when that hook is on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class BoundedTable:
    """A dict with a capacity and least-recently-updated eviction."""

    __slots__ = ("_data", "capacity")

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._data: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def get(self, key: Hashable, default=None):
        return self._data.get(key, default)

    def put(self, key: Hashable, value) -> tuple | None:
        """Store; return the evicted (key, value) when the table was full."""
        data = self._data
        if key in data:
            data.move_to_end(key)
            data[key] = value
            return None
        data[key] = value
        if len(data) > self.capacity:
            return data.popitem(last=False)
        return None

    def pop(self, key: Hashable, default=None):
        return self._data.pop(key, default)

    def items(self):
        return list(self._data.items())


class RateLimiter:
    """Token bucket per source: `rate` requests/s sustained, `burst` at once. rate 0 = off."""

    def __init__(self, rate: int, burst: int, capacity: int):
        self.rate = rate
        self.burst = burst
        self.table = BoundedTable(capacity)

    def allow(self, source: str, now: float) -> bool:
        if not self.rate:
            return True
        tokens, stamp = self.table.get(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens < 1:
            self.table.put(source, (tokens, now))
            return False
        self.table.put(source, (tokens - 1, now))
        return True


class Suspensions:
    """SS_AUTHENTICATION_MAX_RETRY failures suspend a source for SS_AUTHENTICATION_FAILED_SUSPEND seconds."""

    def __init__(self, max_retry: int, suspend_seconds: int, capacity: int):
        self.max_retry = max_retry
        self.suspend_seconds = suspend_seconds
        self.failures = BoundedTable(capacity)
        self.until = BoundedTable(capacity)

    def configure(self, max_retry: int, suspend_seconds: int) -> None:
        self.max_retry = max_retry
        self.suspend_seconds = suspend_seconds

    def is_suspended(self, source: str, now: float) -> bool:
        until = self.until.get(source)
        if until is None:
            return False
        if now < until:
            return True
        self.until.pop(source)
        return False

    def fail(self, source: str, now: float) -> bool:
        """Count one failed authentication; True when this one suspends the source."""
        if not self.max_retry:
            return False
        count = self.failures.get(source, 0) + 1
        if count >= self.max_retry:
            self.failures.pop(source)
            self.until.put(source, now + self.suspend_seconds)
            return True
        self.failures.put(source, count)
        return False

    def succeed(self, source: str) -> None:
        self.failures.pop(source)

    def active(self, now: float) -> int:
        return sum(1 for _, until in self.until.items() if until > now)
