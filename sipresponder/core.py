"""The responder's state machine: (bytes, source, transport, now) -> actions. No I/O here.

Core.handle runs a request through named steps, like a Kamailio script's routes:

  source    who sent it (policy.Classifier, once per request); in Off mode a stranger
            is dropped here, before any parsing
  sanity    size, suspension, parsing (a malformed request: _bad_request)
  policy    scanner User-Agent, then the decision table (policy.decide)
  rate      the per-source rate limit (gateways are exempt)
  method    the answer: 403, the stranger's challenge, or _process (the method routes)
  reply     the trace record, and a stranger's TCP connection closed after its answer

Actions are tuples the transport layer carries out:
  ("send", data, udp_port)   send data to the source (UDP: to udp_port; TCP: on the connection)
  ("close",)                 TCP: close the connection without a byte
  ("block", address, secs)   ask the kernel block hook to drop address for secs
  ("trace", event)           one trace record (only while the trace is on)
"""

from __future__ import annotations

from sipresponder import policy
from sipresponder.config import Config
from sipresponder.digest import FAIL, FOREIGN, OK, STALE, Authenticator, Credentials
from sipresponder.limits import AccountGuard, BoundedTable, RateLimiter, Suspensions, failure_key
from sipresponder.message import (
    NotARequest,
    ParseError,
    Request,
    build_response,
    header_param,
    number,
    parse_request,
    quick_parse,
    uri_user,
)
from sipresponder.policy import Classifier
from sipresponder.registrar import RegisterRefused, Registrar
from sipresponder.stats import Stats

NOTHING: tuple = ()
CLOSE = (("close",),)
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"
REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 407: "Proxy Authentication Required",
           481: "Call/Transaction Does Not Exist", 501: "Not Implemented"}  # fmt: skip


def _split_contacts(value: str) -> list[str]:
    """Split a Contact header value at commas that are outside <...> and quotes."""
    if "," not in value:
        return [value.strip()] if value.strip() else []
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            depth += 1
        elif not quoted and char == ">":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(value[start:index].strip())
            start = index + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def _contact_uri(contact: str) -> str:
    if "<" in contact:
        return contact[contact.find("<") + 1 : contact.find(">")].strip()
    return contact.partition(";")[0].strip()


class Core:
    def __init__(self, config: Config, secret: bytes, now: float):
        settings = config.settings
        capacity = settings.limits_max_tracked_sources
        # State that survives a reload (registrations, suspensions, nonces, transactions).
        self.stats = Stats()
        self.registrar = Registrar(config.softswitch.register_replace, config.softswitch.endpoint_expire)
        soft = config.softswitch
        self.suspensions = Suspensions(soft.max_retry, soft.failed_suspend, capacity)
        self.account_guard = AccountGuard(soft.max_retry, soft.failed_suspend, capacity)
        self.trusted: dict[str, tuple[str, ...]] = {}  # account -> last sources it authenticated from
        self.rate = RateLimiter(settings.limits_rate_per_source, settings.limits_rate_burst, capacity)
        self.auth = Authenticator(secret, settings.auth_realm, settings.auth_algorithms,
                                  settings.auth_nonce_lifetime, capacity)
        self.transactions = BoundedTable(4096)  # recent final answers, for retransmissions
        self.classifier = Classifier(self.registrar.sources, self.suspensions)
        self.started = now
        self.trace_on = settings.trace_enabled
        # Per-account facts other processes must learn (peers.py): ("afail", name, now) and
        # ("trust", name, sources). None when this process is alone.
        self.shared: list | None = None
        self.apply(config)

    def apply(self, config: Config) -> None:
        """Take a new (already validated) configuration without losing state."""
        soft, endpoints, settings = config.softswitch, config.endpoints, config.settings
        self.config = config
        self.reply_unauthorized = soft.reply_unauthorized
        self.challenge_status = soft.challenge_mode
        self.challenge_header = "WWW-Authenticate" if soft.challenge_mode == 401 else "Proxy-Authenticate"
        self.registrar.configure(soft.register_replace, soft.endpoint_expire)
        self.suspensions.configure(soft.max_retry, soft.failed_suspend)
        self.account_guard.configure(soft.max_retry, soft.failed_suspend)
        self.rate.rate, self.rate.burst = settings.limits_rate_per_source, settings.limits_rate_burst
        self.auth.realm, self.auth.algorithms = settings.auth_realm, settings.auth_algorithms
        self.auth.lifetime = settings.auth_nonce_lifetime
        self.accounts = endpoints.accounts
        self.classifier.configure(endpoints, settings.scanner_user_agents)
        # Gateways are never suspended (see _fail); one that was, before it became a gateway, is let go.
        self.suspensions.release(self.classifier.is_gateway)
        self.server = settings.identity_server_header
        self.max_bytes = settings.limits_max_message_bytes
        self.final = (settings.invite_final_status, settings.invite_final_reason)

    # ------------------------------------------------------------------ entry point

    def accept_tcp(self, address: str, now: float) -> bool:
        """Whether to keep a new TCP connection: in Off mode strangers are closed unread."""
        classifier = self.classifier
        if classifier.suspended(address, now):
            return False
        return self.reply_unauthorized or classifier.source_kind(address, True) != policy.UNKNOWN

    def handle(self, data: bytes, address: str, port: int, transport: str, now: float,  # noqa: PLR0911
               kind: str = ""):  # fmt: skip
        """One request in, its actions out. `kind`: the source kind, when the caller (a helper
        process deciding what to forward) has already classified this very request."""
        counts = self.stats.counts
        counts["received"] += 1
        # source: classified once, by address; an account network counts only for a REGISTER,
        # which the first bytes tell before any parsing.
        register = data.startswith(b"REGISTER")
        if not register and data.startswith((b"\r", b"\n")):
            # CRLFs before the request line are ignored (RFC 3261 7.5): the method is what follows.
            register = data.lstrip(b"\r\n").startswith(b"REGISTER")
        kind = kind or self.classifier.source_kind(address, register)
        if kind == policy.UNKNOWN and not self.reply_unauthorized:
            # Off mode: a stranger costs a few set look-ups and no parsing.
            counts["dropped_unknown"] += 1
            if self.trace_on:
                return self._dropped(data, address, port, transport, now, policy.UNKNOWN)
            return CLOSE if transport == "tcp" else NOTHING
        # sanity
        if len(data) > self.max_bytes:
            counts["dropped_oversize"] += 1
            return self._dropped(data, address, port, transport, now, "oversize")
        if self.classifier.suspended(address, now):
            counts["dropped_suspended"] += 1
            return self._dropped(data, address, port, transport, now, policy.SUSPENDED)
        if kind == policy.UNKNOWN:
            # A stranger in On mode gets 401/403 whatever the details; a lean parse is enough.
            request = quick_parse(data)
            if request is not None:
                return self._answer(request, kind, data, address, port, transport, now)
        try:
            request = parse_request(data, datagram=transport == "udp")
        except NotARequest:
            return NOTHING
        except ParseError as error:
            return self._bad_request(error, kind, address, port, transport, now)
        if (request.method == "REGISTER") is not register:
            # The first bytes were not the method (a method such as "REGISTERX"): whether an
            # account network counts follows the parsed method.
            kind = self.classifier.source_kind(address, not register)
        return self._answer(request, kind, data, address, port, transport, now)

    def _answer(self, request: Request, kind: str, data: bytes, address: str, port: int, transport: str,
                now: float):  # fmt: skip
        """The policy, rate, method and reply steps for a well-formed request from a source of `kind`."""
        counts = self.stats.counts
        classifier = self.classifier
        # policy
        if classifier.scanner_search is not None and classifier.is_scanner(request.get("user-agent")):
            counts["dropped_scanner"] += 1
            return self._dropped(data, address, port, transport, now, policy.SCANNER, request)
        action = policy.decide(kind, request.method, self.reply_unauthorized)
        if action == policy.DROP:
            counts["dropped_unknown"] += 1
            return self._dropped(data, address, port, transport, now, kind, request)
        # rate: trunks carry a whole carrier's traffic from one address, so they are not limited.
        if kind != policy.GATEWAY and not self.rate.allow(address, now):
            counts["dropped_rate"] += 1
            return self._dropped(data, address, port, transport, now, "rate-limit", request)
        # method
        if action == policy.FORBID:
            out = [self._reply(request, 403, address, port)]
        elif action == policy.CHALLENGE:
            out = self._challenge_unknown(request, address, port, now)
        else:
            out = self._process(request, kind, address, port, now)
        # reply
        if self.trace_on:
            status = out[0][1][8:11].decode() if out and out[0][0] == "send" else ""
            out.append(("trace", self.event(now, address, port, transport, request.method,
                                            request.user_agent, action, kind, status)))
        if kind == policy.UNKNOWN and transport == "tcp":
            out.append(("close",))  # a stranger's connection carries its one 401/403, no more
        return out

    # ------------------------------------------------------------------ replies

    def _reply(self, request: Request, status: int, address: str, port: int, extra=(), reason: str = ""):
        counts = self.stats.counts
        if status in (401, 407):
            counts["replied_challenge"] += 1
        elif status == 403 and not extra:
            counts["replied_forbidden"] += 1
        elif status < 300:
            counts["replied_ok"] += 1
        elif status >= 400:
            counts["replied_error"] += 1
        else:
            counts["replied_other"] += 1
        data, udp_port = build_response(request, status, reason or REASONS.get(status, "Error"),
                                        address, port, extra, self.server)
        return ("send", data, udp_port)

    def _challenge(self, request: Request, address: str, port: int, now: float, stale: bool = False,
                   stranger: bool = False):  # fmt: skip
        values = self.auth.challenges(now, address, stale, stranger)
        extra = [(self.challenge_header, value) for value in values]
        return self._reply(request, self.challenge_status, address, port, extra)

    def _fail(self, address: str, now: float, out: list) -> None:
        """Count a failed authentication; suspend the source (and ask for a kernel block) at the limit.

        Called only for a wrong answer to a nonce issued to this very address, which a spoofer cannot
        produce. A trunk is still never suspended: it carries a whole carrier's traffic, so one
        misconfigured account behind it must not cut every call.
        """
        self.stats.counts["auth_failure"] += 1
        if self.classifier.is_gateway(address):
            return
        if self.suspensions.fail(address, now):
            self.stats.counts["suspensions"] += 1
            # The address itself, or its IPv6 /64 as the /64's first address (see limits.failure_key).
            out.append(("block", failure_key(address), self.suspensions.suspend_seconds))

    def _challenge_unknown(self, request: Request, address: str, port: int, now: float):
        # Identical to a real account's challenge (stale=true included); credentials from a stranger can
        # never succeed, and count as a failure only when they answer a nonce we sent to this address.
        creds = self._credentials(request)
        state = self.auth.nonce_state(creds.nonce, now, address) if creds is not None else ""
        out = [self._challenge(request, address, port, now, stale=state in (STALE, FOREIGN), stranger=True)]
        if state == OK:
            self._fail(address, now, out)
        return out

    def _bad_request(self, error: ParseError, kind: str, address: str, port: int, transport: str, now: float):
        request = error.request
        recognised = kind in (policy.GATEWAY, policy.REGISTERED)
        if request is None or request.method == "ACK" or not (recognised or self.reply_unauthorized):
            self.stats.counts["dropped_malformed"] += 1
            return self._dropped(b"", address, port, transport, now, f"malformed: {error.reason}")
        if not self.rate.allow(address, now):
            self.stats.counts["dropped_rate"] += 1
            return self._dropped(b"", address, port, transport, now, "rate-limit")
        out = [self._reply(request, error.status, address, port, error.extra, error.reason)]
        if self.trace_on:
            out.append(("trace", self.event(now, address, port, transport, request.method,
                                            request.user_agent, "reject", error.reason, str(error.status))))
        return out

    # ------------------------------------------------------------------ recognised sources

    def _process(self, request: Request, kind: str, address: str, port: int, now: float):
        method = request.method
        if method == "ACK":
            return []
        branch = header_param(request.top_via()[0], "branch") or ""
        key = (branch, method, request.get("call-id"), request.get("cseq"))
        cached = self.transactions.get(key) if branch else None
        if cached is not None:
            # A retransmission: the same answer again, without counting anything twice.
            return [("send", cached[0], cached[1])]
        if method == "OPTIONS":
            out = [self._reply(request, 200, address, port,
                               [("Allow", ALLOW), ("Accept", "application/sdp")])]
        elif method == "REGISTER":
            out = self._register(request, address, port, now)
        elif method == "INVITE":
            out = self._invite(request, kind, address, port, now)
        elif method == "CANCEL":
            number = request.get("cseq").split(" ", 1)[0]
            invite = (branch, "INVITE", request.get("call-id"), f"{number} INVITE")
            out = [self._reply(request, 200 if invite in self.transactions else 481, address, port)]
        elif method == "BYE":
            out = [self._reply(request, 481, address, port)]  # a responder never establishes a dialog
        else:
            out = [self._reply(request, 501, address, port, [("Allow", ALLOW)])]
        if branch and out and out[0][0] == "send":
            self.transactions.put(key, out[0][1:])
        return out

    def _credentials(self, request: Request) -> Credentials | None:
        value = request.get("authorization") or request.get("proxy-authorization")
        return Credentials.from_header(value) if value else None

    def _authenticate(self, request: Request, address: str, port: int, now: float, out: list):
        """The authenticated account, or None after appending the reply (challenge) to out."""
        creds = self._credentials(request)
        if creds is None:
            out.append(self._challenge(request, address, port, now))
            return None
        account = self.accounts.get(creds.username)
        if account is not None and not self.classifier.allowed_from(account, address):
            account = None  # not allowed from here: fails exactly like a missing account
        if request.method == "REGISTER" and uri_user(request.get("to")) != creds.username:
            account = None
        name = creds.username
        trusted = self._trusted_for(name, address, now)
        if not trusted and not self.account_guard.allows(name, now):
            # Too many failures for this name lately: not checked at all, answered like a wrong
            # password (so nothing tells the guesser), and not counted against this source.
            state = self.auth.nonce_state(creds.nonce, now, address)
            self.stats.counts["auth_throttled"] += 1
            out.append(self._challenge(request, address, port, now, stale=state in (STALE, FOREIGN)))
            return None
        result = self.auth.verify(creds, request.method, account, now, address)
        if result == OK:
            self.stats.counts["auth_success"] += 1
            self.suspensions.succeed(address)
            self._trust(name, address)
            return account
        # A foreign nonce gets stale=true too: a client whose address changed retries at once.
        out.append(self._challenge(request, address, port, now, stale=result in (STALE, FOREIGN)))
        if result == FAIL:
            self._fail(address, now, out)
            if not trusted:
                self.account_guard.fail(name, now)
                if self.shared is not None:
                    self.shared.append(("afail", name, now))
        return None

    def _trusted_for(self, name: str, address: str, now: float) -> bool:
        """Whether `address` is where account `name` is registered or last authenticated from.

        Such a source is the phone itself (or shares its address): the per-account limit neither
        counts nor delays it, so no one elsewhere can lock the phone out by guessing. A gateway is
        trusted by address anyway (and never suspended either).
        """
        if address in self.trusted.get(name, ()) or self.classifier.is_gateway(address):
            return True
        return any(binding.source == address for binding in self.registrar.lookup(name, now))

    def _trust(self, name: str, address: str) -> None:
        if name not in self.accounts:
            return
        known = self.trusted.get(name, ())
        if known[:1] != (address,):
            self.trusted[name] = (address, *(a for a in known if a != address))[:4]
            if self.shared is not None:
                self.shared.append(("trust", name, self.trusted[name]))

    def _register(self, request: Request, address: str, port: int, now: float):
        out: list = []
        account = self._authenticate(request, address, port, now, out)
        if account is None:
            return out
        contacts = [c for value in request.headers.get("contact", []) for c in _split_contacts(value)]
        wildcard = contacts == ["*"]
        default = request.get("expires", str(self.config.softswitch.endpoint_expire))
        if wildcard and default.strip() != "0":
            return [self._reply(request, 400, address, port, reason="Wildcard Needs Expires 0")]
        parsed = []
        for contact in contacts if not wildcard else []:
            expires = number((header_param(contact, "expires") or default).strip())
            if expires is None or contact == "*":
                return [self._reply(request, 400, address, port, reason="Bad Contact")]
            parsed.append((_contact_uri(contact), expires))
        try:
            bindings = self.registrar.update(account.username, parsed, wildcard, address, now)
        except RegisterRefused as refused:
            return [self._reply(request, refused.status, address, port, reason=refused.reason)]
        extra = [("Contact", f"<{b.contact}>;expires={int(b.expires_at - now)}") for b in bindings]
        return [self._reply(request, 200, address, port, extra)]

    def _invite(self, request: Request, kind: str, address: str, port: int, now: float):
        # A responder, not a proxy: an accepted INVITE gets the configured final answer, never a call.
        out: list = []
        if kind != policy.GATEWAY and self._authenticate(request, address, port, now, out) is None:
            return out
        status, reason = self.final
        return [self._reply(request, status, address, port, reason=reason)]

    # ------------------------------------------------------------------ trace and housekeeping

    def event(self, now, address, port, transport, method, agent, decision, reason, status=""):
        return {"ts": round(now, 3), "src": address, "port": port, "transport": transport,
                "method": method, "ua": agent[:120], "decision": decision, "reason": reason, "status": status}

    def _dropped(self, data, address, port, transport, now, reason, request=None):
        """Nothing back (TCP: close); a trace record when the trace is on."""
        close = CLOSE if transport == "tcp" else NOTHING
        if not self.trace_on:
            return close
        method, agent = "", ""
        if request is not None:
            method, agent = request.method, request.user_agent
        elif data:
            method = data[:16].split(b" ", 1)[0].decode("latin-1")[:16]
            for line in data[:2048].split(b"\r\n"):
                if line[:11].lower() == b"user-agent:":
                    agent = line[11:].strip().decode("latin-1")
                    break
            if reason == policy.UNKNOWN and self.classifier.is_scanner(agent):
                reason = policy.SCANNER
        return [*close, ("trace", self.event(now, address, port, transport, method, agent, "drop", reason))]

    def tick(self, now: float) -> None:
        """Periodic housekeeping: expire bindings, refresh gauges."""
        self.registrar.expire(now)
        gauges = self.stats.gauges
        gauges["bindings"] = self.registrar.count()
        gauges["suspended_sources"] = self.suspensions.active(now)
        # Each per-source table is capped at max_tracked_sources; the gauge is the fullest one.
        tables = (self.rate.table, self.suspensions.failures, self.suspensions.until)
        gauges["tracked_sources"] = max(len(table) for table in tables)
        gauges["uptime_seconds"] = round(now - self.started, 1)
        gauges["trace_enabled"] = int(self.trace_on)
