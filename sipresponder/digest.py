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
from dataclasses import dataclass

from sipresponder.config import Account
from sipresponder.limits import BoundedTable

HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

OK, STALE, REPLAY, FAIL = "ok", "stale", "replay", "fail"


def hexdigest(algorithm: str, text: str) -> str:
    return HASHES[algorithm](text.encode("utf-8")).hexdigest()


def parse_params(value: str) -> dict[str, str]:
    """Parse `Digest a="x", b=y` into {"a": "x", "b": "y"} (keys lower-case); {} if not Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params: dict[str, str] = {}
    index, size = 0, len(rest)
    while index < size:
        while index < size and rest[index] in " \t,":
            index += 1
        eq = rest.find("=", index)
        if eq < 0:
            break
        key = rest[index:eq].strip().lower()
        index = eq + 1
        while index < size and rest[index] in " \t":
            index += 1
        if index < size and rest[index] == '"':
            end = index + 1
            chars = []
            while end < size and rest[end] != '"':
                if rest[end] == "\\" and end + 1 < size:
                    end += 1
                chars.append(rest[end])
                end += 1
            params[key] = "".join(chars)
            index = end + 1
        else:
            end = rest.find(",", index)
            end = size if end < 0 else end
            params[key] = rest[index:end].strip()
            index = end
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

    def nonce(self, now: float) -> str:
        """A fresh nonce; one HMAC per second however many challenges go out."""
        second = int(now)
        if self._cached[0] != second:
            stamp = format(second, "x")
            mac = hmac.new(self.secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
            self._cached = (second, f"{stamp}.{mac}.")
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

    def nonce_state(self, nonce: str, now: float) -> str:
        stamp, dot, rest = nonce.partition(".")
        mac, _, counter = rest.partition(".")
        try:
            issued = int(stamp, 16)
            int(counter, 16)
        except ValueError:
            return FAIL
        good = hmac.new(self.secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        if not dot or not hmac.compare_digest(mac, good):
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
        if len(creds.nc) != 8 or not creds.cnonce or any(c not in "0123456789abcdef" for c in creds.nc):
            return FAIL
        state = self.nonce_state(creds.nonce, now)
        if state != OK:
            return state
        secret = ha1(account, self.realm, creds.algorithm) if account is not None else None
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
