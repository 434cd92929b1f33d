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
    """Token bucket per source: `rate` requests/s sustained, `burst` at once. rate 0 = off.

    Kept as one float per source (the generic cell rate algorithm): the time at which the
    source's bucket is full again. A bucket with `tokens` at time `now` is the same as a
    full-again time of now + (burst - tokens) / rate, so the answers are those of the token
    bucket, for a third of the memory of a (tokens, time) pair per tracked source.
    """

    def __init__(self, rate: int, burst: int, capacity: int):
        self.rate = rate
        self.burst = burst
        self.table = BoundedTable(capacity)

    def allow(self, source: str, now: float) -> bool:
        rate = self.rate
        if not rate:
            return True
        full_at = self.table.get(source, now)
        full_at = max(full_at, now)  # a full bucket does not fill beyond burst
        # At least one token left <=> (full_at - now) * rate <= burst - 1 (a billionth of a token
        # of slack, so that float rounding never takes a token the exact arithmetic would give).
        if (full_at - now) * rate > self.burst - 1 + 1e-9:
            self.table.put(source, full_at)
            return False
        self.table.put(source, full_at + 1 / rate)
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

    def release(self, exempt) -> None:
        """Forget the failures and suspensions of every source for which exempt(source) is true."""
        for table in (self.failures, self.until):
            for source, _ in table.items():
                if exempt(source):
                    table.pop(source)

    def active(self, now: float) -> int:
        return sum(1 for _, until in self.until.items() if until > now)
