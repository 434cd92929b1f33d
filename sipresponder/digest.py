"""HTTP Digest for SIP (RFC 7616 as used by RFC 3261/8760): MD5 and SHA-256, qop=auth only.

Nonces are stateless: "<issue time hex>.<MAC>.<tag>", the MAC being a keyed hash of the issue
time and the address the challenge was sent to, so any nonce we issued can be checked without
storing it, and an old one is recognised as stale. The tag makes every challenge's nonce unique
(clients with a predictable cnonce would otherwise collide in the replay table); it needs no MAC
of its own because the digest response covers the whole nonce. It is random (32 bits from the
kernel, drawn in batches), not a counter: a server-wide counter told anyone who asked twice how many
challenges had gone out in between, to everyone, which is nobody's business.

Binding the nonce to the source address is what makes a failed attempt evidence: a wrong answer
to a nonce we sent to that address needs our reply, which a spoofer forging the address never
sees. A made-up nonce, or one sent to another address, is FOREIGN: re-challenged, never counted.
IPv6 nonces are bound to the full address (a client that changes address retries on the
stale=true challenge it gets).

Replay protection is a bounded table of the highest nonce-count seen per (nonce, cnonce,
username); when that table has to forget an entry, every nonce issued up to the forgotten
one's time is treated as stale, so forgetting never reopens a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from sipresponder.config import Account
from sipresponder.limits import BoundedTable
from sipresponder.sip_codec import auth_params as parse_params
from sipresponder.sip_codec import digest_hex as hexdigest
from sipresponder.sip_codec import digest_response

OK, STALE, REPLAY, FAIL = "ok", "stale", "replay", "fail"
FOREIGN = "foreign"  # not a nonce we issued to this address: forged, malformed, or another address's


_TAGS: list[str] = []  # random nonce tags not handed out yet


def _tag() -> str:
    """8 random hex digits (unique enough: a tag only needs to differ from those of the other nonces
    sent to the same address in the same second); one getrandom call per 64 of them."""
    if not _TAGS:
        pool = os.urandom(4 * 64).hex()
        _TAGS.extend(pool[i : i + 8] for i in range(0, len(pool), 8))
    return _TAGS.pop()


# A forked helper must not hand out the tags its parent still holds.
os.register_at_fork(after_in_child=_TAGS.clear)


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
    return digest_response(algorithm, ha1_hex, creds.nonce, method, creds.uri, creds.nc, creds.cnonce)


class Authenticator:
    def __init__(self, secret: bytes, realm: str, algorithms: tuple[str, ...], lifetime: int, capacity: int):
        self.secret = secret
        self.realm = realm
        self.algorithms = algorithms
        self.lifetime = lifetime
        self.counts = BoundedTable(capacity)
        self.floor = -1  # nonces issued at or before this second are stale (see module doc)
        self._ha1_cache: dict[tuple[str, str, str], tuple[Account, str]] = {}
        self._macs: dict[tuple[str, str], str] = {}  # (nonce stamp, address) -> its MAC

    def nonce(self, now: float, address: str) -> str:
        """A fresh nonce for `address`; one MAC per second and address however many challenges go out."""
        stamp = format(int(now), "x")
        return f"{stamp}.{self._mac(stamp, address)}.{_tag()}"

    def challenges(self, now: float, address: str, stale: bool = False,
                   stranger: bool = False) -> list[str]:  # fmt: skip
        """WWW-Authenticate/Proxy-Authenticate values, most preferred algorithm first (RFC 8760).

        stranger: one challenge, the first algorithm only, and no `algorithm=MD5` (MD5 is what an
        absent algorithm means, RFC 7616 §3.3). A stranger's answer can never succeed anyway; this
        keeps the reply to a REGISTER with a forged source small (about twice the request at most).
        """
        nonce = self.nonce(now, address)
        tail = ", stale=true" if stale else ""
        if stranger:
            first = self.algorithms[0]
            algorithm = "" if first == "MD5" else f", algorithm={first}"
            return [f'Digest realm="{self.realm}", nonce="{nonce}"{algorithm}, qop="auth"{tail}']
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

    def _mac(self, stamp: str, address: str) -> str:
        """The MAC of the nonces issued to one address in one second; kept, since phones reuse a nonce."""
        key = (stamp, address)
        mac = self._macs.get(key)
        if mac is None:
            if len(self._macs) >= 4096:
                self._macs.clear()  # forged stamps and spoofed addresses cannot grow it
            # Keyed BLAKE2b is a MAC in its own right and about five times cheaper than HMAC-SHA256
            # here, which matters now that this runs per source and second, not just per second.
            message = f"{stamp}|{address}".encode()
            mac = self._macs[key] = hashlib.blake2b(message, key=self.secret, digest_size=10).hexdigest()
        return mac

    def nonce_state(self, nonce: str, now: float, address: str) -> str:
        """OK, STALE (ours for this address, but expired or forgotten), or FOREIGN."""
        stamp, dot, rest = nonce.partition(".")
        mac, _, counter = rest.partition(".")
        try:
            issued = int(stamp, 16)
            int(counter, 16)
        except ValueError:
            return FOREIGN
        # compare_digest refuses non-ASCII text with a TypeError: a forged nonce must not get that far.
        if not dot or not mac.isascii() or not hmac.compare_digest(mac, self._mac(stamp, address)):
            return FOREIGN
        if issued > now + 1:
            return FOREIGN
        if now - issued > self.lifetime or issued <= self.floor:
            return STALE
        return OK

    def verify(self, creds: Credentials, method: str, account: Account | None, now: float,  # noqa: PLR0911
               address: str) -> str:  # fmt: skip
        """OK, STALE or FOREIGN (re-challenge, not a failure), REPLAY (same), or FAIL (a failed attempt).

        The nonce is checked first: whatever else is wrong with an answer to a nonce that was not
        sent to `address`, it proves no round trip, so it must not count as a failure.
        """
        state = self.nonce_state(creds.nonce, now, address)
        if state != OK:
            return state
        if creds.realm != self.realm or creds.algorithm not in self.algorithms or creds.qop != "auth":
            return FAIL
        if len(creds.nc) != 8 or not creds.cnonce or creds.nc.strip("0123456789abcdef"):
            return FAIL
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
