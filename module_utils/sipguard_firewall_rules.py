"""Pure rendering of the sipguard firewall layer (no I/O, no subprocesses).

The module ``sipguard_firewall`` turns its options into a ``FirewallSpec`` with
``build_spec`` (which rejects bad input with ``FirewallConfigError``), then asks
this file for the ``iptables-restore`` text of its own chains and for the ipset
contents. Everything here is a function of its arguments, so the unit tests can
check every option without a kernel.

Layout of the layer (``N`` is the layer's ``name``, ``v`` the IP version)::

    INPUT (rule 1) -> N-INPUT   management ports: RETURN; SIP ports: -> N-SIP
    N-SIP   scanner User-Agents: DROP
            source in N-block<v>: DROP          (bites before any ESTABLISHED accept)
            source in N-allow<v>: ACCEPT        (allowed networks and trunks)
            over the rate limit: -> N-BAN
            rest: ACCEPT when SIP is open to the world, else LOG + final action
    N-BAN   add the source to N-block<v>, DROP

The rules are rendered the way ``iptables-save`` prints them, so comparing the
kernel's view with the rendering tells whether anything would change.
"""

import contextlib
import hashlib
import ipaddress
import re
import shlex
from dataclasses import dataclass

MULTIPORT_MAX = 15  # the multiport match takes at most 15 ports per rule
STRING_MAX = 128  # longest pattern the string match accepts
LOG_PREFIX_MAX = 29  # the LOG target's limit
IPSET_TIMEOUT_MAX = 2147483  # ipset's largest timeout in seconds
RATE_MAX = 10000  # new SIP requests per second per source; more is not a limit
LOG_TAGS = ("ua ", "block ", "rate ", "deny ")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,11}$")
SAFE_TEXT_RE = re.compile(r'^[\x20-\x7e]+$')
LOG_RATE_RE = re.compile(r"^(\d{1,6})/(second|sec|s|minute|min|m|hour|h|day|d)$")
LOG_RATE_UNITS = {
    "second": "sec", "sec": "sec", "s": "sec",
    "minute": "min", "min": "min", "m": "min",
    "hour": "hour", "h": "hour",
    "day": "day", "d": "day",
}


class FirewallConfigError(ValueError):
    """An option the layer cannot render; the message is meant for the user."""


@dataclass(frozen=True)
class FirewallSpec:
    """The validated, canonical form of the module options."""

    name: str
    sip_ports: tuple
    protocols: tuple
    ip_versions: tuple
    allowed: dict  # version -> tuple of canonical networks
    trunks: dict  # version -> tuple of canonical networks
    restricted: bool  # True when allowed_networks was given: SIP only from allowed + trunks
    scanner_user_agents: tuple
    rate_limit: int
    rate_burst: int
    block_set_timeout: int
    log: bool
    log_prefix: str
    log_rate: str
    final_action: str
    management_ports: tuple
    block_addresses: dict  # version -> tuple of addresses


# --- names -------------------------------------------------------------------


def chain_names(name):
    """The layer's chains, the entry chain first."""
    return (f"{name}-INPUT", f"{name}-SIP", f"{name}-BAN")


def allow_set(name, version):
    return f"{name}-allow{version}"


def block_set(name, version):
    return f"{name}-block{version}"


def ipset_names(name, versions=(4, 6)):
    """Every ipset the layer owns for these IP versions."""
    names = []
    for v in versions:
        names += [allow_set(name, v), block_set(name, v)]
    return names


def hashlimit_name(spec, version):
    """A hashlimit table name that changes whenever the rate does.

    The kernel shares a hashlimit table between rules with the same name and keeps
    the settings of the first one, so a re-apply with a new rate under the old name
    would silently keep the old rate. The name must stay under 16 characters.
    """
    digest = hashlib.sha256(f"{spec.name}|{spec.rate_limit}|{spec.rate_burst}".encode()).hexdigest()
    return f"sg{version}{digest[:10]}"


# --- validation ----------------------------------------------------------------


def _ports(values, option, allow_empty):
    ports = []
    for value in values or []:
        try:
            port = int(value)
        except (TypeError, ValueError):
            raise FirewallConfigError(f"{option}: '{value}' is not a port number") from None
        if not 1 <= port <= 65535:
            raise FirewallConfigError(f"{option}: {port} is outside 1-65535")
        if port not in ports:
            ports.append(port)
    if not ports and not allow_empty:
        raise FirewallConfigError(f"{option} must name at least one port")
    return tuple(ports)


def canonical_network(text, option):
    """'10.0.0.7/24' -> '10.0.0.0/24'; a single host -> its bare address (as ipset prints it)."""
    try:
        net = ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        raise FirewallConfigError(f"{option}: '{text}' is not an IP address or CIDR network") from None
    if net.prefixlen == 0:
        raise FirewallConfigError(
            f"{option}: '{text}' covers every address; leave allowed_networks empty to open SIP to the world"
        )
    if net.prefixlen == net.max_prefixlen:
        return net.version, str(net.network_address)
    return net.version, str(net)


def _networks_by_version(values, option):
    out = {4: [], 6: []}
    for value in values or []:
        version, canonical = canonical_network(value, option)
        if canonical not in out[version]:
            out[version].append(canonical)
    return {v: tuple(nets) for v, nets in out.items()}


def _addresses_by_version(values, option):
    out = {4: [], 6: []}
    for value in values or []:
        try:
            addr = ipaddress.ip_address(str(value).strip())
        except ValueError:
            raise FirewallConfigError(f"{option}: '{value}' is not a single IP address") from None
        if str(addr) not in out[addr.version]:
            out[addr.version].append(str(addr))
    return {v: tuple(a) for v, a in out.items()}


def _safe_text(value, option, max_len):
    text = str(value)
    if not text or not SAFE_TEXT_RE.match(text) or '"' in text or "\\" in text:
        raise FirewallConfigError(
            f"{option}: '{text}' must be printable ASCII without quotes or backslashes"
        )
    if len(text) > max_len:
        raise FirewallConfigError(f"{option}: '{text}' is longer than {max_len} characters")
    return text


def _int_in_range(value, option, low, high):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FirewallConfigError(f"{option}: '{value}' is not a whole number") from None
    if not low <= number <= high:
        raise FirewallConfigError(f"{option}: {number} is outside {low}-{high}")
    return number


def canonical_log_rate(text):
    """'5/minute' -> '5/min', the spelling iptables-save prints."""
    match = LOG_RATE_RE.match(str(text).strip())
    if not match or int(match.group(1)) == 0:
        raise FirewallConfigError(f"log_rate: '{text}' is not a rate like 5/minute or 1/second")
    return f"{int(match.group(1))}/{LOG_RATE_UNITS[match.group(2)]}"


def build_spec(options):
    """Validate the module options (a dict) and return a FirewallSpec."""
    name = str(options.get("name", "sipguard"))
    if not NAME_RE.match(name):
        raise FirewallConfigError(
            f"name: '{name}' must start with a letter and have at most 12 letters, digits, '_' or '-'"
        )
    protocols = tuple(dict.fromkeys(options.get("protocols") or ["udp", "tcp"]))
    for proto in protocols:
        if proto not in ("udp", "tcp"):
            raise FirewallConfigError(f"protocols: '{proto}' is not udp or tcp")
    versions = tuple(sorted({int(v) for v in options.get("ip_versions") or [4, 6]}))
    for v in versions:
        if v not in (4, 6):
            raise FirewallConfigError(f"ip_versions: {v} is not 4 or 6")
    allowed_networks = options.get("allowed_networks") or []
    user_agents = []
    for ua in options.get("scanner_user_agents") or []:
        text = _safe_text(ua, "scanner_user_agents", STRING_MAX)
        if text not in user_agents:
            user_agents.append(text)
    block = _addresses_by_version(options.get("block_addresses"), "block_addresses")
    for v in (4, 6):
        if block[v] and v not in versions:
            raise FirewallConfigError(f"block_addresses: {block[v][0]} is IPv{v}, but ip_versions has no {v}")
    log_prefix = _safe_text(options.get("log_prefix", "sipguard: "), "log_prefix",
                            LOG_PREFIX_MAX - max(len(t) for t in LOG_TAGS))
    return FirewallSpec(
        name=name,
        sip_ports=_ports(options.get("sip_ports", [5060]), "sip_ports", allow_empty=False),
        protocols=protocols,
        ip_versions=versions,
        allowed=_networks_by_version(allowed_networks, "allowed_networks"),
        trunks=_networks_by_version(options.get("trunk_addresses"), "trunk_addresses"),
        restricted=bool(allowed_networks),
        scanner_user_agents=tuple(user_agents),
        rate_limit=_int_in_range(options.get("rate_limit", 0), "rate_limit", 0, RATE_MAX),
        rate_burst=_int_in_range(options.get("rate_burst", 10), "rate_burst", 1, RATE_MAX),
        block_set_timeout=_int_in_range(options.get("block_set_timeout", 300), "block_set_timeout",
                                        1, IPSET_TIMEOUT_MAX),
        log=bool(options.get("log", False)),
        log_prefix=log_prefix,
        log_rate=canonical_log_rate(options.get("log_rate", "5/minute")),
        final_action=_final_action(options.get("final_action", "DROP")),
        management_ports=_ports(options.get("management_ports", [22]), "management_ports",
                                allow_empty=True),
        block_addresses=block,
    )


def _final_action(value):
    action = str(value).upper()
    if action not in ("DROP", "REJECT"):
        raise FirewallConfigError(f"final_action: '{value}' is not DROP or REJECT")
    return action


# --- rendering -----------------------------------------------------------------


def _chunks(ports):
    for start in range(0, len(ports), MULTIPORT_MAX):
        yield ",".join(str(p) for p in ports[start:start + MULTIPORT_MAX])


def _log_rule(spec, chain, match, tag):
    """A rate-limited LOG rule placed just before the drop it announces."""
    if not spec.log:
        return []
    limit = f"-m limit --limit {spec.log_rate}"
    return [f'-A {chain} {match}{limit} -j LOG --log-prefix "{spec.log_prefix}{tag}"']


def allow_members(spec, version):
    """The allow set's members: allowed networks and trunks, canonical, no repeats."""
    return tuple(dict.fromkeys(spec.allowed[version] + spec.trunks[version]))


def render_rules(spec, version):
    """The chain declarations and rules of one IP version, as iptables-save prints them.

    The jump from INPUT is not part of it: whether it must be (re)inserted depends on
    the current INPUT chain, which only the apply layer sees.
    """
    entry, sip, ban = chain_names(spec.name)
    lines = [f":{chain} - [0:0]" for chain in chain_names(spec.name)]

    for ports in _chunks(spec.management_ports):
        lines.append(f"-A {entry} -p tcp -m multiport --dports {ports} -j RETURN")
    for proto in spec.protocols:
        for ports in _chunks(spec.sip_ports):
            lines.append(f"-A {entry} -p {proto} -m multiport --dports {ports} -j {sip}")

    for ua in spec.scanner_user_agents:
        match = f'-m string --string "{ua}" --algo bm --icase '
        lines += _log_rule(spec, sip, match, "ua ")
        lines.append(f"-A {sip} {match}-j DROP")

    blocked = f"-m set --match-set {block_set(spec.name, version)} src "
    lines += _log_rule(spec, sip, blocked, "block ")
    lines.append(f"-A {sip} {blocked}-j DROP")
    lines.append(f"-A {sip} -m set --match-set {allow_set(spec.name, version)} src -j ACCEPT")

    if spec.rate_limit:
        hashlimit = (
            f"-m hashlimit --hashlimit-above {spec.rate_limit}/sec --hashlimit-burst {spec.rate_burst} "
            f"--hashlimit-mode srcip --hashlimit-name {hashlimit_name(spec, version)}"
        )
        # On UDP every packet is a request; on TCP only count connection attempts.
        if "udp" in spec.protocols:
            lines.append(f"-A {sip} -p udp {hashlimit} -j {ban}")
        if "tcp" in spec.protocols:
            lines.append(f"-A {sip} -p tcp -m conntrack --ctstate NEW {hashlimit} -j {ban}")

    if spec.restricted:
        lines += _log_rule(spec, sip, "", "deny ")
        lines.append(f"-A {sip} {_final_target(spec, version)}")
    else:
        lines.append(f"-A {sip} -j ACCEPT")

    lines += _log_rule(spec, ban, "", "rate ")
    lines.append(f"-A {ban} -j SET --add-set {block_set(spec.name, version)} src --exist")
    lines.append(f"-A {ban} -j DROP")
    return "\n".join(lines) + "\n"


def _final_target(spec, version):
    if spec.final_action == "REJECT":
        icmp = "icmp-port-unreachable" if version == 4 else "icmp6-port-unreachable"
        return f"-j REJECT --reject-with {icmp}"
    return "-j DROP"


def restore_text(body_lines):
    """Wrap rule lines into a filter-table restore file."""
    return "*filter\n" + "".join(line + "\n" for line in body_lines) + "COMMIT\n"


def apply_text(spec, version, input_jumps):
    """Restore text for ``iptables-restore --noflush``: redeclare (flush) our chains,
    fill them, and make sure INPUT has exactly one jump to us, at position 1.

    ``input_jumps`` lists the 1-based positions of the current jumps in INPUT.
    """
    entry = chain_names(spec.name)[0]
    body = render_rules(spec, version).splitlines()
    if input_jumps != [1]:
        body += [f"-D INPUT -j {entry}"] * len(input_jumps)
        body.append(f"-I INPUT 1 -j {entry}")
    return restore_text(body)


def removal_text(name, input_jumps, existing_chains):
    """Restore text that removes the jump(s) and our chains; other chains untouched."""
    entry = chain_names(name)[0]
    body = [f"-D INPUT -j {entry}"] * len(input_jumps)
    ours = [c for c in chain_names(name) if c in existing_chains]
    body += [f":{chain} - [0:0]" for chain in ours]  # flush first: a chain must be empty to go
    body += [f"-X {chain}" for chain in ours]
    return restore_text(body)


def ipset_lines(spec, version, for_boot=False):
    """``ipset restore`` lines that create our sets for one version.

    At run time the allow set is filled through a swap (see the apply layer); for the
    boot file the allow set is created and filled directly. Block sets are created
    empty: their members are dynamic and belong to the responder and the rate limit.
    """
    family = "inet" if version == 4 else "inet6"
    allow = allow_set(spec.name, version)
    lines = [
        f"create {allow} hash:net family {family}",
        f"create {block_set(spec.name, version)} hash:ip family {family} timeout {spec.block_set_timeout}",
    ]
    if for_boot:
        lines.append(f"flush {allow}")
        lines += [f"add {allow} {member}" for member in allow_members(spec, version)]
    return lines


# --- normalisation ---------------------------------------------------------------


def normalise_line(line):
    """One rule in a form where the renderer's and iptables-save's spellings agree."""
    tokens = shlex.split(line)
    out = []
    i = 0
    while i < len(tokens):
        word = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if word == "--limit" and nxt is not None:
            with contextlib.suppress(FirewallConfigError):  # not a rate: leave it as it is
                nxt = canonical_log_rate(nxt)
            out += [word, nxt]
            i += 2
            continue
        if word == "--limit-burst" and nxt == "5":  # the default; iptables-save leaves it out
            i += 2
            continue
        out.append(word)
        i += 1
    return " ".join(shlex.quote(t) for t in out)


def normalise_rules(text):
    """Rules text -> list of normalised lines, counters and comments dropped.

    Declarations come first, then rules grouped by chain name: iptables-save may list
    chains in another order than the renderer, but order inside a chain matters.
    """
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # For a declaration keep the chain name only: policy and counters are noise.
        lines.append(line.split()[0] if line.startswith(":") else normalise_line(line))
    return sorted(lines, key=_chain_key)


def _chain_key(line):
    if line.startswith(":"):
        return (0, line)
    return (1, line.split()[1])


def own_lines(save_text, name):
    """From ``iptables-save -t filter`` output: our chain declarations and rules,
    and the 1-based positions of the jumps from INPUT to our entry chain."""
    chains = chain_names(name)
    entry = chains[0]
    ours, jumps = [], []
    input_position = 0
    for raw in save_text.splitlines():
        line = raw.strip()
        if line.startswith(":") and line[1:].split()[0] in chains:
            ours.append(line)
        elif line.startswith("-A "):
            parts = line.split()
            if parts[1] == "INPUT":
                input_position += 1
                if parts[2:] == ["-j", entry]:
                    jumps.append(input_position)
            elif parts[1] in chains:
                ours.append(line)
    return ours, jumps
