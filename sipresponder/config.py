"""The responder's three configuration files, loaded and validated.

softswitch.conf  VOS3000-style KEY=VALUE parameters (SS_REPLY_UNAUTHORIZED ...)
endpoints.toml   accounts, gateways/trunks and LAN networks
responder.toml   the responder's own settings (listen, auth, limits, trace ...)

Every loader collects *all* problems before failing, so `check-config` can print
one clear line per problem. Passwords never appear in a message.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

try:
    from tomllib import TOMLDecodeError
    from tomllib import loads as toml_loads
except ImportError:  # Python < 3.11 (Debian 11 has 3.9): Debian's python3-toml parses these files too
    from toml import TomlDecodeError as TOMLDecodeError
    from toml import loads as toml_loads

from sipresponder import softswitch_params

DEFAULT_SOFTSWITCH = "/etc/sipresponder/softswitch.conf"
DEFAULT_ENDPOINTS = "/etc/sipresponder/endpoints.toml"
DEFAULT_RESPONDER = "/etc/sipresponder/responder.toml"

# Evaluated at run time: `X | Y` would need Python 3.10 (Debian 11 has 3.9).
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007


class ConfigError(Exception):
    """One or more problems in the configuration; `problems` has one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


# --------------------------------------------------------------------------- softswitch.conf


_SOFTSWITCH_DEFAULTS = softswitch_params.defaults()


@dataclass(frozen=True)
class Softswitch:
    """softswitch.conf; keys, ranges and defaults are softswitch_params.PARAMS (shared with the module)."""

    reply_unauthorized: bool = _SOFTSWITCH_DEFAULTS["reply_unauthorized"]
    max_retry: int = _SOFTSWITCH_DEFAULTS["max_retry"]
    failed_suspend: int = _SOFTSWITCH_DEFAULTS["failed_suspend"]
    challenge_mode: int = _SOFTSWITCH_DEFAULTS["challenge_mode"]
    sip_ports: tuple[int, ...] = _SOFTSWITCH_DEFAULTS["sip_ports"]
    endpoint_expire: int = _SOFTSWITCH_DEFAULTS["endpoint_expire"]
    register_replace: bool = _SOFTSWITCH_DEFAULTS["register_replace"]


# The parameters softswitch.conf may set: one table with the softswitch module (softswitch_params.py is
# plugins/module_utils/sipguard_softswitch_params.py, shipped inside this package).
_SOFTSWITCH_KEYS = softswitch_params.PARAMS


def _near_miss(key: str) -> str | None:
    """The known key that `key` is a slip of (case, one or two letters, e.g. S for Z), if any.

    A real VOS3000 file has hundreds of keys we do not know, so only a key within a small edit
    distance of one of ours counts: within one edit for short keys, two for long ones.
    """
    upper = key.upper()
    for known in _SOFTSWITCH_KEYS:
        if upper == known:
            return known
        allowed = 1 if len(known) <= 12 else 2
        if abs(len(upper) - len(known)) <= allowed and _edit_distance(upper, known, allowed) <= allowed:
            return known
    return None


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance with adjacent transpositions; anything above `limit` is reported as limit + 1."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            cost = 0 if char_a == char_b else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                value = min(value, previous2[j - 2] + 1)
            current.append(value)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _unquote(value: str) -> str | None:
    """A value without its quotes; None when a quote is unbalanced (`"Off`, `Off'`, `"Off'`)."""
    if value[:1] in ("'", '"'):
        quote = value[0]
        if len(value) < 2 or value[-1] != quote or quote in value[1:-1]:
            return None
        return value[1:-1]
    if value[-1:] in ("'", '"'):
        return None
    return value


def _value(line: str, after_equals: str) -> str | None:
    """The value of a KEY=VALUE line as the softswitch module reads it (the shared LINE grammar: an
    end-of-line comment is not part of it); None for an unbalanced quote or text after a quoted value."""
    match = softswitch_params.LINE.match(line)
    tail = match.group("tail").strip() if match else ""
    if match and (not tail or tail.startswith(softswitch_params.COMMENT)):
        return match.group("quoted") if match.group("quote") else _unquote(match.group("plain"))
    return _unquote(after_equals.strip())


def parse_softswitch(
    text: str, origin: str = "softswitch.conf", strict: bool = False
) -> tuple[Softswitch, list[str]]:
    """Parse KEY=VALUE text; return (settings, warnings) or raise ConfigError.

    A key we do not know is a warning (a real VOS3000 file has hundreds), unless `strict` (a file
    sipguard manages holds only ours) or it is a near miss of one of ours: `SS_REPLY_UNAUTHORISED=Off`
    must not leave the responder answering strangers. A key given twice is an error (which one
    would win is a guess), and so is an unbalanced quote.
    """
    values: dict[str, object] = {}
    seen: dict[str, int] = {}
    problems: list[str] = []
    warnings: list[str] = []
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as some editors save
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(softswitch_params.COMMENT):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"{origin}:{number}: expected KEY=VALUE")
            continue
        unquoted = _value(line, value)
        if key not in _SOFTSWITCH_KEYS:
            known = _near_miss(key)
            if known is not None:
                problems.append(f"{origin}:{number}: unknown key {key}: did you mean {known}?")
            elif strict:
                problems.append(f"{origin}:{number}: unknown key {key} (--strict: this file holds only "
                                f"{', '.join(_SOFTSWITCH_KEYS)})")
            else:
                # A real VOS3000 file has hundreds of keys; they are not ours to judge.
                warnings.append(f"{origin}:{number}: unknown key {key} ignored")
            continue
        if key in seen:
            problems.append(f"{origin}:{number}: {key} is set again (first on line {seen[key]}); set it once")
            continue
        seen[key] = number
        if unquoted is None:
            problems.append(f"{origin}:{number}: {key}: unbalanced quote in {value.strip()!r}")
            continue
        parsed = softswitch_params.file_value(key, unquoted)
        if parsed is None:
            problems.append(f"{origin}:{number}: {key}={unquoted!r} is invalid, "
                            f"expected {softswitch_params.expected(key)}")
            continue
        values[_SOFTSWITCH_KEYS[key]["name"]] = parsed
    if problems:
        raise ConfigError(problems)
    return Softswitch(**values), warnings


def decode_softswitch(data: bytes, origin: str) -> str:
    """softswitch.conf as text. A VOS3000 file may carry comments in another encoding (GBK, Latin-1):
    a comment line that is not UTF-8 is blanked (line numbers are kept); any other such line is an
    error naming it.
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines, problems = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if raw.strip().startswith(softswitch_params.COMMENT.encode()):
                lines.append("")
            else:
                problems.append(f"{origin}:{number}: not UTF-8 (byte 0x{raw[exc.start]:02x}); "
                                "only a comment line may be in another encoding")
    if problems:
        raise ConfigError(problems)
    return "\n".join(lines)


# --------------------------------------------------------------------------- endpoints.toml


@dataclass(frozen=True)
class Account:
    username: str
    password: str | None = field(default=None, repr=False)  # never in a repr, so never in a log
    ha1_md5: str | None = field(default=None, repr=False)
    ha1_sha256: str | None = field(default=None, repr=False)
    networks: tuple[Network, ...] = ()  # where it may register from; empty means nowhere
    anywhere: bool = False  # networks = ["any"]: from any address (networks is then empty)


@dataclass(frozen=True)
class Endpoints:
    lan_networks: tuple[Network, ...] = ()
    accounts: dict[str, Account] = field(default_factory=dict)
    gateway_networks: tuple[Network, ...] = ()
    gateway_names: tuple[str, ...] = ()


def _network(value: object, where: str, problems: list[str]) -> Network | None:
    if not isinstance(value, str):
        problems.append(f"{where}: {value!r} is not a string")
        return None
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        problems.append(f"{where}: {value!r} is not an IP address or network")
        return None


def _networks(values: object, where: str, problems: list[str], everything: str) -> tuple[Network, ...]:
    """A list of networks; `everything` says why 0.0.0.0/0 or ::/0 is refused here."""
    if not isinstance(values, list):
        problems.append(f"{where}: must be a list of addresses or networks")
        return ()
    found = [net for net in (_network(value, where, problems) for value in values) if net is not None]
    for net in found:
        if net.prefixlen == 0:
            problems.append(f"{where}: {net} is every address; {everything}")
    return tuple(found)


# Why a /0 is refused, per place (0.0.0.0/0 and ::/0 are almost always a slip or a test setting left in).
_ANY_ACCOUNT = 'write networks = ["any"] if an account may really register from anywhere'
_ANY_LAN = 'lan_networks is where accounts register from; use networks = ["any"] on the accounts that need it'
_ANY_GATEWAY = "a gateway is trusted by address (INVITEs without digest): list the trunk's own addresses"


def _unknown_keys(table: dict, allowed: set[str], where: str, problems: list[str]) -> None:
    for key in sorted(set(table) - allowed):
        problems.append(f"{where}: unknown key {key!r}")


_HEX = set("0123456789abcdef")


def _account(entry: object, where: str, lan: tuple[Network, ...], problems: list[str]) -> Account | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a table")
        return None
    _unknown_keys(entry, {"username", "password", "ha1_md5", "ha1_sha256", "networks"}, where, problems)
    username = entry.get("username")
    if not isinstance(username, str) or not username or any(c in username for c in " \t@:;<>\"'"):
        problems.append(f"{where}: username must be a non-empty string without spaces, @, :, ; or quotes")
        return None
    where = f"{where} ({username})"
    secrets = {key: entry.get(key) for key in ("password", "ha1_md5", "ha1_sha256") if key in entry}
    if not secrets:
        problems.append(f"{where}: needs password, ha1_md5 or ha1_sha256")
    for key, value in secrets.items():
        if not isinstance(value, str) or not value:
            problems.append(f"{where}: {key} must be a non-empty string")
        elif key != "password" and (len(value) != {"ha1_md5": 32, "ha1_sha256": 64}[key]
                                    or not set(value.lower()) <= _HEX):
            problems.append(f"{where}: {key} must be a hex digest of the right length")
    anywhere = False
    if "networks" in entry:
        raw = entry["networks"]
        if raw == ["any"]:
            anywhere, networks = True, ()
        else:
            networks = _networks(raw, f"{where} networks", problems, _ANY_ACCOUNT)
    else:
        networks = lan
        if not lan:
            problems.append(f"{where}: no networks and no lan_networks, so it could register from nowhere")
    return Account(
        username=username,
        password=secrets.get("password"),
        ha1_md5=(secrets.get("ha1_md5") or "").lower() or None,
        ha1_sha256=(secrets.get("ha1_sha256") or "").lower() or None,
        networks=networks,
        anywhere=anywhere,
    )


def parse_endpoints(text: str, origin: str = "endpoints.toml") -> Endpoints:
    try:
        data = toml_loads(text.removeprefix("\ufeff"))
    except TOMLDecodeError as exc:
        raise ConfigError([f"{origin}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    _unknown_keys(data, {"lan_networks", "account", "gateway"}, origin, problems)
    lan = _networks(data.get("lan_networks", []), f"{origin} lan_networks", problems, _ANY_LAN)
    accounts: dict[str, Account] = {}
    for index, entry in enumerate(_list_of_tables(data, "account", origin, problems)):
        account = _account(entry, f"{origin} account #{index + 1}", lan, problems)
        if account is None:
            continue
        if account.username in accounts:
            problems.append(f"{origin}: account {account.username} is defined twice")
        accounts[account.username] = account
    gateway_nets: list[Network] = []
    names: list[str] = []
    for index, entry in enumerate(_list_of_tables(data, "gateway", origin, problems)):
        where = f"{origin} gateway #{index + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        _unknown_keys(entry, {"name", "addresses"}, where, problems)
        name = entry.get("name", f"gateway-{index + 1}")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: name must be a non-empty string")
            continue
        if not entry.get("addresses"):
            # An empty list would make a gateway that matches nothing: surely not what was meant.
            problems.append(f"{where} ({name}): needs addresses (at least one)")
        names.append(name)
        gateway_nets.extend(_networks(entry.get("addresses", []), f"{where} ({name}) addresses", problems,
                                      _ANY_GATEWAY))
    if problems:
        raise ConfigError(problems)
    return Endpoints(lan, accounts, tuple(gateway_nets), tuple(names))


def _list_of_tables(data: dict, key: str, origin: str, problems: list[str]) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{origin}: {key} must be an array of tables ([[{key}]])")
        return []
    return value


# --------------------------------------------------------------------------- responder.toml

# The scanner User-Agent substrings used when responder.toml names none: one data file in this package,
# which the roles read too (sipguard_scanner_user_agents in roles/sipguard_profile/defaults/main.yml).
SCANNER_USER_AGENTS_FILE = Path(__file__).with_name("scanner_user_agents.json")
DEFAULT_SCANNERS: tuple[str, ...] = tuple(json.loads(SCANNER_USER_AGENTS_FILE.read_text(encoding="utf-8")))

# section -> key -> (default, checker returning an error text or None)
_str = (str, "a string")
_int = (int, "an integer")
_bool = (bool, "true or false")
_list = (list, "a list of strings")

_RESPONDER_SCHEMA: dict[str, dict[str, tuple[object, tuple[type, str]]]] = {
    "listen": {
        "addresses": (["0.0.0.0", "::"], _list),  # noqa: S104 - a SIP server listens publicly
        "transports": (["udp", "tcp"], _list),
    },
    "auth": {"realm": ("sipguard", _str), "algorithms": (["MD5"], _list),
             "nonce_lifetime": (300, _int)},
    "limits": {"max_message_bytes": (8192, _int), "tcp_max_connections": (256, _int),
               "tcp_idle_seconds": (30, _int), "rate_per_source": (50, _int), "rate_burst": (100, _int),
               "max_tracked_sources": (65536, _int), "tcp_max_per_source": (16, _int),
               "tcp_max_per_gateway": (128, _int), "tcp_first_message_seconds": (10, _int)},
    "scanner": {"user_agents": (list(DEFAULT_SCANNERS), _list)},
    "trace": {"enabled": (False, _bool), "path": ("/var/log/sipresponder/trace.jsonl", _str)},
    "stats": {"prometheus_listen": ("127.0.0.1:9260", _str),
              "control_socket": ("/run/sipresponder/control.sock", _str)},
    "invite": {"final_status": (486, _int), "final_reason": ("Busy Here", _str)},
    "blocking": {"ipset4": ("", _str), "ipset6": ("", _str)},
    "identity": {"server_header": ("", _str)},
}  # fmt: skip

# (section, key) -> (low, high) for integers
_RANGES = {
    ("auth", "nonce_lifetime"): (10, 3600),
    ("limits", "max_message_bytes"): (1024, 65535),
    ("limits", "tcp_max_connections"): (1, 100000),
    ("limits", "tcp_idle_seconds"): (1, 3600),
    ("limits", "tcp_max_per_source"): (1, 100000),
    ("limits", "tcp_max_per_gateway"): (1, 100000),
    ("limits", "tcp_first_message_seconds"): (1, 3600),
    ("limits", "rate_per_source"): (0, 100000),
    ("limits", "rate_burst"): (1, 1000000),
    ("limits", "max_tracked_sources"): (16, 10000000),
    ("invite", "final_status"): (300, 699),
}


@dataclass(frozen=True)
class Settings:
    """responder.toml, flattened: attribute names are SECTION_KEY."""

    listen_addresses: tuple[str, ...]
    listen_transports: tuple[str, ...]
    auth_realm: str
    auth_algorithms: tuple[str, ...]
    auth_nonce_lifetime: int
    limits_max_message_bytes: int
    limits_tcp_max_connections: int
    limits_tcp_idle_seconds: int
    limits_rate_per_source: int
    limits_rate_burst: int
    limits_max_tracked_sources: int
    limits_tcp_max_per_source: int
    limits_tcp_max_per_gateway: int
    limits_tcp_first_message_seconds: int
    scanner_user_agents: tuple[str, ...]
    trace_enabled: bool
    trace_path: str
    stats_prometheus_listen: str
    stats_control_socket: str
    invite_final_status: int
    invite_final_reason: str
    blocking_ipset4: str
    blocking_ipset6: str
    identity_server_header: str


def _check_value(section: str, key: str, value: object, kind: tuple[type, str], problems: list[str]) -> None:
    where = f"[{section}] {key}"
    expected_type, text = kind
    # bool is an int in Python; keep true/false out of integer settings.
    if not isinstance(value, expected_type) or (expected_type is int and isinstance(value, bool)):
        problems.append(f"{where}: must be {text}")
        return
    if expected_type is list and not all(isinstance(item, str) for item in value):
        problems.append(f"{where}: must be a list of strings")
    if (section, key) in _RANGES:
        low, high = _RANGES[(section, key)]
        if not low <= value <= high:
            problems.append(f"{where}: {value} is out of range {low}-{high}")


# ipset's own limit is 31 bytes; the name is passed to `ipset add` as an argument, so no leading "-".
_IPSET_NAME = re.compile(r"[A-Za-z0-9_.:][A-Za-z0-9_.:-]{0,30}")


def _check_ipsets(values: dict[str, object], problems: list[str]) -> None:
    for key in ("blocking_ipset4", "blocking_ipset6"):
        name = values[key]
        if name and not _IPSET_NAME.fullmatch(name):
            problems.append(f"[{key.replace('_', '] ', 1)}: {name!r} is not an ipset name (1-31 of "
                            "A-Z a-z 0-9 _ . : -, not starting with -)")


def _check_semantics(values: dict[str, object], problems: list[str]) -> None:
    for address in values["listen_addresses"]:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            problems.append(f"[listen] addresses: {address!r} is not an IP address")
    if not values["listen_addresses"]:
        problems.append("[listen] addresses: at least one address is needed")
    bad = set(values["listen_transports"]) - {"udp", "tcp"}
    if bad or not values["listen_transports"]:
        problems.append('[listen] transports: choose from "udp" and "tcp"')
    algorithms = values["auth_algorithms"]
    if not algorithms or set(algorithms) - {"MD5", "SHA-256"}:
        problems.append('[auth] algorithms: choose from "SHA-256" and "MD5"')
    realm = values["auth_realm"]
    # The realm goes into every challenge as a quoted string: a quote, backslash or line break in it
    # would end that string or the header line (header injection into every 401).
    if not realm or '"' in realm or "\\" in realm or not realm.isprintable():
        problems.append("[auth] realm: must be non-empty, one line, without quotes, backslashes or "
                        "control characters")
    _check_ipsets(values, problems)
    listen = values["stats_prometheus_listen"]
    if listen:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"[stats] prometheus_listen: {listen!r} must be loopback-address:port or empty")
    for key in ("invite_final_reason", "identity_server_header"):
        if any(c in values[key] for c in "\r\n"):
            problems.append(f"[{key.replace('_', '] ', 1)}: must be a single line")


def parse_settings(text: str, origin: str = "responder.toml") -> Settings:
    try:
        data = toml_loads(text.removeprefix("\ufeff"))
    except TOMLDecodeError as exc:
        raise ConfigError([f"{origin}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    values: dict[str, object] = {}
    _unknown_keys(data, set(_RESPONDER_SCHEMA), origin, problems)
    for section, keys in _RESPONDER_SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"{origin}: [{section}] must be a table")
            table = {}
        _unknown_keys(table, set(keys), f"{origin} [{section}]", problems)
        for key, (default, kind) in keys.items():
            value = table.get(key, default)
            _check_value(section, key, value, kind, problems)
            values[f"{section}_{key}"] = tuple(value) if isinstance(value, list) else value
    if not problems:
        _check_semantics(values, problems)
    if problems:
        raise ConfigError([p if p.startswith(origin) else f"{origin}: {p}" for p in problems])
    return Settings(**values)


# --------------------------------------------------------------------------- all three


@dataclass(frozen=True)
class Config:
    softswitch: Softswitch
    endpoints: Endpoints
    settings: Settings
    warnings: tuple[str, ...] = ()


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.__class__.__name__}"]) from None


def _decode_toml(data: bytes, origin: str) -> str:
    """TOML must be UTF-8 (a comment too): the error names the line rather than rejecting the file blind."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{origin}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); "
                           "TOML files must be UTF-8 throughout, comments included"]) from None


def load(softswitch_path: str, endpoints_path: str, settings_path: str, strict: bool = False) -> Config:
    """Load and validate all three files, reporting the problems of every file at once.

    strict: an unknown softswitch.conf key is an error, not a warning (for a file sipguard manages).
    """
    problems: list[str] = []
    results: list[object] = []
    warnings: list[str] = []
    for path, parser, decode in (
        (softswitch_path, lambda text, origin: parse_softswitch(text, origin, strict), decode_softswitch),
        (endpoints_path, parse_endpoints, _decode_toml),
        (settings_path, parse_settings, _decode_toml),
    ):
        try:
            results.append(parser(decode(_read(path), path), path))
        except ConfigError as exc:
            problems.extend(exc.problems)
            results.append(None)
    if problems:
        raise ConfigError(problems)
    (softswitch, softswitch_warnings), endpoints, settings = results
    warnings.extend(softswitch_warnings)
    accounts_need = {a.username for a in endpoints.accounts.values() if not _usable(a, settings)}
    for username in sorted(accounts_need):
        problems.append(f"{endpoints_path}: account {username} has no secret for any of [auth] algorithms")
    if problems:
        raise ConfigError(problems)
    return Config(softswitch, endpoints, settings, tuple(warnings))


def _usable(account: Account, settings: Settings) -> bool:
    if account.password:
        return True
    return ("MD5" in settings.auth_algorithms and bool(account.ha1_md5)) or (
        "SHA-256" in settings.auth_algorithms and bool(account.ha1_sha256)
    )
