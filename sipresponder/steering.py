"""Steering by source address: one SO_REUSEPORT group per endpoint, one socket per process.

The kernel spreads a plain SO_REUSEPORT group by 4-tuple, so one phone's requests from two
source ports could reach two processes. A classic BPF program attached to the group
(SO_ATTACH_REUSEPORT_CBPF; no privilege needed beyond owning the socket) picks the socket
instead, from the packet's source address only:

    IPv4: A = source address;              return A % n
    IPv6: A = upper 32 bits ^ next 32 bits  (the /64); return A % n

For UDP the program's packet data starts at the payload, so the address is read relative to
the network header (SKF_NET_OFF). IPv6 sources are steered by /64 because that is the unit
the responder counts and suspends them by (limits.failure_key) and caps TCP by: all of a
/64's failures must meet in one process. The kernel uses the returned index as the position
in the group, which is the order the sockets were bound in; an index beyond the group falls
back to the kernel's own hash, so steering degrades, it never drops a packet.
"""

from __future__ import annotations

import array
import os
import socket
import struct

from sipresponder.listen import open_listener

SO_ATTACH_REUSEPORT_CBPF = 51  # Linux; Python does not export it
SKF_NET_OFF = -0x100000
FORCE_OFF = "SIPRESPONDER_STEERING"  # set to "off": behave as if the kernel refused (tests, odd kernels)

# Classic BPF opcodes (linux/filter.h).
_LD_W_ABS = 0x20  # A = word at k
_TAX = 0x07  # X = A
_XOR_X = 0xAC  # A ^= X
_MOD_K = 0x94  # A %= k
_RET_A = 0x16  # return A


class SteeringUnavailable(Exception):
    """The kernel (or the operator, through SIPRESPONDER_STEERING=off) refused steering."""


def _insn(code: int, k: int = 0) -> bytes:
    return struct.pack("=HBBI", code, 0, 0, k & 0xFFFFFFFF)


def program(family: int, count: int) -> bytes:
    """The filter for a group of `count` sockets of `family`, as struct sock_filter[]."""
    if family == socket.AF_INET:
        load = [_insn(_LD_W_ABS, SKF_NET_OFF + 12)]  # the IPv4 source address
    else:
        # The IPv6 source starts at offset 8; its /64 is the two words at 8 and 12.
        load = [_insn(_LD_W_ABS, SKF_NET_OFF + 8), _insn(_TAX), _insn(_LD_W_ABS, SKF_NET_OFF + 12),
                _insn(_XOR_X)]  # fmt: skip
    return b"".join([*load, _insn(_MOD_K, count), _insn(_RET_A)])


def slot(address: str, count: int) -> int:
    """Which socket of a group of `count` the program picks for a source: the same arithmetic."""
    if ":" in address:
        packed = socket.inet_pton(socket.AF_INET6, address.partition("%")[0])
        high, low = struct.unpack("!II", packed[:8])
        return (high ^ low) % count
    return struct.unpack("!I", socket.inet_aton(address))[0] % count


def attach(sock: socket.socket, count: int) -> None:
    """Attach the steering program to the group `sock` belongs to; raises OSError."""
    code = array.array("B", program(sock.family, count))
    address, _length = code.buffer_info()
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }, native layout.
    fprog = struct.pack("@HP", len(code) // 8, address)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)  # the kernel copies the program


def forced_off() -> bool:
    return os.environ.get(FORCE_OFF, "").strip().lower() in ("off", "0", "no", "false")


def unavailable() -> str:
    """Why steering cannot be used here, or "" when it can: a probe group of two on loopback."""
    if forced_off():
        return f"{FORCE_OFF}=off"
    if not hasattr(socket, "SO_REUSEPORT"):
        return "no SO_REUSEPORT"
    probe: list[socket.socket] = []
    try:
        probe.append(open_listener("udp", "127.0.0.1", 0, reuseport=True))
        probe.append(open_listener("udp", "127.0.0.1", probe[0].getsockname()[1], reuseport=True))
        attach(probe[0], 2)
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        for sock in probe:
            sock.close()
    return ""


def open_group(transport: str, address: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets bound to one endpoint in one steered SO_REUSEPORT group, in slot order.

    Raises SteeringUnavailable when the kernel refuses SO_REUSEPORT or the program, OSError when
    the endpoint cannot be bound at all.
    """
    if forced_off():
        raise SteeringUnavailable(f"{FORCE_OFF}=off")
    # SO_REUSEPORT would let us join a group another process of our user already listens with
    # (a second responder on the same port): bind once without it first, so "port in use" stays an error.
    open_listener(transport, address, port).close()
    group: list[socket.socket] = []
    try:
        for _socket in range(count):
            group.append(open_listener(transport, address, port, reuseport=True))
        attach(group[0], count)
    except OSError as exc:
        for sock in group:
            sock.close()
        if len(group) == count:  # all bound: it is the program the kernel refused
            raise SteeringUnavailable(exc.strerror or str(exc)) from None
        raise
    return group
