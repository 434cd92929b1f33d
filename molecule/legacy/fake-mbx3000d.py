#!/usr/bin/python2.7
"""A stand-in for VOS3000's mbx3000d in the legacy scenario (Python 2.7, like a CentOS 7 host).

Reads SS_REPLY_UNAUTHORIZED from the VOS3000 softswitch.conf at start (a restart applies a change,
as with the real daemon) and answers SIP over UDP and TCP, IPv4 and IPv6, as the profile table says
a softswitch does: On - REGISTER 401, anything else 403, to everyone; Off - REGISTER 401 to the LAN
(argv[1], an address prefix such as "198.19.13."), silence to everyone else and for other methods.
Each start is appended to /var/lib/fake-mbx3000d/starts.
"""
import re
import select
import socket
import sys
import time

CONF = "/home/kunshi/mbx3000/etc/softswitch.conf"
LAN = tuple(sys.argv[1:])
with open(CONF) as handle:
    match = re.search(r"^\s*SS_REPLY_UNAUTHORIZED\s*=\s*\"?(\w+)", handle.read(), re.M)
REPLY = bool(match) and match.group(1).lower() == "on"
with open("/var/lib/fake-mbx3000d/starts", "a") as handle:
    handle.write("{:f} {}\n".format(time.time(), "On" if REPLY else "Off"))


def answer(data, source):
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    method = lines[0].split(" ", 1)[0]
    if not method or method == "ACK" or lines[0].startswith("SIP/"):
        return None
    if method == "REGISTER" and (REPLY or source.startswith(LAN)):
        status = "401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"fake\", nonce=\"0\""
    elif REPLY:
        status = "403 Forbidden"
    else:
        return None
    keep = [h for h in lines[1:] if h.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    return "SIP/2.0 {}\r\n{}\r\nContent-Length: 0\r\n\r\n".format(status, "\r\n".join(keep)).encode("latin-1")


udp, tcp = [], []
for family, any_address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    for kind, bucket in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)):
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((any_address, 5060))
        if kind == socket.SOCK_STREAM:
            sock.listen(16)
        bucket.append(sock)
while True:
    for sock in select.select(udp + tcp, [], [])[0]:
        if sock in udp:
            data, peer = sock.recvfrom(65535)
            reply = answer(data, peer[0])
            if reply:
                sock.sendto(reply, peer)
            continue
        conn, peer = sock.accept()
        conn.settimeout(2)
        try:
            reply = answer(conn.recv(65535), peer[0])
            if reply:
                conn.sendall(reply)
        except socket.error:  # noqa: UP024 - not an OSError on Python 2
            pass
        conn.close()
