"""HTTP Digest for SIP (RFC 7616 as used by RFC 3261/8760): MD5 and SHA-256, qop=auth only.

Nonces are stateless: "<issue time hex>.<HMAC of it>.<counter hex>", so any nonce we issued can
be checked without storing it, and an old one is recognised as stale. The counter makes every
challenge's nonce unique (clients with a predictable cnonce would otherwise collide in the
replay table); it needs no MAC of its own because the digest response covers the whole nonce.

Replay protection is a bounded table of the highest nonce-count seen per (nonce, cnonce,
username); when that table has to forget an entry, every nonce issued up to the forgotten
one's time is treated as stale, so forgetting never reopens a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from sipresponder.config import Account
from sipresponder.limits import BoundedTable

HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

OK, STALE, REPLAY, FAIL = "ok", "stale", "replay", "fail"


def hexdigest(algorithm: str, text: str) -> str:
    return HASHES[algorithm](text.encode("utf-8")).hexdigest()


# One auth-param: key = "quoted \"string\"" or key = token (RFC 7616 §3.4 / RFC 7230 quoted-string).
_PARAM = re.compile(r'([^\s=,]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_ESCAPE = re.compile(r"\\(.)")


def parse_params(value: str) -> dict[str, str]:
    """Parse `Digest a="x", b=y` into {"a": "x", "b": "y"} (keys lower-case); {} if not Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params: dict[str, str] = {}
    for key, quoted, token in _PARAM.findall(rest):
        text = _ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        params[key.lower()] = text or token
    return params


@dataclass
class Credentials:
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str
    nc: str
    cnonce: str

    @classmethod
    def from_header(cls, value: str) -> Credentials | None:
        params = parse_params(value)
        if not params:
            return None
        try:
            return cls(
                username=params["username"],
                realm=params["realm"],
                nonce=params["nonce"],
                uri=params["uri"],
                response=params["response"].lower(),
                algorithm=params.get("algorithm", "MD5").upper(),
                qop=params.get("qop", "").lower(),
                nc=params.get("nc", "").lower(),
                cnonce=params.get("cnonce", ""),
            )
        except KeyError:
            return None


def ha1(account: Account, realm: str, algorithm: str) -> str | None:
    """The account's HA1 for this algorithm, from its password or its stored hash."""
    if account.password is not None:
        return hexdigest(algorithm, f"{account.username}:{realm}:{account.password}")
    return account.ha1_md5 if algorithm == "MD5" else account.ha1_sha256


def expected_response(ha1_hex: str, algorithm: str, method: str, creds: Credentials) -> str:
    ha2 = hexdigest(algorithm, f"{method}:{creds.uri}")
    return hexdigest(algorithm, f"{ha1_hex}:{creds.nonce}:{creds.nc}:{creds.cnonce}:auth:{ha2}")


class Authenticator:
    def __init__(self, secret: bytes, realm: str, algorithms: tuple[str, ...], lifetime: int, capacity: int):
        self.secret = secret
        self.realm = realm
        self.algorithms = algorithms
        self.lifetime = lifetime
        self.counts = BoundedTable(capacity)
        self.floor = -1  # nonces issued at or before this second are stale (see module doc)
        self._cached: tuple[int, str] = (-1, "")
        self._counter = 0
        self._ha1_cache: dict[tuple[str, str, str], tuple[Account, str]] = {}
        self._macs: dict[str, str] = {}  # nonce stamp -> its MAC

    def nonce(self, now: float) -> str:
        """A fresh nonce; one HMAC per second however many challenges go out."""
        second = int(now)
        if self._cached[0] != second:
            stamp = format(second, "x")
            self._cached = (second, f"{stamp}.{self._mac(stamp)}.")
        self._counter += 1
        return f"{self._cached[1]}{self._counter:x}"

    def challenges(self, now: float, stale: bool = False) -> list[str]:
        """WWW-Authenticate/Proxy-Authenticate values, most preferred algorithm first (RFC 8760)."""
        nonce = self.nonce(now)
        tail = ", stale=true" if stale else ""
        return [
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={algorithm}, qop="auth"{tail}'
            for algorithm in self.algorithms
        ]

    def _ha1(self, account: Account, algorithm: str) -> str | None:
        """HA1 from a password costs a hash per request: keep it, per account and algorithm.

        Keyed by name, and used only while the stored Account is the very object asked about
        (`is`, which the cache's own reference keeps meaningful): a reload brings new Account
        objects, so a changed password is never checked against an old HA1. Hashing the Account
        itself as the key would hash every field, its networks included, on every request.
        """
        key = (account.username, self.realm, algorithm)
        cached = self._ha1_cache.get(key)
        if cached is None or cached[0] is not account:
            if len(self._ha1_cache) > 100_000:
                self._ha1_cache.clear()  # bounded anyway
            cached = self._ha1_cache[key] = (account, ha1(account, self.realm, algorithm) or "")
        return cached[1] or None

    def _mac(self, stamp: str) -> str:
        """The MAC part of the nonces issued in one second; kept, since phones reuse a nonce."""
        mac = self._macs.get(stamp)
        if mac is None:
            if len(self._macs) >= 4096:
                self._macs.clear()  # forged stamps cannot grow it
            mac = self._macs[stamp] = hmac.digest(self.secret, stamp.encode(), "sha256").hex()[:24]
        return mac

    def nonce_state(self, nonce: str, now: float) -> str:
        stamp, dot, rest = nonce.partition(".")
        mac, _, counter = rest.partition(".")
        try:
            issued = int(stamp, 16)
            int(counter, 16)
        except ValueError:
            return FAIL
        if not dot or not hmac.compare_digest(mac, self._mac(stamp)):
            return FAIL
        if issued > now + 1:
            return FAIL
        if now - issued > self.lifetime or issued <= self.floor:
            return STALE
        return OK

    def verify(self, creds: Credentials, method: str, account: Account | None, now: float) -> str:  # noqa: PLR0911
        """OK, STALE (re-challenge, not a failure), REPLAY (same), or FAIL (counts as a failed attempt)."""
        if creds.realm != self.realm or creds.algorithm not in self.algorithms or creds.qop != "auth":
            return FAIL
        if len(creds.nc) != 8 or not creds.cnonce or creds.nc.strip("0123456789abcdef"):
            return FAIL
        state = self.nonce_state(creds.nonce, now)
        if state != OK:
            return state
        secret = self._ha1(account, creds.algorithm) if account is not None else None
        if secret is None:
            # Same work as a real check, so timing does not tell a missing account apart.
            expected_response("0" * 32, creds.algorithm, method, creds)
            return FAIL
        expected = expected_response(secret, creds.algorithm, method, creds)
        if not hmac.compare_digest(expected, creds.response):
            return FAIL
        key = (creds.nonce, creds.cnonce, creds.username)
        count = int(creds.nc, 16)
        if count <= self.counts.get(key, 0):
            return REPLAY
        evicted = self.counts.put(key, count)
        if evicted is not None:
            self.floor = max(self.floor, int(evicted[0][0].partition(".")[0], 16))
        return OK
