"""The state machine end to end, without sockets: decision table, registrar, auth, limits, trace."""
# ruff: noqa: S106, S107 - test accounts have test passwords

import re

import pytest
from resp_unit_helpers import ENDPOINTS, answer_challenge, make_config, sip

from sipresponder.core import Core

LAN = "198.18.10.5"  # inside account 1001's networks (lan_networks)
STRANGER = "203.0.113.7"
GATEWAY = "198.18.20.50"
NOW = 1_000_000.0


def core(softswitch: str = "", **kw) -> Core:
    return Core(make_config(softswitch, **kw), b"k" * 32, NOW)


def sends(actions):
    return [a[1] for a in actions if a[0] == "send"]


def status(actions):
    out = sends(actions)
    return int(out[0][8:11]) if out else None


def untagged(reply: bytes, user: bytes) -> bytes:
    """A reply with the account name, the To tag (derived from From) and the (unique) nonce blanked out."""
    return re.sub(rb';tag=[0-9a-f]{8}|z9hG4bK\w|nonce="[^"]*"', b"", reply.replace(user, b"X"))


def register(c: Core, user="1001", password="s3cret", source=LAN, now=NOW, cseq=1, extra="", **kw):
    """Full REGISTER exchange; returns the actions of the authenticated attempt."""
    call = f"{user}-{source}-{cseq}"
    first = c.handle(
        sip("REGISTER", user, cseq=cseq, headers=extra or "", branch=f"b{cseq}", call_id=call),
        source,
        5060,
        "udp",
        now,
    )
    assert status(first) == 401
    auth = answer_challenge(sends(first)[0], user, password, "REGISTER", **kw)
    headers = auth + ("\r\n" + extra if extra else "")
    return c.handle(
        sip("REGISTER", user, cseq=cseq + 1, headers=headers, branch=f"b{cseq + 1}", call_id=call),
        source,
        5060,
        "udp",
        now,
    )


@pytest.mark.parametrize("mode", ["On", "Off"])
@pytest.mark.parametrize("method", ["OPTIONS", "INVITE", "REGISTER", "ACK", "BYE"])
def test_stranger_gets_the_table_answer(mode, method):
    c = core(f"SS_REPLY_UNAUTHORIZED={mode}")
    actions = c.handle(sip(method, "1001"), STRANGER, 5060, "udp", NOW)
    expected = {"REGISTER": 401, "ACK": None}.get(method, 403) if mode == "On" else None
    assert status(actions) == expected


def test_off_mode_closes_a_strangers_tcp_connection_without_a_byte():
    c = core("SS_REPLY_UNAUTHORIZED=Off")
    actions = c.handle(sip("OPTIONS"), STRANGER, 5060, "tcp", NOW)
    assert actions == (("close",),)
    assert not c.accept_tcp(STRANGER, NOW)
    assert c.accept_tcp(GATEWAY, NOW)


def test_stranger_cannot_tell_an_existing_account_from_a_missing_one():
    c = core("SS_REPLY_UNAUTHORIZED=On")
    replies = {}
    for user in ("1001", "9999"):
        replies[user] = sends(c.handle(sip("REGISTER", user, call_id="same"), STRANGER, 5060, "udp", NOW))[0]
    # Only the user part of From/To differs; status, challenge and header set are identical.
    assert untagged(replies["1001"], b"1001") == untagged(replies["9999"], b"9999")


def test_stranger_with_the_right_password_is_still_refused():
    c = core("SS_REPLY_UNAUTHORIZED=On")
    actions = register(c, source=STRANGER)
    assert status(actions) == 401
    assert c.registrar.count() == 0


def test_in_off_mode_a_missing_account_on_the_lan_gets_the_same_challenge():
    c = core("SS_REPLY_UNAUTHORIZED=Off")
    real = sends(c.handle(sip("REGISTER", "1001", call_id="x", branch="z9hG4bKa"), LAN, 5060, "udp", NOW))[0]
    fake = sends(c.handle(sip("REGISTER", "7777", call_id="x", branch="z9hG4bKb"), LAN, 5060, "udp", NOW))[0]
    assert untagged(real, b"1001") == untagged(fake, b"7777")


@pytest.mark.parametrize("mode", ["On", "Off"])
@pytest.mark.parametrize("prefix", [b"\r\n", b"\r\n\r\n", b"\n"])
def test_a_crlf_before_a_lan_register_changes_nothing(mode, prefix):
    # RFC 3261 7.5: CRLFs before a request line are ignored. The LAN's REGISTER is challenged in both
    # modes, with or without them (Off mode used to drop it unparsed, as if it were no REGISTER).
    c = core(f"SS_REPLY_UNAUTHORIZED={mode}")
    assert status(c.handle(prefix + sip("REGISTER", "1001"), LAN, 5060, "udp", NOW)) == 401
    # And a stranger's other requests stay where the table puts them.
    assert status(c.handle(prefix + sip("OPTIONS"), LAN, 5060, "udp", NOW)) == (403 if mode == "On" else None)


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_account_registers_with_digest_and_becomes_recognised(algorithm):
    c = core("SS_REPLY_UNAUTHORIZED=Off")
    actions = register(c, algorithm=algorithm)
    assert status(actions) == 200
    assert b"Contact: <sip:1001@198.18.10.5:5060>;expires=3600" in sends(actions)[0]
    # Now recognised by address: OPTIONS gets 200 even in Off mode.
    assert status(c.handle(sip("OPTIONS", call_id="o"), LAN, 5060, "udp", NOW)) == 200


def test_account_outside_its_networks_fails_like_a_wrong_password():
    c = core()
    assert status(register(c, user="2002", password="other", source=LAN)) == 401  # 2002 is for 198.18.11.0/24
    assert status(register(c, user="2002", password="other", source="198.18.11.9")) == 200


def test_replayed_credentials_are_refused():
    c = core()
    first = c.handle(sip("REGISTER", branch="r1"), LAN, 5060, "udp", NOW)
    auth = answer_challenge(sends(first)[0], "1001", "s3cret", "REGISTER")
    ok = c.handle(sip("REGISTER", cseq=2, headers=auth, branch="r2"), LAN, 5060, "udp", NOW)
    assert status(ok) == 200
    replay = c.handle(sip("REGISTER", cseq=3, headers=auth, branch="r3"), LAN, 5060, "udp", NOW)
    assert status(replay) == 401
    higher = answer_challenge(sends(first)[0], "1001", "s3cret", "REGISTER", nc=2)
    assert (
        status(c.handle(sip("REGISTER", cseq=4, headers=higher, branch="r4"), LAN, 5060, "udp", NOW)) == 200
    )


def test_retransmission_gets_the_same_answer_not_a_replay_failure():
    c = core()
    first = c.handle(sip("REGISTER", branch="t1"), LAN, 5060, "udp", NOW)
    auth = answer_challenge(sends(first)[0], "1001", "s3cret", "REGISTER")
    request = sip("REGISTER", cseq=2, headers=auth, branch="t2")
    assert sends(c.handle(request, LAN, 5060, "udp", NOW)) == sends(c.handle(request, LAN, 5060, "udp", NOW))
    assert c.stats.counts["auth_failure"] == 0


def test_expired_nonce_is_stale_not_a_failure():
    c = core()
    first = c.handle(sip("REGISTER", branch="s1"), LAN, 5060, "udp", NOW)
    auth = answer_challenge(sends(first)[0], "1001", "s3cret", "REGISTER")
    later = c.handle(sip("REGISTER", cseq=2, headers=auth, branch="s2"), LAN, 5060, "udp", NOW + 301)
    assert status(later) == 401
    assert b"stale=true" in sends(later)[0]
    assert c.stats.counts["auth_failure"] == 0


def test_expires_zero_removes_the_binding_and_the_recognition():
    c = core("SS_REPLY_UNAUTHORIZED=Off")
    assert status(register(c)) == 200
    assert status(register(c, cseq=5, extra="Expires: 0", cnonce="second")) == 200
    assert c.registrar.count() == 0
    assert c.handle(sip("OPTIONS", call_id="gone"), LAN, 5060, "udp", NOW) == ()


def test_bindings_expire_with_ss_endpoint_expire():
    c = core("SS_ENDPOINT_EXPIRE=60")
    assert status(register(c)) == 200
    c.tick(NOW + 59)
    assert c.registrar.count() == 1
    c.tick(NOW + 61)
    assert c.registrar.count() == 0


def test_suspension_after_max_retry_then_silence_and_a_block_request():
    c = core("SS_AUTHENTICATION_MAX_RETRY=3\nSS_AUTHENTICATION_FAILED_SUSPEND=60")
    blocks = []
    for attempt in range(3):
        actions = register(c, password="wrong", cseq=10 * attempt + 1, cnonce=f"n{attempt}")
        blocks += [a for a in actions if a[0] == "block"]
    assert blocks == [("block", LAN, 60)]
    assert c.handle(sip("REGISTER", call_id="after"), LAN, 5060, "udp", NOW + 1) == ()
    assert status(c.handle(sip("REGISTER", call_id="later"), LAN, 5060, "udp", NOW + 61)) == 401


def test_strangers_guessing_passwords_are_suspended_too():
    c = core("SS_REPLY_UNAUTHORIZED=On\nSS_AUTHENTICATION_MAX_RETRY=2")
    for attempt in range(2):
        register(c, source=STRANGER, cseq=10 * attempt + 1)
    assert c.handle(sip("REGISTER", call_id="after"), STRANGER, 5060, "udp", NOW) == ()


def test_scanner_user_agent_is_dropped_even_from_a_gateway():
    c = core("SS_REPLY_UNAUTHORIZED=On")
    assert c.handle(sip("OPTIONS", ua="friendly-scanner"), GATEWAY, 5060, "udp", NOW) == ()
    assert c.handle(sip("OPTIONS", ua="SIPVicious 0.3"), STRANGER, 5060, "udp", NOW) == ()
    assert status(c.handle(sip("OPTIONS", ua="Yealink"), GATEWAY, 5060, "udp", NOW)) == 200


def test_gateway_invite_gets_the_configured_final_answer_and_cancel_and_bye_are_sane():
    c = core()
    invite = c.handle(sip("INVITE", branch="inv1"), GATEWAY, 5060, "udp", NOW)
    assert sends(invite)[0].startswith(b"SIP/2.0 486 Busy Here")
    assert c.handle(sip("ACK", branch="inv1"), GATEWAY, 5060, "udp", NOW) == []
    assert status(c.handle(sip("CANCEL", branch="inv1"), GATEWAY, 5060, "udp", NOW)) == 200
    assert status(c.handle(sip("CANCEL", branch="none"), GATEWAY, 5060, "udp", NOW)) == 481
    assert status(c.handle(sip("BYE", branch="bye"), GATEWAY, 5060, "udp", NOW)) == 481
    assert status(c.handle(sip("SUBSCRIBE", branch="sub"), GATEWAY, 5060, "udp", NOW)) == 501


def test_registered_phone_invite_is_authenticated_with_407_when_configured():
    c = core("SS_AUTHCHALLENGEMODE=407")
    first = c.handle(sip("REGISTER", branch="p1"), LAN, 5060, "udp", NOW)
    assert status(first) == 407 and b"Proxy-Authenticate: Digest" in sends(first)[0]
    auth = answer_challenge(sends(first)[0], "1001", "s3cret", "REGISTER").replace(
        "Authorization", "Proxy-Authorization"
    )
    assert status(c.handle(sip("REGISTER", cseq=2, headers=auth, branch="p2"), LAN, 5060, "udp", NOW)) == 200
    challenge = c.handle(sip("INVITE", branch="i1", call_id="i"), LAN, 5060, "udp", NOW)
    assert status(challenge) == 407
    auth = answer_challenge(sends(challenge)[0], "1001", "s3cret", "INVITE", cnonce="inv")
    final = c.handle(sip("INVITE", cseq=2, branch="i2", call_id="i", headers=auth), LAN, 5060, "udp", NOW)
    assert status(final) == 486


def test_register_replace_off_keeps_the_first_device():
    c = core("SS_ENDPOINT_REGISTER_REPLACE=Off")
    assert status(register(c)) == 200
    second = register(
        c, source="198.18.10.6", cseq=7, cnonce="2nd", extra="Contact: <sip:1001@198.18.10.6:5060>"
    )
    assert status(second) == 403
    c2 = core("SS_ENDPOINT_REGISTER_REPLACE=On")
    assert status(register(c2)) == 200
    assert (
        status(
            register(
                c2, source="198.18.10.6", cseq=7, cnonce="2nd", extra="Contact: <sip:1001@198.18.10.6:5060>"
            )
        )
        == 200
    )
    assert [b.source for b in c2.registrar.lookup("1001", NOW)] == ["198.18.10.6"]


def test_reload_keeps_registrations_and_applies_the_new_mode():
    c = core("SS_REPLY_UNAUTHORIZED=On")
    assert status(register(c)) == 200
    c.apply(make_config("SS_REPLY_UNAUTHORIZED=Off"))
    assert c.registrar.count() == 1
    assert status(c.handle(sip("OPTIONS", call_id="r"), LAN, 5060, "udp", NOW)) == 200
    assert c.handle(sip("OPTIONS", call_id="r"), STRANGER, 5060, "udp", NOW) == ()


def test_trace_records_dropped_requests_without_credentials():
    c = core("SS_REPLY_UNAUTHORIZED=Off")
    c.trace_on = True
    actions = c.handle(
        sip("REGISTER", "1001", ua="friendly-scanner", headers='Authorization: Digest response="x"'),
        STRANGER,
        5060,
        "udp",
        NOW,
    )
    (event,) = [a[1] for a in actions if a[0] == "trace"]
    assert event["decision"] == "drop" and event["reason"] == "scanner"
    assert event["src"] == STRANGER and event["method"] == "REGISTER" and event["ua"] == "friendly-scanner"
    assert "Digest" not in str(event)


def test_server_header_only_when_configured():
    settings = '[identity]\nserver_header = "sipguard"\n[stats]\nprometheus_listen = ""\n'
    c = Core(make_config(settings=settings), b"k" * 32, NOW)
    assert b"\r\nServer: sipguard\r\n" in sends(c.handle(sip("OPTIONS"), GATEWAY, 5060, "udp", NOW))[0]


def test_rate_limit_drops_a_noisy_source_but_not_a_trunk():
    settings = '[limits]\nrate_per_source = 5\nrate_burst = 5\n[stats]\nprometheus_listen = ""\n'
    c = Core(make_config(settings=settings), b"k" * 32, NOW)

    def answered(source):
        return sum(
            bool(sends(c.handle(sip("OPTIONS", branch=f"x{i}"), source, 5060, "udp", NOW))) for i in range(20)
        )

    assert answered(STRANGER) == 5
    assert c.stats.counts["dropped_rate"] == 15
    assert answered(GATEWAY) == 20


# ------------------------------------------------------------------ what counts as a failed attempt


def made_up_auth(index: int, user: str = "1001") -> str:
    """Credentials a spoofer can send without ever seeing our reply: the nonce is invented."""
    nonce = ("invented", f"{int(NOW):x}.{'0' * 24}.1", f"{int(NOW) + 3600:x}.x.2", "")[index % 4]
    realm = "sipguard" if index % 2 else "elsewhere"  # a wrong realm proves nothing either
    return (
        f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="sip:198.18.0.1", '
        f'response="{"0" * 64}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c{index}"'
    )


def blocks(actions):
    return [a for a in actions if a[0] == "block"]


@pytest.mark.parametrize(
    ("mode", "source"), [("Off", LAN), ("Off", GATEWAY), ("On", LAN), ("On", GATEWAY), ("On", STRANGER)]
)
def test_eight_registers_with_a_made_up_nonce_suspend_nobody(mode, source):
    c = core(f"SS_REPLY_UNAUTHORIZED={mode}")
    for i in range(8):
        request = sip("REGISTER", cseq=i + 1, branch=f"f{i}", call_id=f"forged-{i}", headers=made_up_auth(i))
        actions = c.handle(request, source, 5060, "udp", NOW + i)
        assert status(actions) == 401  # a fresh challenge, and nothing counted
        assert not blocks(actions)
    assert c.stats.counts["auth_failure"] == 0 and c.stats.counts["suspensions"] == 0
    # The ninth request, a legitimate one, is answered as if nothing had happened.
    if source == GATEWAY:
        assert status(c.handle(sip("OPTIONS", call_id="ninth"), source, 5060, "udp", NOW + 8)) == 200
    elif source == LAN:
        assert status(register(c, source=source, now=NOW + 8, cseq=100)) == 200
    else:
        assert status(c.handle(sip("REGISTER", call_id="ninth"), source, 5060, "udp", NOW + 8)) == 401


def test_wrong_answers_to_a_nonce_issued_to_the_source_still_suspend_at_max_retry():
    c = core()  # SS_AUTHENTICATION_MAX_RETRY defaults to 6
    for attempt in range(6):
        actions = register(c, password="wrong", cseq=10 * attempt + 1, cnonce=f"w{attempt}")
        assert blocks(actions) == ([("block", LAN, 180)] if attempt == 5 else [])
    assert c.stats.counts["auth_failure"] == 6
    assert c.handle(sip("REGISTER", call_id="after"), LAN, 5060, "udp", NOW + 1) == ()


def test_a_nonce_issued_to_one_address_proves_nothing_from_another():
    c = core()
    other = "198.18.10.6"  # on the same LAN, allowed to register 1001 as well
    first = sends(c.handle(sip("REGISTER", branch="a0"), LAN, 5060, "udp", NOW))[0]
    for i in range(8):
        wrong = answer_challenge(first, "1001", "wrong", "REGISTER", nc=i + 1)
        request = sip("REGISTER", cseq=i + 2, headers=wrong, branch=f"a{i + 1}")
        actions = c.handle(request, other, 5060, "udp", NOW)
        assert status(actions) == 401 and b"stale=true" in sends(actions)[0]
        assert not blocks(actions)
    assert c.stats.counts["auth_failure"] == 0
    # Even the right password does not carry a nonce from one address to another.
    right = answer_challenge(first, "1001", "s3cret", "REGISTER", nc=99)
    stolen = sip("REGISTER", cseq=20, headers=right, branch="a20")
    assert status(c.handle(stolen, other, 5060, "udp", NOW)) == 401
    contact = "Contact: <sip:1001@198.18.10.6:5060>"
    assert status(register(c, source=other, cseq=30, cnonce="own", extra=contact)) == 200
    assert status(register(c, source=LAN, cseq=40, cnonce="lan")) == 200


def test_a_gateway_is_never_suspended_nor_pushed_to_the_block_hook():
    c = core("SS_AUTHENTICATION_MAX_RETRY=3")
    for attempt in range(8):  # real wrong answers to nonces issued to the trunk itself
        actions = register(c, password="wrong", source=GATEWAY, cseq=10 * attempt + 1, cnonce=f"g{attempt}")
        assert status(actions) == 401 and not blocks(actions)
    assert c.stats.counts["auth_failure"] == 8 and c.stats.counts["suspensions"] == 0
    assert status(c.handle(sip("OPTIONS", call_id="still"), GATEWAY, 5060, "udp", NOW)) == 200


def test_a_suspended_address_that_becomes_a_gateway_is_released_on_reload():
    c = core("SS_AUTHENTICATION_MAX_RETRY=1")
    assert blocks(register(c, password="wrong")) == [("block", LAN, 180)]
    endpoints = ENDPOINTS.replace('addresses = ["198.18.20.50"', f'addresses = ["{LAN}", "198.18.20.50"')
    c.apply(make_config("SS_AUTHENTICATION_MAX_RETRY=1", endpoints=endpoints))
    assert status(c.handle(sip("OPTIONS", call_id="trunk"), LAN, 5060, "udp", NOW + 1)) == 200
