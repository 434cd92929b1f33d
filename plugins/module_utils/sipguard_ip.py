"""IP address and network parsing for the sipguard modules, on Python 2.7 as on Python 3.

Python 3 has the `ipaddress` module and it is used there. Python 2.7 (a CentOS 7 host's system Python) has
no `ipaddress` in its standard library, so there the same two questions are answered with
`socket.inet_pton`/`inet_ntop`, which give the same canonical text (lower case, the longest run of zero
groups shortened to '::', never a single one).
"""

from __future__ import absolute_import, division, print_function

import socket
import sys

__metaclass__ = type

try:
    import ipaddress  # novermin - Python 3 only; Python 2.7 uses the socket fallback below
except ImportError:  # Python 2.7 without the backport
    ipaddress = None

# The Python 2 backport of ipaddress refuses byte strings (str there); the socket functions take them.
USE_IPADDRESS = ipaddress is not None and sys.version_info[0] >= 3

_FAMILIES = ((4, socket.AF_INET, 32), (6, socket.AF_INET6, 128))


def _packed(text):
    """(version, packed bytes, max prefix length) of an address, or ValueError."""
    for version, family, bits in _FAMILIES:
        try:
            return version, socket.inet_pton(family, text), bits
        except (socket.error, ValueError, TypeError, UnicodeError):
            continue
    raise ValueError("{!r} is not an IP address".format(text))


def _text(version, packed):
    return socket.inet_ntop(socket.AF_INET if version == 4 else socket.AF_INET6, packed)


def parse_address(text):
    """(4 or 6, canonical text) of one IP address; ValueError if `text` is not one."""
    text = str(text).strip()
    if USE_IPADDRESS:
        addr = ipaddress.ip_address(text)
        return addr.version, str(addr)
    version, packed = _packed(text)[:2]
    return version, _text(version, packed)


def parse_network(text):
    """(4 or 6, network text, prefix length, max prefix length) of an address or CIDR network.

    Host bits are cleared ('10.0.0.7/24' is 10.0.0.0/24); a bare address is a /32 or /128. ValueError if
    `text` is neither.
    """
    text = str(text).strip()
    if USE_IPADDRESS:
        net = ipaddress.ip_network(text, strict=False)
        return net.version, str(net.network_address), net.prefixlen, net.max_prefixlen
    address, slash, prefix = text.partition("/")
    version, packed, bits = _packed(address)
    if not slash:
        length = bits
    elif prefix.isdigit() and int(prefix) <= bits:
        length = int(prefix)
    else:
        raise ValueError("{!r} has no valid prefix length".format(text))
    data = bytearray(packed)
    for index in range(len(data)):
        keep = min(8, max(0, length - 8 * index))
        data[index] &= (0xFF << (8 - keep)) & 0xFF
    return version, _text(version, bytes(data)), length, bits
