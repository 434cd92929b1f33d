"""THE decision rule: who is recognised, and what each kind of request gets.

Recognition looks only at the transport source address (never a header: a From header
can be forged); the User-Agent is read only to drop a scanner, never to trust anyone.
Classifier is the one place that sorts a source into its kind; decide() looks the kind
up in TABLE. docs/decision-table.md reproduces TABLE; change both together.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable

from sipresponder.config import Endpoints, Network

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


class Classifier:
    """Sorts a source into its kind: the only code that decides who is recognised.

    `registered` is the registrar's live map of source addresses with bindings and
    `suspensions` its failure/suspension table (limits.Suspensions): state owned by the
    core (and, in a helper process, kept current by the main process's updates).
    """

    def __init__(self, registered: dict[str, int], suspensions) -> None:
        self.registered = registered
        self.suspensions = suspensions
        self.configure(Endpoints(), ())

    def configure(self, endpoints: Endpoints, scanner_user_agents: Iterable[str]) -> None:
        self.gateways = NetworkSet(endpoints.gateway_networks)
        self.account_networks = {name: NetworkSet(a.networks) for name, a in endpoints.accounts.items()}
        self.account_anywhere = any(a.anywhere for a in endpoints.accounts.values())
        self.all_account_networks = NetworkSet(n for a in endpoints.accounts.values() for n in a.networks)
        # One case-insensitive regex for the whole scanner list: one C call per request.
        names = [re.escape(ua) for ua in scanner_user_agents if ua]
        self.scanner_search = re.compile("|".join(names), re.IGNORECASE).search if names else None
        # User-Agent -> verdict: a scanner (or a phone) sends the same one again and again, and the
        # search over the whole list costs about as much as parsing the request. Bounded like
        # NetworkSet's cache, and only short values are kept, so a flood of made-up ones cannot grow it.
        self._scanner_seen: dict[str, bool] = {}

    def source_kind(self, address: str, register: bool) -> str:
        """GATEWAY, REGISTERED, ACCOUNT_NETWORK (only for a REGISTER) or UNKNOWN.

        SUSPENDED and SCANNER are asked separately (suspended(), is_scanner()): the core
        drops those before it looks at the kind, each with its own counter.
        """
        if address in self.gateways:
            return GATEWAY
        if address in self.registered:
            return REGISTERED
        if register and (self.account_anywhere or address in self.all_account_networks):
            return ACCOUNT_NETWORK
        return UNKNOWN

    def is_gateway(self, address: str) -> bool:
        return address in self.gateways

    def suspended(self, address: str, now: float) -> bool:
        # An IPv6 /64 is suspended as one (limits.failure_key); a gateway inside it never is.
        return self.suspensions.is_suspended(address, now) and address not in self.gateways

    def is_scanner(self, user_agent: str) -> bool:
        search = self.scanner_search
        if not user_agent or search is None:
            return False
        seen = self._scanner_seen.get(user_agent)
        if seen is None:
            seen = search(user_agent) is not None
            if len(user_agent) <= 256:
                if len(self._scanner_seen) >= 1024:
                    self._scanner_seen.clear()
                self._scanner_seen[user_agent] = seen
        return seen

    def allowed_from(self, account, address: str) -> bool:
        """Whether `account` (a config.Account) may authenticate from `address`."""
        return account.anywhere or address in self.account_networks[account.username]


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

