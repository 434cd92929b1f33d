"""Pure rendering of the sipguard firewall layer (no I/O, no subprocesses).

The module ``sipguard_firewall`` turns its options into a ``FirewallSpec`` with
``build_spec`` (which rejects bad input with ``FirewallConfigError``), then asks
this file for the ``iptables-restore`` text of its own chains and for the ipset
contents. Everything here is a function of its arguments, so the unit tests can
check every option without a kernel.

Layout of the layer (``N`` is the layer's ``name``, ``v`` the IP version)::

    INPUT (near the top) -> N-INPUT   management ports: RETURN; SIP ports: -> N-SIP
    N-SIP   source in N-allow<v>: RETURN      (LAN/trusted networks and trunks: never dropped here)
            source in N-block<v>: DROP        (bites before any ESTABLISHED accept)
            UDP with a scanner User-Agent header: DROP
            over the rate limit: DROP         (dropped, never banned: a spoofer could aim a ban)
            rest: RETURN when SIP is open to the world, else LOG + final action
    INPUT (appended, only with accept_sip) -> N-ACCEPT   SIP from where the profile opens it: ACCEPT

The layer only removes traffic: whatever it lets pass goes on through the rest of
the host's own ruleset (fail2ban, the host's policy, other tools), which still
decides. Opening SIP where the host would drop it is the separate, explicit
``accept_sip`` option, rendered after the host's own INPUT rules.

The rules are rendered the way ``iptables-save`` prints them, so comparing the
kernel's view with the rendering tells whether anything would change.

This file and the others the module ships run on the target's Python: 2.7 and
3.6+ as well as 3.11+ (docs/modules.md), so no f-strings or dataclasses here.
"""

from __future__ import absolute_import, division, print_function

import binascii
import hashlib
import re
import shlex
from collections import OrderedDict, namedtuple

from ansible.module_utils.six.moves import shlex_quote
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_ip import (
    parse_address,
    parse_network,
)

__metaclass__ = type

MULTIPORT_MAX = 15  # the multiport match takes at most 15 ports per rule
STRING_MAX = 128  # longest pattern the string match accepts
LOG_PREFIX_MAX = 29  # the LOG target's limit
IPSET_TIMEOUT_MAX = 2147483  # ipset's largest timeout in seconds
RATE_MAX = 10000  # new SIP requests per second per source; more is not a limit
LOG_TAGS = ("ua ", "block ", "deny ", "sip ")
DEBUG_LOG_PREFIX = "sipguard-debug: "
DEBUG_LOG_RATE = "1/second"
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,11}\Z")  # \Z: no trailing newline (re.match anchors the start)
SAFE_TEXT_RE = re.compile(r"[\x20-\x7e]+\Z")
IPV6_PREFIX_MIN = 32  # a coarser limit would lump whole providers together
UA_HEADER = "\nUser-Agent:"  # LF ends every header line before it, with or without CR
LOG_RATE_RE = re.compile(r"^(\d{1,6})/(second|sec|s|minute|min|m|hour|h|day|d)$")
LOG_RATE_UNITS = {
    "second": "sec", "sec": "sec", "s": "sec",
    "minute": "min", "min": "min", "m": "min",
    "hour": "hour", "h": "hour",
    "day": "day", "d": "day",
}


class FirewallConfigError(ValueError):
    """An option the layer cannot render; the message is meant for the user."""


def _unique(items):
    """`items` without repeats, in their first order (dicts keep no order on Python 2)."""
    return tuple(OrderedDict.fromkeys(items))


_SPEC_FIELDS = (
    "name",
    "sip_ports",  # tuple
    "protocols",  # tuple
    "ip_versions",  # tuple
    "allowed",  # dict: version -> tuple of canonical networks
    "trunks",  # dict: version -> tuple of canonical networks
    "restricted",  # bool: SIP only from allowed + trunks (else open to the world)
    "accept_sip",  # bool: also ACCEPT what the profile opens, after the host's own rules
    "ipv6_prefix",  # int: IPv6 sources are rate-limited and blocked per prefix of this length
    "scanner_user_agents",  # tuple
    "rate_limit",
    "rate_burst",
    "block_set_timeout",
    "log",
    "log_prefix",
    "log_rate",
    "final_action",
    "management_ports",  # tuple
    "block_addresses",  # dict: version -> tuple of addresses
    "debug_log",  # None, or DebugLog(prefix, rate) while a debug window is open
)

# The LOG rules of a debug window: every SIP packet reaching the layer, and each drop, tagged
# with their own prefix and limited to their own rate.
DebugLog = namedtuple("DebugLog", ("prefix", "rate"))


class FirewallSpec(namedtuple("FirewallSpec", _SPEC_FIELDS)):
    """The validated, canonical form of the module options (immutable)."""

    __slots__ = ()


# --- names -------------------------------------------------------------------


def chain_names(name):
    """The layer's chains, the entry chain first, the optional accept chain last."""
    return ("{}-INPUT".format(name), "{}-SIP".format(name), "{}-ACCEPT".format(name))


def legacy_chain_names(name):
    """Chains an earlier sipguard created and this one removes (the rate-ban chain)."""
    return ("{}-BAN".format(name),)


def wanted_chains(spec):
    entry, sip, accept = chain_names(spec.name)
    return (entry, sip, accept) if spec.accept_sip else (entry, sip)


def allow_set(name, version):
    return "{}-allow{}".format(name, version)


def block_set(name, version):
    return "{}-block{}".format(name, version)


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
    key = "{}|{}|{}|{}".format(
        spec.name, spec.rate_limit, spec.rate_burst, spec.ipv6_prefix if version == 6 else 32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    return "sg{}{}".format(version, digest[:10])


# --- validation ----------------------------------------------------------------


def _ports(values, option, allow_empty):
    ports = []
    for value in values or []:
        try:
            port = int(value)
        except (TypeError, ValueError):
            raise FirewallConfigError("{}: '{}' is not a port number".format(option, value))
        if not 1 <= port <= 65535:
            raise FirewallConfigError("{}: {} is outside 1-65535".format(option, port))
        if port not in ports:
            ports.append(port)
    if not ports and not allow_empty:
        raise FirewallConfigError("{} must name at least one port".format(option))
    return tuple(ports)


def canonical_network(text, option):
    """'10.0.0.7/24' -> '10.0.0.0/24'; a single host -> its bare address (as ipset prints it)."""
    try:
        version, address, prefixlen, max_prefixlen = parse_network(text)
    except ValueError:
        raise FirewallConfigError("{}: '{}' is not an IP address or CIDR network".format(option, text))
    if prefixlen == 0:
        raise FirewallConfigError(
            "{}: '{}' covers every address; "
            "to open SIP to the world set restrict_to_allowed: false".format(option, text)
        )
    if prefixlen == max_prefixlen:
        return version, address
    return version, "{}/{}".format(address, prefixlen)


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
            version, addr = parse_address(value)
        except ValueError:
            raise FirewallConfigError("{}: '{}' is not a single IP address".format(option, value))
        if addr not in out[version]:
            out[version].append(addr)
    return {v: tuple(a) for v, a in out.items()}


def _safe_text(value, option, max_len):
    text = str(value)
    if not SAFE_TEXT_RE.match(text) or '"' in text or "\\" in text:
        raise FirewallConfigError(
            "{}: '{}' must be printable ASCII without quotes or backslashes".format(option, text)
        )
    if len(text) > max_len:
        raise FirewallConfigError("{}: '{}' is longer than {} characters".format(option, text, max_len))
    return text


def _int_in_range(value, option, low, high):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FirewallConfigError("{}: '{}' is not a whole number".format(option, value))
    if not low <= number <= high:
        raise FirewallConfigError("{}: {} is outside {}-{}".format(option, number, low, high))
    return number


def canonical_log_rate(text):
    """'5/minute' -> '5/min', the spelling iptables-save prints."""
    match = LOG_RATE_RE.match(str(text).strip())
    if not match or int(match.group(1)) == 0:
        raise FirewallConfigError("log_rate: '{}' is not a rate like 5/minute or 1/second".format(text))
    return "{}/{}".format(int(match.group(1)), LOG_RATE_UNITS[match.group(2)])


def build_spec(options):
    """Validate the module options (a dict) and return a FirewallSpec."""
    name = str(options.get("name", "sipguard"))
    if not NAME_RE.match(name):
        raise FirewallConfigError(
            "name: '{}' must start with a letter and have at most 12 letters, digits, '_' or '-'".format(name)
        )
    protocols = _unique(options.get("protocols") or ["udp", "tcp"])
    for proto in protocols:
        if proto not in ("udp", "tcp"):
            raise FirewallConfigError("protocols: '{}' is not udp or tcp".format(proto))
    versions = tuple(sorted({int(v) for v in options.get("ip_versions") or [4, 6]}))
    for v in versions:
        if v not in (4, 6):
            raise FirewallConfigError("ip_versions: {} is not 4 or 6".format(v))
    allowed = _networks_by_version(options.get("allowed_networks"), "allowed_networks")
    trunks = _networks_by_version(options.get("trunk_addresses"), "trunk_addresses")
    restrict = options.get("restrict_to_allowed")
    restricted = bool(allowed[4] or allowed[6]) if restrict is None else bool(restrict)
    if restricted and not any(allowed[v] or trunks[v] for v in versions):
        # Closing SIP to everyone is never what a LAN-only profile means; an empty list
        # here is a lost inventory variable or a trunk that resolved to nothing.
        raise FirewallConfigError(
            "restrict_to_allowed: SIP is to be open only to allowed_networks and trunk_addresses, "
            "but both are empty for every IP version in ip_versions"
        )
    user_agents = []
    for ua in options.get("scanner_user_agents") or []:
        text = _safe_text(ua, "scanner_user_agents", STRING_MAX - len(UA_HEADER) - 1)
        if text.lower() not in (u.lower() for u in user_agents):
            user_agents.append(text)
    block = _addresses_by_version(options.get("block_addresses"), "block_addresses")
    for v in (4, 6):
        if block[v] and v not in versions:
            raise FirewallConfigError("block_addresses: {0} is IPv{1}, but ip_versions has no {1}".format(
                block[v][0], v))
    log_prefix = _safe_text(options.get("log_prefix", "sipguard: "), "log_prefix",
                            LOG_PREFIX_MAX - max(len(t) for t in LOG_TAGS))
    return FirewallSpec(
        name=name,
        sip_ports=_ports(options.get("sip_ports", [5060]), "sip_ports", allow_empty=False),
        protocols=protocols,
        ip_versions=versions,
        allowed=allowed,
        trunks=trunks,
        restricted=restricted,
        accept_sip=bool(options.get("accept_sip", False)),
        ipv6_prefix=_int_in_range(options.get("ipv6_prefix", 64), "ipv6_prefix", IPV6_PREFIX_MIN, 128),
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
        debug_log=_debug_log(options),
    )


def _debug_log(options):
    """The debug window's LOG settings when ``debug_log`` is ``open``, else None."""
    if options.get("debug_log") != "open":
        return None
    prefix = _safe_text(options.get("debug_log_prefix", DEBUG_LOG_PREFIX), "debug_log_prefix",
                        LOG_PREFIX_MAX - max(len(t) for t in LOG_TAGS))
    try:
        rate = canonical_log_rate(options.get("debug_log_rate", DEBUG_LOG_RATE))
    except FirewallConfigError:
        raise FirewallConfigError("debug_log_rate: '{}' is not a rate like 5/minute or 1/second".format(
            options.get("debug_log_rate")))
    return DebugLog(prefix, rate)


def without_debug(spec):
    """The layer as it is outside a debug window (what the boot files and the close script load)."""
    return spec._replace(debug_log=None)


def _final_action(value):
    action = str(value).upper()
    if action not in ("DROP", "REJECT"):
        raise FirewallConfigError("final_action: '{}' is not DROP or REJECT".format(value))
    return action


# --- rendering -----------------------------------------------------------------


def _chunks(ports):
    for start in range(0, len(ports), MULTIPORT_MAX):
        yield ",".join(str(p) for p in ports[start:start + MULTIPORT_MAX])


def _log_rule(spec, chain, match, tag):
    """A rate-limited LOG rule placed just before the drop it announces. During a debug
    window its prefix and rate replace those of ``log`` (one LOG rule per drop, not two)."""
    if spec.debug_log:
        prefix, rate = spec.debug_log.prefix, spec.debug_log.rate
    elif spec.log:
        prefix, rate = spec.log_prefix, spec.log_rate
    else:
        return []
    limit = "-m limit --limit {}".format(rate)
    return ['-A {} {}{} -j LOG --log-prefix "{}{}"'.format(chain, match, limit, prefix, tag)]


def _debug_sip_rule(spec, chain):
    """A debug window logs every SIP packet that reaches the layer, the LAN's and trunks' too
    ("why does this phone not register?"), before any decision."""
    return _log_rule(spec, chain, "", "sip ") if spec.debug_log else []


def allow_members(spec, version):
    """The allow set's members: allowed networks and trunks, canonical, no repeats."""
    return _unique(spec.allowed[version] + spec.trunks[version])


def ua_hex(ua, space):
    """The bytes a scanner's User-Agent header starts with, as iptables-save prints a
    --hex-string: all hex between bars, lower case."""
    text = "{}{}{}".format(UA_HEADER, ' ' if space else '', ua)
    return "|" + binascii.hexlify(text.encode("ascii")).decode("ascii") + "|"


def _sip_matches(spec):
    """(protocol, multiport match) pairs covering every SIP port."""
    return [(proto, "-p {} -m multiport --dports {}".format(proto, ports))
            for proto in spec.protocols for ports in _chunks(spec.sip_ports)]


def render_rules(spec, version):
    """The chain declarations and rules of one IP version, as iptables-save prints them.

    The jumps from INPUT are not part of it: whether they must be (re)inserted depends
    on the current INPUT chain, which only the apply layer sees.
    """
    entry, sip, accept = chain_names(spec.name)
    lines = [":{} - [0:0]".format(chain) for chain in wanted_chains(spec)]

    for ports in _chunks(spec.management_ports):
        lines.append("-A {} -p tcp -m multiport --dports {} -j RETURN".format(entry, ports))
    for _proto, match in _sip_matches(spec):
        lines.append("-A {} {} -j {}".format(entry, match, sip))

    allowed = "-m set --match-set {} src".format(allow_set(spec.name, version))
    lines += _debug_sip_rule(spec, sip)
    # Trusted sources first: nothing below (a User-Agent, a rate, a ban) can drop a trunk or the LAN.
    lines.append("-A {} {} -j RETURN".format(sip, allowed))

    blocked = "-m set --match-set {} src ".format(block_set(spec.name, version))
    lines += _log_rule(spec, sip, blocked, "block ")
    lines.append("-A {} {}-j DROP".format(sip, blocked))

    # The User-Agent header only, and only on UDP: one datagram is one message, while a
    # dropped TCP segment would be retransmitted and stall the connection (the responder
    # drops scanners on TCP itself).
    if "udp" in spec.protocols and spec.scanner_user_agents:
        # A rule that only uses conntrack (no target): it makes the kernel reassemble fragments
        # before this table, so a User-Agent in a second fragment is seen like any other.
        lines.append("-A {} -p udp -m conntrack ! --ctstate INVALID".format(sip))
        for ua in spec.scanner_user_agents:
            for space in (True, False):
                match = '-p udp -m string --hex-string "{}" --algo bm --icase '.format(ua_hex(ua, space))
                lines += _log_rule(spec, sip, match, "ua ")
                lines.append("-A {} {}-j DROP".format(sip, match))

    if spec.rate_limit:
        mask = " --hashlimit-srcmask {}".format(
            spec.ipv6_prefix) if version == 6 and spec.ipv6_prefix != 128 else ""
        hashlimit = (
            "-m hashlimit --hashlimit-above {}/sec --hashlimit-burst {} "
            "--hashlimit-mode srcip --hashlimit-name {}{} ".format(
                spec.rate_limit, spec.rate_burst, hashlimit_name(spec, version), mask)
        )
        # Excess is dropped, never banned: the source of a UDP packet or a SYN can be forged.
        # On UDP every packet is a request; on TCP only count connection attempts. Not
        # logged: a LOG rule with the same hashlimit would count every packet twice.
        if "udp" in spec.protocols:
            lines.append("-A {} -p udp {}-j DROP".format(sip, hashlimit))
        if "tcp" in spec.protocols:
            lines.append("-A {} -p tcp -m conntrack --ctstate NEW {}-j DROP".format(sip, hashlimit))

    if spec.restricted:
        lines += _log_rule(spec, sip, "", "deny ")
        lines.append("-A {} {}".format(sip, _final_target(spec, version)))
    else:
        lines.append("-A {} -j RETURN".format(sip))

    if spec.accept_sip:
        source = " {}".format(allowed) if spec.restricted else ""
        for _proto, match in _sip_matches(spec):
            lines.append("-A {} {}{} -j ACCEPT".format(accept, match, source))
    return "\n".join(lines) + "\n"


def _final_target(spec, version):
    if spec.final_action == "REJECT":
        icmp = "icmp-port-unreachable" if version == 4 else "icmp6-port-unreachable"
        return "-j REJECT --reject-with {}".format(icmp)
    return "-j DROP"


def restore_text(body_lines):
    """Wrap rule lines into a filter-table restore file."""
    return "*filter\n" + "".join(line + "\n" for line in body_lines) + "COMMIT\n"


class InputView(namedtuple("InputView", ("heads", "tails", "first_accept", "length"))):
    """Where the layer's jumps sit in INPUT (1-based positions): `heads` the jumps to N-INPUT,
    `tails` those to N-ACCEPT, `first_accept` the first INPUT rule that ACCEPTs (0: none),
    `length` the rules in INPUT."""

    __slots__ = ()

    def __new__(cls, heads=(), tails=(), first_accept=0, length=0):
        return super(InputView, cls).__new__(cls, heads, tails, first_accept, length)

    def head_in_place(self):
        """One jump to us, and no ACCEPT above it. Other tools (fail2ban) may insert their
        own jumps above ours: they only drop, so that is not a change."""
        return len(self.heads) == 1 and not (self.first_accept and self.first_accept < self.heads[0])

    def tail_in_place(self):
        """One jump to the accept chain, after the head jump."""
        return len(self.tails) == 1 and (not self.heads or self.tails[0] > self.heads[0])


def input_edits(spec, view):
    """INPUT edits (restore lines) that put the layer's jumps in place; [] when they are."""
    entry, _sip, accept = chain_names(spec.name)
    lines = []
    if not view.head_in_place():
        lines += ["-D INPUT -j {}".format(entry)] * len(view.heads)
        lines.append("-I INPUT 1 -j {}".format(entry))
    want_tail = spec.accept_sip
    if not (want_tail and view.tail_in_place()):
        lines += ["-D INPUT -j {}".format(accept)] * len(view.tails)
        if want_tail:
            lines.append("-A INPUT -j {}".format(accept))
    return lines


def apply_text(spec, version, view, existing_chains=()):
    """Restore text for ``iptables-restore --noflush``: redeclare (flush) our chains,
    fill them, put the INPUT jumps in place, and remove chains of ours that are no
    longer wanted (the accept chain when accept_sip went off, a legacy chain)."""
    body = render_rules(spec, version).splitlines()
    edits = input_edits(spec, view)
    stale = [c for c in chain_names(spec.name) + legacy_chain_names(spec.name)
             if c in existing_chains and c not in wanted_chains(spec)]
    declared = len(wanted_chains(spec))
    body = body[:declared] + [":{} - [0:0]".format(c) for c in stale] + body[declared:] + edits
    body += ["-X {}".format(chain) for chain in stale]
    return restore_text(body)


def removal_text(name, view, existing_chains):
    """Restore text that removes the jump(s) and our chains; other chains untouched."""
    entry, _sip, accept = chain_names(name)
    body = ["-D INPUT -j {}".format(entry)] * len(view.heads) + ["-D INPUT -j {}".format(
        accept)] * len(view.tails)
    ours = [c for c in chain_names(name) + legacy_chain_names(name) if c in existing_chains]
    body += [":{} - [0:0]".format(chain) for chain in ours]  # flush first: a chain must be empty to go
    body += ["-X {}".format(chain) for chain in ours]
    return restore_text(body)


def block_set_type(spec, version):
    """The block set's type: IPv6 sources are blocked per prefix (one /64 is one host's
    worth of addresses), so rotating through a prefix does not escape a ban."""
    if version == 4:
        return "hash:ip family inet timeout {}".format(spec.block_set_timeout)
    mask = " netmask {}".format(spec.ipv6_prefix) if spec.ipv6_prefix != 128 else ""
    return "hash:ip family inet6{} timeout {}".format(mask, spec.block_set_timeout)


def allow_set_type(version):
    return "hash:net family {}".format('inet' if version == 4 else 'inet6')


def ipset_lines(spec, version, for_boot=False):
    """``ipset restore`` lines that create our sets for one version.

    At run time the allow set is filled through a swap (see the apply layer); for the
    boot file the allow set is created and filled directly. Block sets are created
    empty: their members are dynamic and belong to the responder and block_addresses.
    """
    allow = allow_set(spec.name, version)
    lines = [
        "create {} {}".format(allow, allow_set_type(version)),
        "create {} {}".format(block_set(spec.name, version), block_set_type(spec, version)),
    ]
    if for_boot:
        lines.append("flush {}".format(allow))
        lines += ["add {} {}".format(allow, member) for member in allow_members(spec, version)]
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
            try:
                nxt = canonical_log_rate(nxt)
            except FirewallConfigError:  # not a rate: leave it as it is
                pass
            out += [word, nxt]
            i += 2
            continue
        if word in ("--string", "--hex-string") and nxt is not None:
            out += ["--hex-string", _canonical_hex(word, nxt)]
            i += 2
            continue
        if word == "--limit-burst" and nxt == "5":  # the default; iptables-save leaves it out
            i += 2
            continue
        if (word, nxt) in (("--from", "0"), ("--to", "65535")):
            # The string match's defaults: iptables 1.8.7 (Debian 11) prints them, 1.8.9 does not.
            i += 2
            continue
        out.append(word)
        i += 1
    return " ".join(shlex_quote(t) for t in out)


def _canonical_hex(option, value):
    """One spelling for a string match, readable in diff mode: printable text as is, other
    bytes as |hex| ("|0a|User-Agent: sipcli"). iptables versions print text, mixed or all hex."""
    if option == "--string":
        data = value.encode("latin-1")
    else:
        data, parts = b"", value.split("|")
        for index, part in enumerate(parts):
            data += binascii.unhexlify(part.replace(" ", "")) if index % 2 else part.encode("latin-1")
    out, run = "", ""
    for byte in bytearray(data):  # ints on Python 2 as on 3
        if 0x20 <= byte <= 0x7E and chr(byte) not in '|"\\':
            out += "|{}|".format(run) if run else ""
            run = ""
            out += chr(byte)
        else:
            run += "{:02x}".format(byte)
    return out + ("|{}|".format(run) if run else "")


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
    """From ``iptables-save -t filter`` output: our chain declarations and rules (legacy
    chains included, so they show as a difference), and where INPUT jumps to us."""
    chains = chain_names(name) + legacy_chain_names(name)
    entry, _sip, accept = chain_names(name)
    ours, heads, tails = [], [], []
    position = first_accept = 0
    for raw in save_text.splitlines():
        line = raw.strip()
        if line.startswith(":") and line[1:].split()[0] in chains:
            ours.append(line)
        elif line.startswith("-A "):
            parts = line.split()
            if parts[1] == "INPUT":
                position += 1
                if parts[2:] == ["-j", entry]:
                    heads.append(position)
                elif parts[2:] == ["-j", accept]:
                    tails.append(position)
                elif parts[-2:] == ["-j", "ACCEPT"] and not first_accept:
                    first_accept = position
            elif parts[1] in chains:
                ours.append(line)
    return ours, InputView(tuple(heads), tuple(tails), first_accept, position)
