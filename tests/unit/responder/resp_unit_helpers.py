"""Shared helpers for the responder's unit tests: configurations and SIP requests as bytes."""

from sipresponder import config

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
    """A well-formed request; `headers` adds raw header lines (CRLF-separated, no trailing CRLF)."""
    lines = [
        f"{method} sip:{user}@198.18.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 198.18.10.5:5060;branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@198.18.0.1>;tag=abc",
        f"To: <sip:{user}@198.18.0.1>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"User-Agent: {ua}",
    ]
    if method == "REGISTER":
        lines.append(f"Contact: <sip:{user}@198.18.10.5:5060>")
    if headers:
        lines.append(headers)
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


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
    import hashlib  # noqa: PLC0415 - only the tests that authenticate need it

    from sipresponder.digest import parse_params  # noqa: PLC0415

    text = response.decode()
    offers = [
        line.split(":", 1)[1].strip()
        for line in text.split("\r\n")
        if line.lower().startswith(("www-authenticate:", "proxy-authenticate:"))
    ]
    params = next(parse_params(o) for o in offers if algorithm is None or f"algorithm={algorithm}" in o)
    algo = params["algorithm"]
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algo]

    def hx(s):
        return h(s.encode()).hexdigest()

    ha1 = hx(f"{user}:{params['realm']}:{password}")
    ha2 = hx(f"{method}:{uri}")
    count = f"{nc:08x}"
    resp = hx(f"{ha1}:{params['nonce']}:{count}:{cnonce}:auth:{ha2}")
    return (
        f'Authorization: Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", response="{resp}", algorithm={algo}, qop=auth, nc={count}, cnonce="{cnonce}"'
    )
