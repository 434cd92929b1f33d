"""Bounded tables, rate buckets, suspensions, nonces and the network sets behind the decision table."""
# ruff: noqa: S106 - test accounts have test passwords

import ipaddress

import pytest
from resp_unit_helpers import make_config

from sipresponder import policy
from sipresponder.config import Account
from sipresponder.digest import (
    FAIL,
    FOREIGN,
    OK,
    REPLAY,
    STALE,
    Authenticator,
    Credentials,
    expected_response,
    ha1,
)
from sipresponder.limits import BoundedTable, RateLimiter, Suspensions
from sipresponder.policy import NetworkSet


def test_bounded_table_forgets_the_least_recently_updated():
    table = BoundedTable(3)
    for key in "abc":
        table.put(key, 1)
    table.put("a", 2)  # refreshes a
    assert table.put("d", 1) == ("b", 1)
    assert "b" not in table and len(table) == 3


def test_tables_stay_bounded_under_a_flood_of_spoofed_sources():
    limiter = RateLimiter(rate=10, burst=10, capacity=1000)
    suspensions = Suspensions(max_retry=3, suspend_seconds=60, capacity=1000)
    for i in range(200_000):
        source = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        limiter.allow(source, 0.0)
        suspensions.fail(source, 0.0)
    assert len(limiter.table) == 1000
    assert len(suspensions.failures) <= 1000 and len(suspensions.until) <= 1000


def test_rate_limiter_refills_over_time():
    limiter = RateLimiter(rate=2, burst=2, capacity=10)
    assert [limiter.allow("s", 0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("s", 0.5)  # one token back after half a second at 2/s
    assert RateLimiter(0, 1, 10).allow("s", 0.0)  # rate 0 = off


def test_max_retry_zero_never_suspends():
    suspensions = Suspensions(max_retry=0, suspend_seconds=60, capacity=10)
    assert not any(suspensions.fail("s", 0.0) for _ in range(100))


def test_network_set_matches_by_prefix_for_both_families():
    nets = NetworkSet(ipaddress.ip_network(n) for n in ["198.18.10.0/24", "198.18.20.50/32", "2001:2::/48"])
    assert "198.18.10.77" in nets and "198.18.20.50" in nets and "2001:2::1" in nets
    assert "198.18.11.1" not in nets and "198.18.20.51" not in nets and "2001:3::1" not in nets
    assert "not-an-address" not in nets


def test_decision_table_is_complete_and_silent_for_strangers_in_off_mode():
    for kind in (
        policy.SUSPENDED,
        policy.SCANNER,
        policy.GATEWAY,
        policy.REGISTERED,
        policy.ACCOUNT_NETWORK,
        policy.UNKNOWN,
    ):
        for method in ("REGISTER", "ACK", "INVITE"):
            assert policy.decide(kind, method, True) in (
                policy.PROCESS,
                policy.CHALLENGE,
                policy.FORBID,
                policy.DROP,
            )
    for method in ("REGISTER", "ACK", "OPTIONS", "INVITE"):
        assert policy.decide(policy.UNKNOWN, method, False) == policy.DROP
    assert policy.decide(policy.UNKNOWN, "REGISTER", True) == policy.CHALLENGE
    assert policy.decide(policy.UNKNOWN, "OPTIONS", True) == policy.FORBID


HERE = "198.18.10.5"  # the address the nonces in these tests were sent to


def _creds(auth, account, nonce, nc="00000001", cnonce="abc", algorithm="MD5", password=None):
    creds = Credentials("1001", auth.realm, nonce, "sip:x", "", algorithm, "auth", nc, cnonce)
    secret = (
        ha1(account, auth.realm, algorithm)
        if password is None
        else ha1(Account("1001", password=password), auth.realm, algorithm)
    )
    creds.response = expected_response(secret, algorithm, "REGISTER", creds)
    return creds


def test_nonces_expire_are_unforgeable_and_counts_cannot_replay():
    auth = Authenticator(b"s" * 32, "sipguard", ("SHA-256", "MD5"), lifetime=300, capacity=100)
    account = make_config().endpoints.accounts["1001"]
    nonce = auth.nonce(1000.0, HERE)
    assert auth.verify(_creds(auth, account, nonce), "REGISTER", account, 1000.0, HERE) == OK
    assert auth.verify(_creds(auth, account, nonce), "REGISTER", account, 1000.0, HERE) == REPLAY
    assert auth.verify(_creds(auth, account, nonce, nc="00000002"), "REGISTER", account, 1000.0, HERE) == OK
    assert auth.verify(_creds(auth, account, nonce, cnonce="x"), "REGISTER", account, 1301.0, HERE) == STALE
    wrong = _creds(auth, account, nonce, password="wrong")
    assert auth.verify(wrong, "REGISTER", account, 1000.0, HERE) == FAIL
    assert auth.nonce(1000.0, HERE) != nonce  # unique per challenge, even within one second
    forged = nonce.split(".")[0] + ".000000000000000000000000.1"
    assert auth.verify(_creds(auth, account, forged), "REGISTER", account, 1000.0, HERE) == FOREIGN
    odd = nonce.split(".")[0] + ".\u00e9t\u00e9.1"  # non-ASCII: refused, not a TypeError
    assert auth.verify(_creds(auth, account, odd), "REGISTER", account, 1000.0, HERE) == FOREIGN
    sha = _creds(auth, account, nonce, algorithm="SHA-256", cnonce="sha")
    assert auth.verify(sha, "REGISTER", account, 1000.0, HERE) == OK
    assert auth.verify(_creds(auth, account, nonce, cnonce="n"), "REGISTER", None, 1000.0, HERE) == FAIL


@pytest.mark.parametrize(
    ("issued_to", "answered_from"), [(HERE, "198.18.10.6"), ("2001:db8::1", "2001:db8::2")]
)
def test_a_nonce_is_bound_to_the_address_it_was_sent_to(issued_to, answered_from):
    auth = Authenticator(b"s" * 32, "sipguard", ("MD5",), lifetime=300, capacity=100)
    account = make_config().endpoints.accounts["1001"]
    nonce = auth.nonce(1000.0, issued_to)
    # Another address, even in the same IPv6 /64, proves no round trip: neither a success nor a failure.
    assert auth.verify(_creds(auth, account, nonce), "REGISTER", account, 1000.0, answered_from) == FOREIGN
    wrong = _creds(auth, account, nonce, password="wrong", cnonce="w")
    assert auth.verify(wrong, "REGISTER", account, 1000.0, answered_from) == FOREIGN
    assert auth.verify(wrong, "REGISTER", account, 1000.0, issued_to) == FAIL
    assert auth.verify(_creds(auth, account, nonce), "REGISTER", account, 1000.0, issued_to) == OK


def test_forgetting_a_nonce_count_makes_older_nonces_stale_instead_of_replayable():
    auth = Authenticator(b"s" * 32, "sipguard", ("MD5",), lifetime=300, capacity=2)
    account = make_config().endpoints.accounts["1001"]
    old = auth.nonce(1000.0, HERE)
    first = _creds(auth, account, old, cnonce="first")
    assert auth.verify(first, "REGISTER", account, 1000.0, HERE) == OK
    for i in range(3):  # push "first" out of the two-entry table
        creds = _creds(auth, account, auth.nonce(1001.0 + i, HERE), cnonce=f"c{i}")
        assert auth.verify(creds, "REGISTER", account, 1001.0 + i, HERE) == OK
    assert auth.verify(first, "REGISTER", account, 1010.0, HERE) == STALE


def test_digest_params_keep_quoted_commas_and_unescape_quotes():
    from sipresponder.digest import parse_params  # noqa: PLC0415

    params = parse_params('Digest username="a\\"b",uri="sip:x;p=1,2" , nc=00000001,qop=auth, opaque=""')
    assert params == {"username": 'a"b', "uri": "sip:x;p=1,2", "nc": "00000001", "qop": "auth", "opaque": ""}
    assert parse_params('Basic dXNlcjpwYXNz') == {}


def test_single_addresses_need_no_prefix_walk():
    nets = NetworkSet([ipaddress.ip_network("198.18.20.50/32")])
    assert not nets.any and "198.18.20.50" in nets and "198.18.20.51" not in nets
