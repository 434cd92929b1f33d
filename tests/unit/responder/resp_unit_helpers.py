"""Shared helpers for the responder's unit tests: configurations and SIP requests as bytes."""

from sipresponder import config, sip_codec

ENDPOINTS = """
lan_networks = ["198.18.10.0/24"]
[[account]]
username = "1001"
password = "s3cret"
[[account]]
username = "2002"
password = "other"
networks = ["198.18.11.0/24"]
[[gateway]]
name = "trunk-a"
addresses = ["198.18.20.50", "2001:2:0:20::/64"]
"""

SETTINGS = """
[auth]
realm = "sipguard"
algorithms = ["SHA-256", "MD5"]
[limits]
rate_per_source = 0
[stats]
prometheus_listen = ""
control_socket = ""
"""


def make_config(softswitch: str = "", endpoints: str = ENDPOINTS, settings: str = SETTINGS) -> config.Config:
    soft, warnings = config.parse_softswitch(softswitch)
    return config.Config(
        soft, config.parse_endpoints(endpoints), config.parse_settings(settings), tuple(warnings)
    )


def sip(
    method: str = "OPTIONS",
    user: str = "1001",
    *,
    headers: str = "",
    body: str = "",
    cseq: int = 1,
    branch: str = "z9hG4bKtest1",
    ua: str = "unit-test",
    call_id: str = "call-1@test",
) -> bytes:
    """A well-formed request from a phone at 198.18.10.5 (the codec's builder); `headers` adds raw
    header lines (CRLF-separated, no trailing CRLF)."""
    return sip_codec.build_request(
        method,
        f"sip:{user}@198.18.0.1",
        "198.18.10.5:5060",
        branch,
        f"sip:{user}@198.18.0.1",
        "abc",
        call_id,
        cseq,
        contact=f"sip:{user}@198.18.10.5:5060" if method == "REGISTER" else None,
        user_agent=ua,
        headers=[headers] if headers else [],
        body=body,
    )


def answer_challenge(
    response: bytes,
    user: str,
    password: str,
    method: str,
    *,
    nc: int = 1,
    cnonce: str = "c0ffee",
    algorithm: str | None = None,
    uri: str = "sip:198.18.0.1",
) -> str:
    """An Authorization header line answering the first (or the named algorithm's) challenge in a reply."""
    params = next(p for _name, p in sip_codec.challenges(response) if algorithm in (None, p.get("algorithm")))
    return "Authorization: " + sip_codec.DigestClient(params, user, password, method, uri).header(nc, cnonce)
