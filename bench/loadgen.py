"""UDP load generators, each meant to run in its own process (multiprocessing).

- `blast`: open loop, paced, many source ports or many source addresses; counts what it sent.
- `closed_loop`: a window of outstanding requests per process; counts replies by status code.
- `digest_register`: lanes of REGISTER clients that answer the digest challenge and count 200 OKs.

Every generator sends only to the `server` address it is given (the caller passes a
loopback address), runs for a fixed duration and returns a dict of counters.
"""

import itertools
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable

import sipmsg

IP_PKTINFO = 8  # Linux value; Python 3.11 does not export socket.IP_PKTINFO
_CHECK_EVERY = 64  # packets between clock reads: time.monotonic() per packet would cost ~5%


def pktinfo_source(address: str) -> list[tuple[int, int, bytes]]:
    """Ancillary data that makes sendmsg use `address` as the IPv4 source address."""
    return [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=I4s4s", 0, socket.inet_aton(address), bytes(4)))]


def loopback_sources(count: int, first: str) -> list[str]:
    """`count` distinct addresses in 127.0.0.0/8 starting at `first` (skips .0 and .255 hosts)."""
    start = struct.unpack("!I", socket.inet_aton(first))[0]
    out, value = [], start
    while len(out) < count:
        if value & 0xFF not in (0, 255):
            out.append(socket.inet_ntoa(struct.pack("!I", value)))
        value += 1
    if struct.unpack("!I", socket.inet_aton(out[-1]))[0] >> 24 != 127:
        raise ValueError("source range leaves 127.0.0.0/8")
    return out


def _wait_until(start_at: float) -> None:
    """Sleep until the common start time, so all generator processes begin together."""
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _pace(sent: int, rate: float, started: float) -> None:
    """Sleep while we are ahead of the `rate` schedule (rate 0 = as fast as possible)."""
    if rate:
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


Send = Callable[[int, bytes], None]


def _sender(server: tuple[str, int], client: str, sources: list[str] | None) -> tuple[socket.socket, Send]:
    """A UDP socket and a `send(n, packet)` for it.

    Without `sources`: a socket on `client` connected to the server (no route lookup per send).
    With `sources`: packet n leaves from address sources[n % len]; the wildcard bind
    receives the replies sent back to those 127.x.y.z addresses (nothing is ever sent
    anywhere but to `server`).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if not sources:
        sock.bind((client, 0))
        sock.connect(server)
        plain_send = sock.send
        return sock, lambda n, packet: plain_send(packet)
    sock.bind(("0.0.0.0", 0))
    ancillary = [pktinfo_source(address) for address in sources]
    count, sendmsg = len(ancillary), sock.sendmsg
    return sock, lambda n, packet: sendmsg([packet], ancillary[n % count], 0, server)


def blast(
    server: tuple[str, int],
    templates: list[bytes],
    *,
    client: str,
    duration: float,
    rate: float = 0,
    ports: int = 64,
    sources: list[str] | None = None,
    clients: tuple[str, ...] = (),
    start_at: float = 0,
) -> dict[str, int]:
    """Send requests open-loop for `duration` s.

    Without `sources` the packets rotate over `ports` sockets on `client` (many
    source ports), or, given `clients`, socket i on clients[i % len(clients)]. With
    `sources` every packet goes out from the next address in the list via IP_PKTINFO,
    from one socket. A server that answers sends its replies
    back to sockets nobody reads: they fill up and the kernel drops the rest.
    """
    addresses = clients or (client,)
    count = 1 if sources else ports
    senders = [_sender(server, addresses[i % len(addresses)], sources) for i in range(count)]
    sends = [send for _, send in senders]
    _wait_until(start_at)
    sent, started = 0, time.monotonic()
    deadline = started + duration
    counter = itertools.count(1)
    try:
        while True:
            for _ in range(_CHECK_EVERY):
                n = next(counter)
                packet = templates[n % len(templates)] % (n, n, n)
                try:
                    sends[n % len(sends)](n, packet)
                except BlockingIOError:
                    continue  # loopback send buffer full for a moment: the packet was not offered
                sent += 1
            if time.monotonic() >= deadline:
                break
            _pace(sent, rate, started)
    finally:
        for sock, _ in senders:
            sock.close()
    return {"sent": sent, "elapsed_ns": int((time.monotonic() - started) * 1e9)}


def closed_loop(
    server: tuple[str, int],
    templates: list[bytes],
    *,
    client: str,
    duration: float,
    window: int = 32,
    timeout: float = 0.05,
    sources: list[str] | None = None,
    limit: int = 0,
    start_at: float = 0,
) -> dict[str, int]:
    """Keep `window` requests in flight from one socket; a reply frees a slot.

    Request n uses templates[n % len]. Stops after `duration` s or `limit` requests.
    A timeout means replies were lost: the window is refilled and `timeouts` counted.
    """
    sock, send = _sender(server, client, sources)
    sock.settimeout(timeout)
    recv = sock.recv  # bound once: this loop is the generator's whole cost
    kinds = len(templates)
    codes: dict[bytes, int] = {}
    timeouts = n = 0
    limit = limit or 1 << 62
    _wait_until(start_at)
    started = time.monotonic()
    deadline = started + duration
    try:
        for n in range(1, window + 1):
            send(n, templates[n % kinds] % (n, n, n))
        while n < limit and time.monotonic() < deadline:
            for _ in range(_CHECK_EVERY):
                try:
                    reply = recv(65535)
                except TimeoutError:
                    timeouts += 1
                    for _ in range(window):
                        n += 1
                        send(n, templates[n % kinds] % (n, n, n))
                    break
                code = reply[8:11]  # "SIP/2.0 403 ..."; parsed into ints once at the end
                codes[code] = codes.get(code, 0) + 1
                n += 1
                send(n, templates[n % kinds] % (n, n, n))
    finally:
        sock.close()
    result = {f"status_{sipmsg.status_code(b'SIP/2.0 ' + code)}": count for code, count in codes.items()}
    result.update(sent=n, timeouts=timeouts, elapsed_ns=int((time.monotonic() - started) * 1e9))
    return result


class _Lane:
    """One REGISTER client: its own Call-ID, Contact, CSeq, nonce and nonce count.

    Like a phone, it keeps one cnonce per challenge and counts requests with nc.
    """

    def __init__(self, template: bytes, name: str):
        self.template, self.name = template, name
        self.answer: sipmsg.DigestAnswer | None = None
        self.challenges = 0
        self.nc = 0
        self.cseq = 0

    def adopt(self, answer: sipmsg.DigestAnswer | None) -> None:
        self.answer, self.nc = answer, 0
        self.challenges += 1

    def next_request(self, n: int) -> bytes:
        self.cseq += 1
        packet = self.template % (n, 0, self.cseq)
        if self.answer is None:
            return packet
        self.nc += 1
        header = self.answer.header(self.nc, f"{self.name}c{self.challenges}")
        return sipmsg.with_header(packet, f"Authorization: {header}")


def digest_register(
    server: tuple[str, int],
    *,
    client: str,
    user: str,
    password: str,
    duration: float,
    lanes: int = 16,
    name: str = "p0",
    timeout: float = 0.2,
    start_at: float = 0,
) -> dict[str, int]:
    """`lanes` closed-loop REGISTER clients on one socket, each with one request in flight.

    A lane answers every 401 by adopting its nonce (nc restarts at 1) and otherwise
    reuses the nonce with an increasing nonce count, the way a phone re-registers.
    Counts 200 OKs and challenges.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((client, 0))
    sock.settimeout(timeout)
    client_text = "{}:{}".format(*sock.getsockname())
    server_text = f"{server[0]}:{server[1]}"
    uri = f"sip:{server_text}"
    by_call_id: dict[bytes, _Lane] = {}
    for index in range(lanes):
        lane_name = f"{name}l{index}"
        template = sipmsg.request_template(
            "REGISTER", user=user, server=server_text, client=client_text, lane=lane_name
        )
        lane = _Lane(template, lane_name)
        by_call_id[f"bench-{lane_name}-0".encode()] = lane
    codes: Counter[int] = Counter()
    timeouts = 0
    counter = itertools.count(1)

    def answer(challenge: dict[str, str]) -> sipmsg.DigestAnswer:
        return sipmsg.DigestAnswer(challenge, user=user, password=password, method="REGISTER", uri=uri)

    def send(lane: _Lane) -> None:
        sock.sendto(lane.next_request(next(counter)), server)

    _wait_until(start_at)
    started = time.monotonic()
    deadline = started + duration
    try:
        for lane in by_call_id.values():
            send(lane)
        while time.monotonic() < deadline:
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                timeouts += 1
                for lane in by_call_id.values():
                    lane.adopt(None)  # start over: fresh challenge for every lane
                    send(lane)
                continue
            code = sipmsg.status_code(reply)
            codes[code] += 1
            lane = by_call_id.get(sipmsg.call_id(reply))
            if lane is None:
                continue
            challenge = sipmsg.parse_challenge(reply) if code in (401, 407) else None
            if challenge:
                lane.adopt(answer(challenge))
            elif code != 200:
                lane.adopt(None)
            send(lane)
    finally:
        sock.close()
    result = {f"status_{code}": count for code, count in codes.items()}
    result.update(timeouts=timeouts, elapsed_ns=int((time.monotonic() - started) * 1e9))
    return result
