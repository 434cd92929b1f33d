#!/usr/bin/python
# Copyright (c) sipguard contributors
# MIT License (see LICENSE in the collection's root or https://opensource.org/license/mit)
# SPDX-License-Identifier: MIT
"""Ansible module: send one SIP request like a scanner would and report what (if anything) answered."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sip_probe
short_description: Probe a SIP endpoint the way a scanner does; silence is a result
description:
  - Sends one SIP C(OPTIONS), C(REGISTER) or C(INVITE) over UDP or TCP, IPv4 or IPv6, from a chosen source
    address and port and with a chosen User-Agent (a scanner's by default), and reports whether anything
    answered, the status code and reason, the C(Server) and C(User-Agent) headers and the round-trip time.
  - No answer is a result (RV(answered=false)), not a failure; so is a refused TCP connection.
  - Read-only; it never reports a change and runs in check mode too. Uses the Python standard library
    only, so it runs on any host with python3 (the audit role runs it on vantage points).
version_added: "0.1.0"
author: sipguard maintainers (@sipguard)
options:
  host:
    description: Name, IPv4 or IPv6 literal of the SIP endpoint.
    type: str
    required: true
  port:
    description: SIP port of the endpoint.
    type: int
    default: 5060
  transport:
    description: Transport to use.
    type: str
    choices: [udp, tcp]
    default: udp
  method:
    description: Request to send.
    type: str
    choices: [OPTIONS, REGISTER, INVITE]
    default: OPTIONS
  user_agent:
    description: User-Agent header of the request; the default is the one sipvicious sends.
    type: str
    default: friendly-scanner
  from_user:
    description: User part of the From URI (and of the To URI for C(REGISTER)).
    type: str
    default: "100"
  to_user:
    description: User part of the Request-URI and To URI for C(OPTIONS) and C(INVITE).
    type: str
    default: "100"
  source_address:
    description:
      - IP address to send from (it must belong to this host). Also chooses the address family when
        O(host) is a name with both IPv4 and IPv6 addresses.
    type: str
  source_port:
    description: Port to send from; V(0) lets the kernel choose.
    type: int
    default: 0
  timeout:
    description:
      - Seconds to wait for a final answer after each send (UDP), or for the connection and the answer (TCP).
    type: float
    default: 2.0
  attempts:
    description:
      - How many times to send the request over UDP when nothing answers (RFC 3261 retransmissions, but
        at a fixed interval of O(timeout)). Ignored for TCP.
    type: int
    default: 1
notes:
  - A provisional answer (such as C(100 Trying)) is recorded, and the probe keeps waiting for a final one
    until the timeout; the last answer received is reported.
  - A final answer to an C(INVITE) is acknowledged with C(ACK) so the endpoint stops retransmitting it;
    a call that was accepted (2xx) is hung up at once with C(BYE). Still, the probe is meant for endpoints
    that reject strangers; do not point an C(INVITE) probe at a phone that would ring.
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Read-only; there is nothing to diff.
    support: none
"""

EXAMPLES = r"""
- name: Ask the softswitch what a scanner would ask
  sipguard.hardening.sip_probe:
    host: 198.18.0.10
  register: probe

- name: Fail when a stranger gets any answer from an internet-facing server
  ansible.builtin.assert:
    that: not probe.answered
    fail_msg: "{{ probe.target }} answered {{ probe.status_code }} {{ probe.reason }} to a scanner"

- name: REGISTER over TCP from a given source address, like svwar would
  sipguard.hardening.sip_probe:
    host: sip.example.net
    transport: tcp
    method: REGISTER
    source_address: 198.18.0.20
    user_agent: sipvicious
    timeout: 1.5
"""

RETURN = r"""
answered:
  description: Whether a SIP response arrived.
  returned: always
  type: bool
  sample: true
status_code:
  description: Status code of the response reported, or V(null) when nothing answered.
  returned: always
  type: int
  sample: 403
reason:
  description: Reason phrase of the response, or V(null).
  returned: always
  type: str
  sample: Forbidden
server:
  description: The response's Server header, or V(null).
  returned: always
  type: str
  sample: sipresponder
user_agent_header:
  description: The response's User-Agent header, or V(null).
  returned: always
  type: str
rtt_ms:
  description: Milliseconds from the last send to the response, or V(null).
  returned: always
  type: float
  sample: 0.42
response_lines:
  description: Status line and header lines of the response (no body); empty when nothing answered.
  returned: always
  type: list
  elements: str
  sample: ["SIP/2.0 403 Forbidden", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK1;rport=40000"]
status_codes:
  description: Every status code received, in order (provisional ones included).
  returned: always
  type: list
  elements: int
  sample: [100, 403]
target:
  description: The address, port and transport the request went to.
  returned: always
  type: str
  sample: "[2001:2::10]:5060/udp"
source:
  description: The local address and port the request was sent from.
  returned: always
  type: str
  sample: "198.18.0.20:40312"
tcp_refused:
  description: True when the TCP connection was refused (a closed port).
  returned: always
  type: bool
  sample: false
tcp_closed:
  description: True when the endpoint accepted the TCP connection but closed it without answering.
  returned: always
  type: bool
  sample: false
udp_unreachable:
  description: True when the kernel reported the UDP port unreachable (ICMP), which also means no answer.
  returned: always
  type: bool
  sample: false
"""

import errno
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_ip import parse_address
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_sip import (
    METHODS,
    build_follow_up,
    frame,
    host_for_uri,
    new_token,
    parse_response,
    probe_request,
)

ARGUMENT_SPEC = {
    "host": {"type": "str", "required": True},
    "port": {"type": "int", "default": 5060},
    "transport": {"type": "str", "choices": ["udp", "tcp"], "default": "udp"},
    "method": {"type": "str", "choices": list(METHODS), "default": "OPTIONS"},
    "user_agent": {"type": "str", "default": "friendly-scanner"},
    "from_user": {"type": "str", "default": "100"},
    "to_user": {"type": "str", "default": "100"},
    "source_address": {"type": "str"},
    "source_port": {"type": "int", "default": 0},
    "timeout": {"type": "float", "default": 2.0},
    "attempts": {"type": "int", "default": 1},
}
MAX_LINES = 40
MAX_MESSAGE = 65536  # bytes; a TCP stream that frames nothing within this is not SIP

# This module runs on the target's Python (2.7, 3.6+). Python 2 has no ConnectionRefusedError and no
# time.monotonic; a socket's timeout is socket.timeout everywhere (TimeoutError only from 3.10), and
# socket.error is OSError on Python 3 but an IOError on Python 2.
monotonic = getattr(time, "monotonic", time.time)
SOCKET_ERRORS = (OSError, socket.error)


def _is_errno(exc, *codes):
    return isinstance(exc, SOCKET_ERRORS) and not isinstance(exc, socket.timeout) and exc.errno in codes


class ProbeError(Exception):
    """Bad input or a local failure (cannot resolve, cannot bind): the probe could not be sent."""


def check_params(params):
    if not params["host"].strip():
        raise ProbeError("host must not be empty")
    if not 1 <= params["port"] <= 65535:
        raise ProbeError("port {} is outside 1-65535".format(params['port']))
    if not 0 <= params["source_port"] <= 65535:
        raise ProbeError("source_port {} is outside 0-65535".format(params['source_port']))
    if not 0 < params["timeout"] <= 60:
        raise ProbeError("timeout {} must be more than 0 and at most 60 seconds".format(params['timeout']))
    if not 1 <= params["attempts"] <= 10:
        raise ProbeError("attempts {} must be from 1 to 10".format(params['attempts']))
    if params["source_address"] is not None:
        try:
            parse_address(params["source_address"])
        except ValueError:
            raise ProbeError("source_address {!r} is not an IP address".format(params['source_address']))


def resolve(host, port, transport, source_address):
    """(family, sockaddr) of the target; the source address, if any, picks the family."""
    family = socket.AF_UNSPEC
    if source_address:
        family = socket.AF_INET6 if parse_address(source_address)[0] == 6 else socket.AF_INET
    socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, family, socktype)
    except socket.gaierror as exc:
        wanted = (
            " as IPv{}, the family of source_address".format(parse_address(source_address)[0])
            if source_address
            else ""
        )
        raise ProbeError("cannot resolve host {!r}{}: {}".format(host, wanted, exc.strerror))
    family, _type, _proto, _canonname, sockaddr = infos[0]
    return family, sockaddr


def open_socket(family, transport, source_address, source_port):
    sock = socket.socket(family, socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
    if source_address or source_port:
        wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"  # noqa: S104 - a source, not a listener
        try:
            sock.bind((source_address or wildcard, source_port))
        except SOCKET_ERRORS as exc:
            sock.close()
            where = "{}:{}".format(source_address or wildcard, source_port)
            raise ProbeError("cannot send from {}: {}".format(where, exc.strerror))
    return sock


class Exchange(object):
    """One request and the responses that belong to it (same Call-ID)."""

    def __init__(self, params, transport):
        self.params = params
        self.transport = transport
        self.call_id = new_token()
        self.branch = "z9hG4bK" + new_token()
        self.tag = new_token()
        self.request = b""
        self.responses = []  # (parsed response, rtt in ms)
        self.sent_at = 0.0

    def build(self, sock):
        local_address, local_port = sock.getsockname()[:2]
        self.request = probe_request(
            self.params["method"],
            host=self.params["host"].strip("[]"),
            port=self.params["port"],
            transport=self.transport,
            local_address=local_address,
            local_port=local_port,
            user_agent=self.params["user_agent"],
            from_user=self.params["from_user"],
            to_user=self.params["to_user"],
            call_id=self.call_id,
            branch=self.branch,
            tag=self.tag,
        )
        return "{}:{}".format(host_for_uri(local_address), local_port)

    def record(self, data):
        """Keep a response to our request; return True when it is final."""
        response = parse_response(data)
        if response is None or response["headers"].get("call-id") != self.call_id:
            return False  # not SIP, or a stray message for someone else
        self.responses.append((response, (monotonic() - self.sent_at) * 1000))
        return response["status_code"] >= 200

    def closing_messages(self):
        """What to send after a final answer to an INVITE: the ACK, and a BYE if the call was accepted."""
        if self.params["method"] != "INVITE" or not self.responses:
            return []
        response = self.responses[-1][0]
        if response["status_code"] < 200:
            return []
        if response["status_code"] >= 300:
            return [build_follow_up("ACK", self.request, response, cseq=1, branch=None)]
        return [
            build_follow_up("ACK", self.request, response, cseq=1, branch="z9hG4bK" + new_token()),
            build_follow_up("BYE", self.request, response, cseq=2, branch="z9hG4bK" + new_token()),
        ]


REFUSED = object()  # what _receive returns for the one socket error its caller expects


def _receive(sock, deadline, expected_errno):
    """One read before `deadline`: the data, None at the deadline, REFUSED for `expected_errno`."""
    remaining = deadline - monotonic()
    if remaining <= 0:
        return None
    sock.settimeout(remaining)
    try:
        return sock.recv(65535)
    except socket.timeout:
        return None
    except SOCKET_ERRORS as exc:
        if not _is_errno(exc, expected_errno):
            raise
        return REFUSED


def probe_udp(sock, sockaddr, exchange, result):
    sock.connect(sockaddr)  # a connected UDP socket only receives from the target and sees ICMP errors
    result["source"] = exchange.build(sock)
    for _attempt in range(exchange.params["attempts"]):
        exchange.sent_at = monotonic()
        try:
            sock.send(exchange.request)
        except SOCKET_ERRORS as exc:
            if not _is_errno(exc, errno.ECONNREFUSED):
                raise
            result["udp_unreachable"] = True  # the ICMP error of the previous attempt
            return
        deadline = exchange.sent_at + exchange.params["timeout"]
        while True:
            data = _receive(sock, deadline, errno.ECONNREFUSED)
            if data is None:
                break
            if data is REFUSED:
                result["udp_unreachable"] = True
                return
            if exchange.record(data):
                return
        if exchange.responses:
            return  # a provisional answer: the endpoint is there, retransmitting adds nothing


def probe_tcp(sock, sockaddr, exchange, result):
    sock.settimeout(exchange.params["timeout"])
    try:
        sock.connect(sockaddr)
    except socket.timeout:
        return
    except SOCKET_ERRORS as exc:
        if not _is_errno(exc, errno.ECONNREFUSED):
            raise
        result["tcp_refused"] = True
        return
    result["source"] = exchange.build(sock)
    exchange.sent_at = monotonic()
    sock.sendall(exchange.request)
    deadline = exchange.sent_at + exchange.params["timeout"]
    buffer = b""
    while True:
        data = _receive(sock, deadline, errno.ECONNRESET)
        if data is None:
            return
        if data is REFUSED or not data:  # reset, or closed by the other side
            result["tcp_closed"] = not exchange.responses
            return
        buffer, done = _take_messages(buffer + data, exchange)
        if done:
            return


def _take_messages(buffer, exchange):
    """Record every whole message at the front of a TCP stream: (the rest, whether to stop reading)."""
    while True:
        message, buffer, broken = frame(buffer, MAX_MESSAGE)
        if broken:
            return buffer, True  # larger than any SIP message, or unframeable: what came before stands
        if message is None:
            return buffer, False
        if exchange.record(message):
            return buffer, True


def run_probe(params):
    """Send the request and return the module result (never raises for silence)."""
    check_params(params)
    transport = params["transport"]
    family, sockaddr = resolve(params["host"], params["port"], transport, params["source_address"])
    result = {
        "changed": False,
        "target": "{}:{}/{}".format(host_for_uri(sockaddr[0]), sockaddr[1], transport),
        "source": None,
        "tcp_refused": False,
        "tcp_closed": False,
        "udp_unreachable": False,
    }
    exchange = Exchange(params, transport)
    sock = open_socket(family, transport, params["source_address"], params["source_port"])
    try:
        (probe_udp if transport == "udp" else probe_tcp)(sock, sockaddr, exchange, result)
        for message in exchange.closing_messages():
            try:
                sock.send(message)
            except SOCKET_ERRORS:  # a courtesy to the server; the answer is already recorded
                pass
    except SOCKET_ERRORS as exc:
        raise ProbeError("probing {} failed: {}".format(result['target'], exc.strerror or exc))
    finally:
        sock.close()

    last, rtt = exchange.responses[-1] if exchange.responses else (None, None)
    headers = last["headers"] if last else {}
    result.update(
        answered=last is not None,
        status_code=last["status_code"] if last else None,
        reason=last["reason"] if last else None,
        server=headers.get("server"),
        user_agent_header=headers.get("user-agent"),
        rtt_ms=round(rtt, 3) if rtt is not None else None,
        response_lines=last["lines"][:MAX_LINES] if last else [],
        status_codes=[response["status_code"] for response, _rtt in exchange.responses],
    )
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run_probe(module.params)
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
