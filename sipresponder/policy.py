"""THE decision rule: who is recognised, and what each kind of request gets.

Recognition looks only at the transport source address (never a header: a From header
can be forged). docs/decision-table.md reproduces TABLE; change both together.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from sipresponder.config import Network

# Kinds of source, most trusted first; the first that matches wins.
SUSPENDED = "suspended"  # failed SS_AUTHENTICATION_MAX_RETRY times, for SS_AUTHENTICATION_FAILED_SUSPEND s
SCANNER = "scanner"  # User-Agent on the scanner list
GATEWAY = "gateway"  # address inside a [[gateway]] addresses entry
REGISTERED = "registered"  # address with a live registration binding
ACCOUNT_NETWORK = "account-network"  # inside some account's networks (only REGISTER benefits)
UNKNOWN = "unknown"

# What the responder does.
PROCESS = "process"  # normal RFC 3261 handling, digest authentication where it applies
CHALLENGE = "challenge"  # 401/407 with a fresh digest challenge; the credentials can never succeed
FORBID = "forbid"  # 403 Forbidden
DROP = "drop"  # not one byte back (UDP: nothing; TCP: nothing, the connection is closed)

REGISTER, ACK, OTHER = "REGISTER", "ACK", "other"

# (source kind, method kind) -> (action when SS_REPLY_UNAUTHORIZED=On, action when Off)
TABLE: dict[tuple[str, str], tuple[str, str]] = {
    (SUSPENDED, REGISTER): (DROP, DROP),
    (SUSPENDED, ACK): (DROP, DROP),
    (SUSPENDED, OTHER): (DROP, DROP),
    (SCANNER, REGISTER): (DROP, DROP),
    (SCANNER, ACK): (DROP, DROP),
    (SCANNER, OTHER): (DROP, DROP),
    (GATEWAY, REGISTER): (PROCESS, PROCESS),
    (GATEWAY, ACK): (PROCESS, PROCESS),
    (GATEWAY, OTHER): (PROCESS, PROCESS),
    (REGISTERED, REGISTER): (PROCESS, PROCESS),
    (REGISTERED, ACK): (PROCESS, PROCESS),
    (REGISTERED, OTHER): (PROCESS, PROCESS),
    # Every REGISTER from an account network is challenged alike, whether or not the
    # account exists or may register from there: nobody on that network can enumerate.
    (ACCOUNT_NETWORK, REGISTER): (PROCESS, PROCESS),
    (ACCOUNT_NETWORK, ACK): (DROP, DROP),
    (ACCOUNT_NETWORK, OTHER): (FORBID, DROP),
    (UNKNOWN, REGISTER): (CHALLENGE, DROP),
    (UNKNOWN, ACK): (DROP, DROP),
    (UNKNOWN, OTHER): (FORBID, DROP),
}


def method_kind(method: str) -> str:
    return method if method in (REGISTER, ACK) else OTHER


def decide(source_kind: str, method: str, reply_unauthorized: bool) -> str:
    on, off = TABLE[(source_kind, method_kind(method))]
    return on if reply_unauthorized else off


class NetworkSet:
    """Fast membership of an address string in a set of IPv4/IPv6 networks.

    Networks are grouped by prefix length, so a lookup costs one set probe per distinct
    prefix length rather than one comparison per network.
    """

    def __init__(self, networks: Iterable[Network]):
        self.exact: set[str] = set()
        self.by_prefix: dict[tuple[int, int], set[int]] = {}  # (family, prefix) -> network ints
        for net in networks:
            family = socket.AF_INET if net.version == 4 else socket.AF_INET6
            if net.prefixlen == net.max_prefixlen:
                self.exact.add(str(net.network_address))  # single addresses: a string look-up suffices
                continue
            self.by_prefix.setdefault((family, net.prefixlen), set()).add(int(net.network_address))
        self.any = bool(self.by_prefix)
        self._cache: dict[str, bool] = {}

    def __contains__(self, address: str) -> bool:
        if address in self.exact:
            return True
        if not self.any:
            return False
        known = self._cache.get(address)
        if known is None:
            if len(self._cache) >= 4096:
                self._cache.clear()  # bounded: a spoofed flood just keeps missing
            known = self._cache[address] = self._match(address)
        return known

    def _match(self, address: str) -> bool:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            value = int.from_bytes(socket.inet_pton(family, address), "big")
        except OSError:
            return False
        bits = 32 if family == socket.AF_INET else 128
        for (fam, prefix), nets in self.by_prefix.items():
            if fam == family and (value >> (bits - prefix)) << (bits - prefix) in nets:
                return True
        return False

