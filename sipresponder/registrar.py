"""Registrar bindings (RFC 3261 §10.3): expiry, Expires: 0 removal, SS_ENDPOINT_REGISTER_REPLACE.

A source address with a live binding counts as recognised (see policy.py), so the
registrar also keeps a reference count per source address.

SS_ENDPOINT_REGISTER_REPLACE, as VOS3000 uses it:
  On   a REGISTER from a new contact replaces the account's existing binding;
  Off  while a binding is live, a REGISTER from another contact is refused (403) and the
       first device keeps the account until it unregisters or expires.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Binding:
    contact: str
    source: str
    expires_at: float


class RegisterRefused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Registrar:
    def __init__(self, replace: bool, max_expires: int):
        self.replace = replace
        self.max_expires = max_expires
        self.bindings: dict[str, list[Binding]] = {}
        self.sources: dict[str, int] = {}  # source address -> live bindings from it
        self.version = 0  # bumped on every change, so watchers can skip comparing
        # Accounts changed by a REGISTER since the transport last looked (peers.py shares them with the
        # other processes); None when nobody looks. Expiry is left out: every process expires alike.
        self.changed: set[str] | None = None

    def configure(self, replace: bool, max_expires: int) -> None:
        self.replace = replace
        self.max_expires = max_expires

    def _set(self, user: str, bindings: list[Binding]) -> None:
        self.version += 1
        for old in self.bindings.pop(user, []):
            count = self.sources[old.source] - 1
            if count:
                self.sources[old.source] = count
            else:
                del self.sources[old.source]
        if bindings:
            self.bindings[user] = bindings
            for binding in bindings:
                self.sources[binding.source] = self.sources.get(binding.source, 0) + 1

    def adopt(self, user: str, bindings: list[Binding]) -> None:
        """Take another process's bindings of `user` as they are (not recorded in `changed`)."""
        self._set(user, bindings)

    def lookup(self, user: str, now: float) -> list[Binding]:
        return [b for b in self.bindings.get(user, []) if b.expires_at > now]

    def update(self, user: str, contacts: list[tuple[str, int]], wildcard: bool, source: str, now: float):
        """Apply one REGISTER; return the live bindings. contacts are (uri, requested expires)."""
        current = self.lookup(user, now)
        if wildcard:
            self._set(user, [])
            if self.changed is not None:
                self.changed.add(user)
            return []
        if not contacts:  # a query: RFC 3261 §10.2.3
            return current
        kept = list(current)
        for uri, expires in contacts:
            kept = [b for b in kept if b.contact != uri]
            if expires <= 0:
                continue
            others = [b for b in kept if b.contact != uri]
            if others and not self.replace:
                raise RegisterRefused(403, "Registered Elsewhere")
            if self.replace:
                kept = []
            kept.append(Binding(uri, source, now + min(expires, self.max_expires)))
        self._set(user, kept)
        if self.changed is not None:
            self.changed.add(user)
        return kept

    def expire(self, now: float) -> int:
        """Drop expired bindings; return how many went."""
        gone = 0
        for user in list(self.bindings):
            live = self.lookup(user, now)
            if len(live) != len(self.bindings[user]):
                gone += len(self.bindings[user]) - len(live)
                self._set(user, live)
        return gone

    def count(self) -> int:
        return sum(len(b) for b in self.bindings.values())
