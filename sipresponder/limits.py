"""Bounded per-source state: rate buckets, failure counters, suspensions.

Every table has a fixed capacity and forgets its least recently used entry when full, so
a flood from millions of spoofed sources costs a bounded amount of memory. Forgetting is
safe in each case: a forgotten bucket starts full again (the flood still meets the cap on
the next burst), a forgotten failure count starts at zero, and suspensions are also pushed
to the kernel block set when that hook is on.
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from collections.abc import Hashable


def failure_key(address: str) -> str:
    """Whose failures an address's count toward: the address itself, or for IPv6 its /64.

    One IPv6 host usually holds a whole /64 and can send from any address in it, so counting per
    address would give an attacker 2**64 fresh counters. The key is the /64's first address
    (`2001:db8:1:2::`), which the kernel block set (`netmask 64`) takes as it is.
    """
    if ":" not in address:
        return address
    try:
        packed = socket.inet_pton(socket.AF_INET6, address)
    except OSError:
        return address
    return socket.inet_ntop(socket.AF_INET6, packed[:8] + bytes(8))


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
    """SS_AUTHENTICATION_MAX_RETRY failures suspend a source for SS_AUTHENTICATION_FAILED_SUSPEND seconds.

    Sources are counted and suspended by failure_key: an IPv4 address, or an IPv6 /64.
    """

    def __init__(self, max_retry: int, suspend_seconds: int, capacity: int):
        self.max_retry = max_retry
        self.suspend_seconds = suspend_seconds
        self.failures = BoundedTable(capacity)
        self.until = BoundedTable(capacity)

    def configure(self, max_retry: int, suspend_seconds: int) -> None:
        self.max_retry = max_retry
        self.suspend_seconds = suspend_seconds

    def is_suspended(self, source: str, now: float) -> bool:
        if ":" in source:
            source = failure_key(source)
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
        source = failure_key(source)
        count = self.failures.get(source, 0) + 1
        if count >= self.max_retry:
            self.failures.pop(source)
            self.until.put(source, now + self.suspend_seconds)
            return True
        self.failures.put(source, count)
        return False

    def succeed(self, source: str) -> None:
        self.failures.pop(failure_key(source))

    def release(self, exempt) -> None:
        """Forget the failures and suspensions of every source for which exempt(source) is true."""
        for table in (self.failures, self.until):
            for source, _ in table.items():
                if exempt(source):
                    table.pop(source)

    def active(self, now: float) -> int:
        return sum(1 for _, until in self.until.items() if until > now)


class AccountGuard:
    """Failed digest answers counted per account name, so guesses spread over many sources still meet
    a limit, without ever locking the real phone out.

    After `max_failures` failures for one name (from any sources), its password is checked at most
    once per delay: 1 s, then doubling with every further failure up to `max_delay`. An attempt
    inside the delay is answered like a wrong one and not checked at all, so a right guess is
    worth nothing then. Sources the caller trusts for the account (where it is registered, or
    recently authenticated) are neither counted nor delayed: that is what keeps the phone in.
    A name with no failure for QUIET seconds starts again from zero.
    """

    QUIET = 3600.0

    def __init__(self, max_failures: int, max_delay: int, capacity: int):
        self.max_failures = max_failures
        self.max_delay = max_delay
        self.table = BoundedTable(capacity)  # name -> (failures, next check allowed at, last failure)

    def configure(self, max_failures: int, max_delay: int) -> None:
        self.max_failures = max_failures
        self.max_delay = max_delay

    def _record(self, name: str, now: float) -> tuple[int, float, float] | None:
        record = self.table.get(name)
        if record is not None and now - record[2] > self.QUIET:
            self.table.pop(name)
            return None
        return record

    def allows(self, name: str, now: float) -> bool:
        """Whether a password check for `name` may happen now (from an untrusted source)."""
        record = self._record(name, now)
        return record is None or now >= record[1]

    def fail(self, name: str, now: float) -> float:
        """Count one failure; return the delay before the next check (0 while under the limit)."""
        if not self.max_failures:
            return 0.0
        record = self._record(name, now)
        failures = (record[0] if record else 0) + 1
        over = failures - self.max_failures
        delay = 0.0 if over < 0 else float(min(2 ** min(over, 32), self.max_delay))
        self.table.put(name, (failures, now + delay, now))
        return delay
