#!/usr/bin/python
# Copyright (c) sipguard contributors
# MIT License (see LICENSE in the collection's root or https://opensource.org/license/mit)
# SPDX-License-Identifier: MIT
"""Ansible module: resolve a SIP trunk name to addresses, ports and transports the way RFC 3263 does."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sip_dns
short_description: Resolve a SIP trunk through DNS (NAPTR, SRV, A/AAAA) into addresses and ports
description:
  - Resolves a SIP domain or host the way RFC 3263 locates a SIP server, C(NAPTR) then C(SRV) then
    C(A)/C(AAAA), and returns every address with its port and transport.
  - Meant to run on the controller (C(delegate_to) C(localhost)), where dnspython is installed, so trunk
    names in the inventory become addresses for the firewall allow-set and the responder's gateways.
  - Read-only; never reports a change and runs in check mode too.
  - A name that does not exist, has no usable records, or a nameserver that does not answer in time is a
    failure whose message names the name and the nameserver.
version_added: "0.1.0"
author: sipguard maintainers (@sipguard)
requirements:
  - dnspython >= 2.0 (on the host the module runs on)
options:
  name:
    description:
      - The SIP domain or host to resolve, for example C(trunk.example.net). An IP literal is returned as it
        is, with O(default_port).
      - With O(lookup=srv) it may also be a full service name such as C(_sip._udp.example.net).
    type: str
    required: true
  lookup:
    description:
      - V(auto) follows RFC 3263 and falls back step by step - C(NAPTR) records pointing at C(SRV) names; if
        none lead anywhere, C(SRV) records for C(_sip._udp), C(_sip._tcp) and C(_sips._tcp); if none, the
        name's own C(A)/C(AAAA) records with O(default_port).
      - V(naptr), V(srv) and V(host) run only that step and fail when it finds nothing.
    type: str
    choices: [auto, naptr, srv, host]
    default: auto
  transport:
    description:
      - Keep only targets for this transport. V(any) keeps them all; a plain host lookup then reports V(udp),
        the RFC 3263 default.
    type: str
    choices: [any, udp, tcp, tls]
    default: any
  nameservers:
    description: IP addresses of the nameservers to ask; by default the system resolver configuration.
    type: list
    elements: str
  port:
    description: Port of the nameservers.
    type: int
    default: 53
  timeout:
    description: Seconds allowed for each DNS query (all nameservers and retries together).
    type: float
    default: 3.0
  default_port:
    description: Port reported for targets found without C(SRV) records (set V(5061) for TLS).
    type: int
    default: 5060
  families:
    description: Address families to look up - V(4) for C(A) records, V(6) for C(AAAA) records.
    type: list
    elements: int
    default: [4, 6]
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Read-only; there is nothing to diff.
    support: none
"""

EXAMPLES = r"""
- name: Resolve the carrier's trunk on the controller
  sipguard.hardening.sip_dns:
    name: trunk.example.net
  delegate_to: localhost
  run_once: true
  register: trunk

- name: Only UDP targets, IPv4 only, from a given nameserver
  sipguard.hardening.sip_dns:
    name: trunk.example.net
    transport: udp
    families: [4]
    nameservers: [198.18.0.53]
    timeout: 2
  delegate_to: localhost

- name: Allow the trunk's addresses in the firewall layer
  ansible.builtin.set_fact:
    sipguard_trunk_networks: "{{ trunk.networks }}"
"""

RETURN = r"""
targets:
  description: Every address found, in preference order, with how it was found.
  returned: success
  type: list
  elements: dict
  contains:
    host:
      description: The host name that carried the address (the SRV target, or O(name) itself).
      type: str
    address:
      description: IPv4 or IPv6 address.
      type: str
    port:
      description: SIP port at that address.
      type: int
    transport:
      description: V(udp), V(tcp) or V(tls).
      type: str
    family:
      description: V(4) or V(6).
      type: int
    priority:
      description: SRV priority (lower is preferred), or V(null) without SRV.
      type: int
    weight:
      description: SRV weight, or V(null) without SRV.
      type: int
    via:
      description: The step that found it - V(naptr), V(srv) or V(host).
      type: str
  sample:
    - {"host": "sip1.example.net", "address": "198.18.5.1", "port": 5060, "transport": "udp", "family": 4,
       "priority": 10, "weight": 60, "via": "naptr"}
addresses:
  description: The distinct addresses of RV(targets), in order.
  returned: success
  type: list
  elements: str
  sample: ["198.18.5.1", "2001:2::1"]
networks:
  description: RV(addresses) as single-host networks (C(/32), C(/128)), ready for a firewall allow list.
  returned: success
  type: list
  elements: str
  sample: ["198.18.5.1/32", "2001:2::1/128"]
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import dns.exception
    import dns.name
    import dns.resolver

    DNSPYTHON_ERROR = None
except ImportError as exc:  # reported through fail_json, not as a traceback
    DNSPYTHON_ERROR = exc

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "lookup": {"type": "str", "choices": ["auto", "naptr", "srv", "host"], "default": "auto"},
    "transport": {"type": "str", "choices": ["any", "udp", "tcp", "tls"], "default": "any"},
    "nameservers": {"type": "list", "elements": "str"},
    "port": {"type": "int", "default": 53},
    "timeout": {"type": "float", "default": 3.0},
    "default_port": {"type": "int", "default": 5060},
    "families": {"type": "list", "elements": "int", "default": [4, 6]},
}

# NAPTR service field -> transport, and the SRV prefix for each transport (RFC 3263 sections 4.1 and 4.2).
NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIXES = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
RECORD_TYPES = {4: "A", 6: "AAAA"}


class DnsError(Exception):
    """Bad input, or a DNS answer that leaves nothing to return; the message is meant for the user."""


def check_params(params):
    if not params["name"].strip():
        raise DnsError("name must not be empty")
    for server in params["nameservers"] or []:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise DnsError(f"nameserver {server!r} is not an IP address") from None
    for option in ("port", "default_port"):
        if not 1 <= params[option] <= 65535:
            raise DnsError(f"{option} {params[option]} is outside 1-65535")
    if not 0 < params["timeout"] <= 60:
        raise DnsError(f"timeout {params['timeout']} must be more than 0 and at most 60 seconds")
    if not params["families"] or not set(params["families"]) <= {4, 6}:
        raise DnsError(f"families {params['families']} must list 4, 6 or both")


def wanted_transports(transport):
    return list(SRV_PREFIXES) if transport == "any" else [transport]


def usable_naptrs(records, transport):
    """(transport, SRV name) of the NAPTR records a SIP client may follow, best first (RFC 3263 4.1)."""
    usable = []
    for record in sorted(records, key=lambda r: (r.order, r.preference)):
        service = record.service.decode().upper()
        # Only terminal "S" records lead straight to SRV names; anything else is another protocol's business.
        if record.flags.decode().upper() != "S" or service not in NAPTR_SERVICES:
            continue
        if NAPTR_SERVICES[service] in wanted_transports(transport):
            usable.append((NAPTR_SERVICES[service], record.replacement.to_text()))
    return usable


def srv_names(name, transport):
    """(transport, SRV name) pairs to ask for: a full service name as given, else one per transport."""
    if name.startswith("_"):
        for proto, prefix in SRV_PREFIXES.items():
            if name.startswith(prefix + "."):
                return [(proto, name)]
        raise DnsError(f"{name!r} is not a SIP service name (expected _sip._udp, _sip._tcp or _sips._tcp)")
    return [(proto, f"{SRV_PREFIXES[proto]}.{name}") for proto in wanted_transports(transport)]


class Resolver:
    """Runs the queries; remembers why each one came back empty for the final error message."""

    def __init__(self, params):
        if params["nameservers"]:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = list(params["nameservers"])
        else:
            try:
                self.resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise DnsError("no nameservers given and none in the system resolver configuration") from None
        self.resolver.port = params["port"]
        self.resolver.lifetime = params["timeout"]
        self.resolver.timeout = params["timeout"]
        self.families = params["families"]
        self.empty = []  # "NAPTR example.net: NXDOMAIN", ...

    def describe_servers(self):
        return ", ".join(f"{server}:{self.resolver.port}" for server in self.resolver.nameservers)

    def query(self, name, rdtype):
        """The records, or [] when the name does not exist or has none of this type."""
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except dns.resolver.NXDOMAIN:
            self.empty.append(f"{rdtype} {name}: does not exist (NXDOMAIN)")
        except dns.resolver.NoAnswer:
            self.empty.append(f"{rdtype} {name}: no answer")
        except dns.exception.Timeout:
            raise DnsError(
                f"{rdtype} lookup of {name!r} timed out after {self.resolver.lifetime:g}s "
                f"(nameserver {self.describe_servers()})"
            ) from None
        except dns.resolver.NoNameservers as exc:
            raise DnsError(f"{rdtype} lookup of {name!r} failed: {exc}") from None
        except dns.exception.DNSException as exc:
            where = self.describe_servers()
            raise DnsError(f"{rdtype} lookup of {name!r} at {where} failed: {exc}") from None
        return []

    def addresses(self, host):
        """(family, address) of a host name, IPv4 first."""
        found = []
        for family in sorted(set(self.families)):
            found.extend((family, record.address) for record in self.query(host, RECORD_TYPES[family]))
        return found


def host_targets(resolver, name, transport, port, via="host", priority=None, weight=None):
    host = name.rstrip(".")
    return [
        {
            "host": host,
            "address": address,
            "port": port,
            "transport": transport,
            "family": family,
            "priority": priority,
            "weight": weight,
            "via": via,
        }
        for family, address in resolver.addresses(host)
    ]


def srv_targets(resolver, pairs, via):
    targets = []
    for transport, srv_name in pairs:
        records = sorted(resolver.query(srv_name, "SRV"), key=lambda r: (r.priority, -r.weight))
        for record in records:
            if record.target == dns.name.root:  # "." means: no such service at this domain
                continue
            targets += host_targets(
                resolver, record.target.to_text(), transport, record.port, via, record.priority, record.weight
            )
    return targets


def resolve(params):
    """The module result without `changed`: targets, addresses, networks."""
    check_params(params)
    name, lookup, transport = params["name"].strip(), params["lookup"], params["transport"]
    resolver = Resolver(params)
    default_transport = "udp" if transport == "any" else transport

    try:
        literal = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        targets = []
        if literal.version in params["families"]:
            targets = [
                {
                    "host": str(literal),
                    "address": str(literal),
                    "port": params["default_port"],
                    "transport": default_transport,
                    "family": literal.version,
                    "priority": None,
                    "weight": None,
                    "via": "host",
                }
            ]
    else:
        targets = []
        if lookup in ("auto", "naptr"):
            targets = srv_targets(resolver, usable_naptrs(resolver.query(name, "NAPTR"), transport), "naptr")
        if not targets and lookup in ("auto", "srv"):
            targets = srv_targets(resolver, srv_names(name, transport), "srv")
        if not targets and lookup in ("auto", "host"):
            targets = host_targets(resolver, name, default_transport, params["default_port"])

    if not targets:
        servers = resolver.describe_servers() if literal is None else "no DNS query made"
        detail = "; ".join(resolver.empty) or f"{name} is not of address family {params['families']}"
        raise DnsError(f"no SIP targets for {name!r} (lookup {lookup}, nameserver {servers}): {detail}")

    unique, seen = [], set()
    for target in targets:
        key = (target["address"], target["port"], target["transport"])
        if key not in seen:
            seen.add(key)
            unique.append(target)
    addresses = list(dict.fromkeys(target["address"] for target in unique))
    return {
        "targets": unique,
        "addresses": addresses,
        "networks": [str(ipaddress.ip_network(address)) for address in addresses],
    }


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if DNSPYTHON_ERROR is not None:
        module.fail_json(msg=missing_required_lib("dnspython"), exception=DNSPYTHON_ERROR)
    try:
        result = resolve(module.params)
    except DnsError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
