"""A deliberately bare UDP responder: the ceiling plain Python reaches on this machine.

    python3 bench/bare_responder.py PORT on|off [WORKERS]

Not sipguard's responder and not a SIP implementation: it answers every request as if
the source were unknown (REGISTER -> 401 with a fixed challenge, ACK -> nothing, anything
else -> 403; "off" -> no reply at all), copying only the five headers a reply needs.
The benchmark runs it as a reference column, to show what a lean hot path costs in Python.
"""

import os
import socket
import sys

COPIED = (b"via", b"from", b"to", b"call-id", b"cseq", b"v", b"f", b"t", b"i")
CHALLENGE = b'WWW-Authenticate: Digest realm="bare", nonce="0123456789abcdef", qop="auth", algorithm=MD5\r\n'


def answer(data: bytes) -> bytes | None:
    end = data.find(b"\r\n\r\n")
    if end < 0 or data.startswith((b"SIP/", b"ACK ")):
        return None
    lines = data[:end].split(b"\r\n")
    copied = [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() in COPIED]
    if data.startswith(b"REGISTER "):
        status, extra = b"SIP/2.0 401 Unauthorized\r\n", CHALLENGE
    else:
        status, extra = b"SIP/2.0 403 Forbidden\r\n", b""
    return status + b"\r\n".join(copied) + b"\r\n" + extra + b"Content-Length: 0\r\n\r\n"


def serve(sock: socket.socket, reply: bool) -> None:
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        data, peer = recvfrom(65535)
        if reply:
            out = answer(data)
            if out:
                sendto(out, peer)


def main() -> int:
    port, mode = int(sys.argv[1]), sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    for index in range(workers):
        # One socket per process on the same port: the kernel spreads packets over them.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        if index == workers - 1 or os.fork() == 0:
            serve(sock, mode == "on")  # runs until the benchmark stops the process group
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
