"""sipguard.hardening.firewall for real: ansible runs the module inside a network namespace we create.

Topology (both namespaces created here and deleted in the finalizer):

    client netns  198.18.99.2, 198.18.99.3, 2001:2:99::2  --veth--  server netns  198.18.99.1, 2001:2:99::1

The server namespace starts with a small firewall of its own (an ESTABLISHED,RELATED accept, an
unrelated chain and ipset) so the tests can show the module leaves it alone. Every iptables/ipset/
conntrack call goes through `ip netns exec`; this host's own firewall is never touched.
"""

import json
import os
import random
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.ansible import ansible
from testkit.systemd import BOOTED, wait_for_systemd

pytestmark = pytest.mark.integration

SERVER4, SERVER6 = "198.18.99.1", "2001:2:99::1"
CLIENT4, OTHER4, CLIENT6 = "198.18.99.2", "198.18.99.3", "2001:2:99::2"
SCANNER = "OPTIONS sip:100@198.18.99.1 SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n"
PHONE = "OPTIONS sip:100@198.18.99.1 SIP/2.0\r\nUser-Agent: Linphone/5.0\r\n\r\n"

BASELINE = """*filter
:other-chain - [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 2222 -j ACCEPT
-A other-chain -j RETURN
COMMIT
"""

# A UDP echo server: prints every datagram's source, answers it (so conntrack sees a reply).
ECHO = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
sock = socket.socket(family, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 5060))
print("ready", flush=True)
while True:
    data, src = sock.recvfrom(4096)
    print(src[0], data.split(b"\r\n")[-3].decode(errors="replace"), flush=True)
    sock.sendto(b"SIP/2.0 200 OK\r\n\r\n", src)
"""

# Sends `count` datagrams from src:sport and prints how many were answered.
SEND = r"""
import socket, sys
src, sport, dst, payload, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
family = socket.AF_INET6 if ":" in dst else socket.AF_INET
sock = socket.socket(family, socket.SOCK_DGRAM)
sock.bind((src, sport))
sock.settimeout(float(sys.argv[6]))
answered = 0
for _ in range(count):
    sock.sendto(payload.encode(), (dst, 5060))
    try:
        sock.recvfrom(4096)
        answered += 1
    except TimeoutError:
        pass
print(answered)
"""


# Sends one datagram from each of N unassigned addresses of a prefix (needs CAP_NET_ADMIN).
SPOOF6 = r"""
import ipaddress, socket, sys
prefix, count, dst, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
base = int(ipaddress.IPv6Address(prefix))
sent = 0
for n in range(1, count + 1):
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, 75, 1)  # IPV6_TRANSPARENT
    sock.bind((str(ipaddress.IPv6Address(base + n)), 41000))
    sock.sendto(payload.encode(), (dst, 5060))
    sock.close()
    sent += 1
print(sent)
"""

SEND_MANY = r"""
import json, socket, sys, time
src, dst, payloads = sys.argv[1], sys.argv[2], json.load(sys.stdin)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((src, 43000))
for payload in payloads:
    sock.sendto(payload.encode(), (dst, 5060))
    time.sleep(0.001)
print(len(payloads))
"""

# A bounded steady stream: one datagram every 2 ms for N seconds; prints how many it sent.
STREAM = r"""
import socket, sys, time
src, dst, payload, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((src, 42000))
sent, end = 0, time.monotonic() + seconds
while time.monotonic() < end and sent < 10000:
    sock.sendto(payload.encode(), (dst, 5060))
    sent += 1
    time.sleep(0.002)
print(sent)
"""

# Counts datagrams (a stream would overflow the echo server's output pipe); prints the count on SIGTERM.
COUNTER = r"""
import signal, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 5060))
count = 0
def done(*_):
    print(count, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
print("ready", flush=True)
while True:
    sock.recv(4096)
    count += 1
"""

TCP_ECHO = r"""
import socket, sys
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 5060))
srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(10)
while data := conn.recv(65536):
    conn.sendall(data)
"""

# Sends the payload in one segment per message and reads the echo back, bounded by time.
TCP_SEND = r"""
import socket, sys, time
src, dst, payload = sys.argv[1], sys.argv[2], sys.argv[3]
end_of_message = "\r\n\r\n"
sock = socket.create_connection((dst, 5060), timeout=5, source_address=(src, 0))
for message in payload.split(end_of_message)[:-1]:
    sock.sendall((message + end_of_message).encode())
    time.sleep(0.05)
sock.settimeout(3)
got, end = b"", time.monotonic() + 5
while time.monotonic() < end and got.count(end_of_message.encode()) < payload.count(end_of_message):
    try:
        chunk = sock.recv(65536)
    except TimeoutError:
        break
    if not chunk:
        break
    got += chunk
print(got.decode(errors="replace"))
"""


def sh(*args, check=True):
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
    if check and proc.returncode:
        raise AssertionError(f"{args[:6]} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return proc


def run_ansible(target, args, check=False, diff=False, check_ok=True, prefix=()):
    """`target` is the ansible command's arguments up to the host pattern (run under `prefix`);
    returns the module's result."""
    cmd = [*target, "-m", "sipguard.hardening.firewall", "-a", json.dumps(args)]
    cmd += (["--check"] if check else []) + (["--diff"] if diff else [])
    proc = ansible(*cmd, tool="ansible", callback="json", timeout=120, prefix=prefix)
    hosts = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]
    result = next(iter(hosts.values()))
    if check_ok:
        assert not result.get("failed"), result.get("msg")
    return result


class Lab:
    """Two namespaces and the calls the tests make into them."""

    def __init__(self, tag):
        self.server, self.client = f"sgfw-s{tag}", f"sgfw-c{tag}"
        self.name = f"sgt{tag}"[:12]  # the layer's name; not the default, so no host state is shared

    def up(self):
        sh("ip", "netns", "add", self.server)
        sh("ip", "netns", "add", self.client)
        sh("ip", "link", "add", "sgfw0", "netns", self.server, "type", "veth",
           "peer", "name", "sgfw1", "netns", self.client)
        for ns, dev, addrs in ((self.server, "sgfw0", [f"{SERVER4}/24", f"{SERVER6}/64"]),
                               (self.client, "sgfw1", [f"{CLIENT4}/24", f"{OTHER4}/24", f"{CLIENT6}/64"])):
            for addr in addrs:
                sh("ip", "-n", ns, "addr", "add", addr, "dev", dev, *(["nodad"] if ":" in addr else []))
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for tool in ("iptables-restore", "ip6tables-restore"):
            subprocess.run(["ip", "netns", "exec", self.server, tool], input=BASELINE, text=True, check=True,
                           timeout=30)
        self.srv("ipset", "create", "other-set", "hash:ip")

    def down(self):
        # state: absent also cancels a pending rollback sleeper before the namespace goes.
        self.module({"state": "absent"}, check_ok=False)
        for ns in (self.server, self.client):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(f"/var/lib/sipguard/firewall/{self.name}", ignore_errors=True)

    def srv(self, *args, check=True):
        return sh("ip", "netns", "exec", self.server, *args, check=check).stdout

    def snapshot(self):
        """Everything of the server's firewall that must look the same after `state: absent`."""
        def rules(tool):  # without the "# Generated ... on <time>" comments
            return [line for line in self.srv(tool).splitlines() if not line.startswith("#")]

        return rules("iptables-save"), rules("ip6tables-save"), self.srv("ipset", "list", "-n").split()

    def input_rules(self):
        return [line for line in self.srv("iptables-save", "-t", "filter").splitlines()
                if line.startswith("-A INPUT ")]

    def module(self, args, check=False, diff=False, check_ok=True):
        """Run the module with `ansible localhost -m` inside the server namespace."""
        args = {"name": self.name, **args}
        if args.get("state", "present") == "present":
            args.setdefault("persist", False)
        return run_ansible(["localhost"], args, check=check, diff=diff, check_ok=check_ok,
                           prefix=["ip", "netns", "exec", self.server])

    def echo_server(self, address):
        proc = subprocess.Popen(["ip", "netns", "exec", self.server, sys.executable, "-c", ECHO, address],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def send(self, src, payload, count=1, sport=40000, timeout=0.3):
        dst = SERVER6 if ":" in src else SERVER4
        out = sh("ip", "netns", "exec", self.client, sys.executable, "-c", SEND,
                 src, str(sport), dst, payload, str(count), str(timeout)).stdout
        return int(out)

    def send_from_prefix(self, prefix, count, payload):
        """One datagram from each of `count` addresses prefix+1.. (IPV6_TRANSPARENT: unassigned
        sources, as a spoofer has them). Returns how many were sent."""
        # A static neighbour entry: resolving the server from an unassigned source can fail,
        # and then every datagram waits in vain.
        mac = self.srv("cat", "/sys/class/net/sgfw0/address").strip()
        sh("ip", "-n", self.client, "-6", "neigh", "replace", SERVER6, "lladdr", mac, "dev", "sgfw1")
        return int(sh("ip", "netns", "exec", self.client, sys.executable, "-c", SPOOF6,
                      prefix, str(count), SERVER6, payload).stdout)

    def send_many(self, src, payloads):
        """Send each payload once as a datagram (paced, bounded); returns how many were sent."""
        argv = ["ip", "netns", "exec", self.client, sys.executable, "-c", SEND_MANY, src, SERVER4]
        proc = subprocess.run(argv, input=json.dumps(payloads), capture_output=True, text=True, timeout=60,
                              check=True)
        return int(proc.stdout)

    def stream(self, src, payload, seconds):
        """A steady stream (one datagram every 2 ms, for `seconds`); prints how many it sent."""
        return subprocess.Popen(["ip", "netns", "exec", self.client, sys.executable, "-c", STREAM,
                                 src, SERVER4, payload, str(seconds)], stdout=subprocess.PIPE, text=True)

    def tcp_exchange(self, src, payload):
        """Send `payload` over one TCP connection to a server that echoes what it reads."""
        server = subprocess.Popen(["ip", "netns", "exec", self.server, sys.executable, "-c", TCP_ECHO,
                                   SERVER4], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            return sh("ip", "netns", "exec", self.client, sys.executable, "-c", TCP_SEND,
                      src, SERVER4, payload).stdout
        finally:
            server.kill()
            server.wait(timeout=10)

    def rule_packets(self, needle, version=4):
        """Packet counter of the first rule of ours containing `needle`."""
        save = self.srv("iptables-save" if version == 4 else "ip6tables-save", "-c", "-t", "filter")
        for line in save.splitlines():
            if needle in line and f"{self.name}-" in line:
                return int(line[1:].split(":")[0])
        raise AssertionError(f"no rule with {needle!r}")


@pytest.fixture
def lab():
    if os.geteuid() != 0 or not shutil.which("ipset"):
        pytest.skip("needs root, iproute2, iptables and ipset")
    lab = Lab(os.getpid() % 100000)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def user_agents(save):
    """The scanner names in our User-Agent rules of an iptables-save text (printed as hex)."""
    names = []
    for chunk in save.split('--hex-string "|')[1:]:
        text = bytes.fromhex(chunk.split("|")[0]).decode()
        names.append(text.split(":", 1)[1].strip())
    return set(names)


def sets_without_countdown(save):
    """`ipset save` with each member's remaining time dropped (it counts down between two reads)."""
    return [line.split(" timeout ")[0] if line.startswith("add ") else line for line in save.splitlines()]


def received(proc):
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out.splitlines()


def test_apply_reapply_change_and_remove_leave_the_host_as_found(lab):
    before = lab.snapshot()
    options = {"scanner_user_agents": ["friendly-scanner"], "rate_limit": 10, "log": True}

    dry = lab.module(options, check=True)
    assert dry["changed"] and lab.snapshot() == before, "check mode must not change anything"

    first = lab.module(options)
    assert first["changed"]
    jump = f"-A INPUT -j {lab.name}-INPUT"
    assert lab.input_rules()[0] == jump, "our jump must come before the ESTABLISHED accept"
    assert lab.input_rules().count(jump) == 1
    assert "-A other-chain -j RETURN" in lab.srv("iptables-save")
    assert "other-set" in lab.srv("ipset", "list", "-n")

    again = lab.module(options)
    assert not again["changed"], again["differences"]
    assert not lab.module(options, check=True)["changed"]

    applied = lab.snapshot()
    wider = {**options, "scanner_user_agents": ["friendly-scanner", "sipcli"]}
    preview = lab.module(wider, check=True, diff=True)
    assert preview["changed"] and "sipcli" in preview["diff"]["after"]
    assert lab.snapshot() == applied, "check mode must not change anything"

    changed = lab.module(wider, diff=True)
    assert changed["changed"]
    assert "User-Agent: sipcli" in changed["diff"]["after"] and "sipcli" not in changed["diff"]["before"]
    assert lab.input_rules().count(jump) == 1

    gone = lab.module({"state": "absent"})
    assert gone["changed"]
    assert lab.snapshot() == before
    assert not lab.module({"state": "absent"})["changed"]


def test_every_kind_of_option_is_idempotent_against_the_kernel(lab):
    # The renderer writes what iptables-save prints back; each combination must re-apply unchanged.
    combos = [
        {"log": True, "log_rate": "1/second", "final_action": "REJECT",
         "allowed_networks": ["198.18.99.0/25"]},
        {"sip_ports": list(range(5060, 5080)), "protocols": ["udp"], "rate_limit": 50, "rate_burst": 100,
         "management_ports": [22, 2222], "trunk_addresses": [OTHER4, "2001:2:99::3"]},
        {"scanner_user_agents": ["friendly-scanner", "VaxSIPUserAgent", "sip cli"], "block_set_timeout": 60,
         "allowed_networks": ["2001:2:99::/64"], "management_ports": []},
        {"ip_versions": [4], "rate_limit": 5},
    ]
    for options in combos:
        assert lab.module(options)["changed"], options
        again = lab.module(options)
        assert not again["changed"], (options, again["differences"])
    # The last combination dropped IPv6: none of the layer's IPv6 objects may be left.
    assert lab.name not in lab.srv("ip6tables-save")
    assert f"{lab.name}-allow6" not in lab.srv("ipset", "list", "-n")


def test_reapply_keeps_the_dynamic_members_of_the_block_set(lab):
    lab.module({})
    lab.srv("ipset", "add", f"{lab.name}-block4", OTHER4, "timeout", "600")
    lab.module({"scanner_user_agents": ["sipvicious"], "block_set_timeout": 120})
    listing = lab.srv("ipset", "list", f"{lab.name}-block4")
    assert OTHER4 in listing and "timeout 120" in listing


def test_a_refused_rule_or_bad_cidr_leaves_the_old_rules_intact(lab):
    lab.module({"scanner_user_agents": ["friendly-scanner"]})
    before = lab.snapshot()

    # Python accepts the shape; iptables-restore --test refuses the rate ("Rate too fast").
    refused = lab.module({"log": True, "log_rate": "999999/second"}, check_ok=False)
    assert refused["failed"]
    assert "refused the IPv4 rules, nothing was changed" in refused["msg"] and "too fast" in refused["msg"]
    assert lab.snapshot() == before

    bad = lab.module({"allowed_networks": ["198.18.0.0/33"]}, check_ok=False)
    assert bad["failed"] and "198.18.0.0/33" in bad["msg"]
    assert lab.snapshot() == before


def test_scanner_user_agent_is_dropped_and_a_phone_gets_through(lab):
    lab.module({"scanner_user_agents": ["friendly-scanner"]})
    for address, client in ((SERVER4, CLIENT4), (SERVER6, CLIENT6)):
        server = lab.echo_server(address)
        try:
            assert lab.send(client, SCANNER) == 0
            assert lab.send(client, PHONE, sport=40001) == 1
        finally:
            lines = received(server)
        assert lines == [f"{client} User-Agent: Linphone/5.0"], "the scanner's packet must never arrive"
        assert lab.rule_packets("--hex-string", 4 if client == CLIENT4 else 6) >= 1


def test_a_blocked_source_is_dropped_even_with_an_established_conntrack_entry(lab):
    lab.module({})
    server = lab.echo_server(SERVER4)
    try:
        assert lab.send(OTHER4, PHONE) == 1  # the reply makes the flow ESTABLISHED
        assert OTHER4 in lab.srv("conntrack", "-L", "-s", OTHER4)
        # What the responder does when it suspends a source: no conntrack cleanup.
        lab.srv("ipset", "add", f"{lab.name}-block4", OTHER4, "timeout", "60", "-exist")
        assert lab.send(OTHER4, PHONE) == 0
        # UDP entries show no state word; a replied flow (ctstate ESTABLISHED) lacks [UNREPLIED].
        flow = lab.srv("conntrack", "-L", "-s", OTHER4)
        assert "sport=40000" in flow and "UNREPLIED" not in flow, "the established flow is still there"
        assert lab.send(CLIENT4, PHONE) == 1
    finally:
        lines = received(server)
    assert lines == [f"{OTHER4} User-Agent: Linphone/5.0", f"{CLIENT4} User-Agent: Linphone/5.0"]


def test_block_addresses_blocks_and_deletes_conntrack_entries(lab):
    lab.module({})
    server = lab.echo_server(SERVER4)
    try:
        assert lab.send(CLIENT4, PHONE) == 1
        result = lab.module({"block_addresses": [CLIENT4]})
        assert result["changed"] and result["blocked"] == [CLIENT4]
        assert result["conntrack_deleted"] >= 1
        assert CLIENT4 not in lab.srv("conntrack", "-L", "-s", CLIENT4, check=False)
        assert lab.send(CLIENT4, PHONE) == 0
        assert not lab.module({"block_addresses": [CLIENT4]})["changed"]
    finally:
        received(server)


def test_allowed_networks_and_trunks_restrict_sip(lab):
    lab.module({"allowed_networks": [f"{CLIENT4}/32"], "final_action": "REJECT"})
    server = lab.echo_server(SERVER4)
    try:
        assert lab.send(CLIENT4, PHONE) == 1
        assert lab.send(OTHER4, PHONE) == 0
        lab.module({"allowed_networks": [f"{CLIENT4}/32"], "trunk_addresses": [OTHER4]})
        assert lab.send(OTHER4, PHONE, sport=40002) == 1
    finally:
        lines = received(server)
    assert [line.split()[0] for line in lines] == [CLIENT4, OTHER4]


def test_a_flood_is_limited_but_bans_nobody(lab):
    # What 150 forged packets could do before: put any source in the block set for an hour.
    lab.module({"rate_limit": 5, "rate_burst": 5, "block_set_timeout": 60})
    server = lab.echo_server(SERVER4)
    try:
        flooded = lab.send(CLIENT4, PHONE, count=150, timeout=0.01)
        time.sleep(1.5)  # the bucket refills; a source that was never banned gets through again
        after = lab.send(CLIENT4, PHONE, sport=40001)
    finally:
        received(server)
    assert flooded < 60, "the rate limit must bite"
    assert after == 1
    assert CLIENT4 not in lab.srv("ipset", "list", f"{lab.name}-block4")


def test_ipv6_sources_are_limited_and_blocked_per_64(lab):
    lab.module({"rate_limit": 5, "rate_burst": 10})
    server = lab.echo_server(SERVER6)
    try:
        sent = lab.send_from_prefix("2001:2:99:0:1::", 2000, PHONE)
    finally:
        lines = received(server)
    assert sent == 2000
    # 2000 addresses of one /64 in well under a second: one bucket, so about the burst gets in.
    assert 10 <= len(lines) < 60, len(lines)

    lab.module({"rate_limit": 5, "rate_burst": 10, "block_addresses": ["2001:2:99:0:1::7"]})
    server = lab.echo_server(SERVER6)
    try:
        time.sleep(2.5)  # past the rate limit's refill
        assert lab.send(CLIENT6, PHONE) == 0, "another address of the blocked /64"
    finally:
        assert received(server) == []


TIWARI = ("INVITE sip:100@198.18.99.1 SIP/2.0\r\nFrom: \"Rahul Tiwari\" <sip:rahul@trunk>;tag=9\r\n"
          "Call-ID: a8SMAPq2x9\r\nUser-Agent: TrunkSwitch/2.1\r\n\r\n")
SMAP_UA = "OPTIONS sip:100@198.18.99.1 SIP/2.0\r\nUser-Agent:smap 0.6\r\n\r\n"


def test_scanner_names_elsewhere_in_a_message_pass_and_the_header_is_dropped(lab):
    options = {"scanner_user_agents": ["iWar", "smap", "friendly-scanner"]}
    lab.module(options)
    server = lab.echo_server(SERVER4)
    try:
        assert lab.send(OTHER4, TIWARI) == 1, "iWar in Tiwari, SMAP in a Call-ID: ordinary traffic"
        assert lab.send(OTHER4, SMAP_UA, sport=40001) == 0, "User-Agent:smap without a space"
        assert lab.send(OTHER4, SCANNER.replace("User-Agent", "user-agent"), sport=40002) == 0
    finally:
        lines = received(server)
    assert [line.split()[0] for line in lines] == [OTHER4]
    # A trunk sending a scanner's name as its User-Agent is still a trunk.
    lab.module({**options, "trunk_addresses": [OTHER4]})
    server = lab.echo_server(SERVER4)
    try:
        assert lab.send(OTHER4, SMAP_UA, sport=40003) == 1
    finally:
        received(server)


def test_a_scanner_user_agent_in_a_second_fragment_is_dropped_too(lab):
    # No conntrack rule of the host's own: the layer must make the kernel reassemble by itself.
    for tool in ("iptables", "ip6tables"):
        lab.srv(tool, "-D", "INPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
    lab.module({"scanner_user_agents": ["friendly-scanner"]})
    padded = SCANNER.replace("User-Agent", "X-Pad: " + "a" * 3000 + "\r\nUser-Agent")
    for address, client in ((SERVER4, CLIENT4), (SERVER6, CLIENT6)):
        server = lab.echo_server(address)
        try:
            assert lab.send(client, padded) == 0
            assert lab.send(client, padded.replace("friendly-scanner", "Linphone/5.0"), sport=40001) == 1
        finally:
            assert [line.split()[0] for line in received(server)] == [client]


DEFAULT_SCANNERS = ["friendly-scanner", "sipvicious", "sipcli", "sip-scan", "iWar", "SIPBomber", "sundayddr",
                    "VaxSIPUserAgent", "VaxIPUserAgent", "pplsip", "siparmyknife", "smap"]


PHONE_AGENTS = ["Linphone/5.2", "Yealink SIP-T46S", "Grandstream GXP2170", "TrunkSwitch/2.1"]


def ordinary_messages(count, seed=4711):
    """Ordinary SIP traffic in which scanner names turn up everywhere but in the User-Agent:
    Call-IDs, tags, branches, display names, SDP, digest fields, other headers."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable corpus, not a secret
    alphabet = string.ascii_letters + string.digits

    def token(n=10):
        word = "".join(rng.choice(alphabet) for _ in range(n))
        if rng.random() < 0.5:  # a scanner name, in any case, somewhere inside
            name = rng.choice(DEFAULT_SCANNERS)
            name = rng.choice([name, name.upper(), name.lower()])
            cut = rng.randrange(len(word))
            word = word[:cut] + name + word[cut:]
        return word

    messages = []
    for n in range(count):
        body = (f"v=0\r\no=- {n} 1 IN IP4 198.18.99.3\r\ns={token()}\r\nc=IN IP4 198.18.99.3\r\n"
                f"m=audio 4000 RTP/AVP 0\r\na=tool:{token()}\r\n")
        headers = [
            f"INVITE sip:{token(4)}@198.18.99.1 SIP/2.0",
            f"Via: SIP/2.0/UDP 198.18.99.3:5060;branch=z9hG4bK{token()}",
            f'From: "{token(6)} {token(6)}" <sip:{token(5)}@trunk>;tag={token()}',
            f"To: <sip:{token(4)}@198.18.99.1>",
            f"Call-ID: {token(16)}@{token(4)}",
            "CSeq: 1 INVITE",
            f'Authorization: Digest username="{token(5)}", realm="{token()}", nonce="{token(20)}", '
            f'uri="sip:x", response="{token(32)}", cnonce="{token()}", nc=00000001, qop=auth',
            f"X-Note: {token()} User-Agentless {token()}",
            f"User-Agent: {rng.choice(PHONE_AGENTS)}",
            "Content-Type: application/sdp",
            f"Content-Length: {len(body)}",
        ]
        messages.append("\r\n".join(headers) + "\r\n\r\n" + body)
    return messages


def test_false_positive_corpus_of_ordinary_traffic_finds_nothing(lab):
    lab.module({"scanner_user_agents": DEFAULT_SCANNERS})
    corpus = ordinary_messages(1000)
    assert sum(any(name.lower() in m.lower() for name in DEFAULT_SCANNERS) for m in corpus) > 400
    counter = subprocess.Popen(["ip", "netns", "exec", lab.server, sys.executable, "-c", COUNTER, SERVER4],
                               stdout=subprocess.PIPE, text=True)
    assert counter.stdout.readline().strip() == "ready"
    try:
        sent = lab.send_many(OTHER4, corpus)
        time.sleep(0.3)
    finally:
        counter.terminate()
        got = int(counter.communicate(timeout=10)[0])
    assert sent == len(corpus)
    assert got == sent, f"{sent - got} ordinary messages dropped as scanners"
    assert lab.rule_packets("--hex-string") == 0
    # The same corpus with a scanner's User-Agent is dropped, every message.
    assert lab.send(OTHER4, corpus[0].replace("User-Agent: ", "User-Agent: sipvicious "), sport=40009) == 0


def test_one_tcp_connection_carries_every_call_with_a_scanner_name_inside(lab):
    lab.module({"scanner_user_agents": ["iWar", "smap"], "allowed_networks": [OTHER4]})
    calls = [TIWARI.replace("a8SMAPq2x9", f"call-{n}") for n in range(4)]
    calls[1] = TIWARI  # the Call-ID with SMAP in it
    got = lab.tcp_exchange(OTHER4, "".join(calls))
    assert got.count("INVITE sip:") == 4, "no call behind a dropped segment may stall"


def test_the_host_still_decides_what_the_layer_lets_pass(lab):
    # A host policy DROP with its own accept for CLIENT4 only, and a fail2ban-style ban on OTHER4.
    lab.srv("iptables", "-P", "INPUT", "DROP")
    lab.srv("iptables", "-N", "f2b-sip")
    lab.srv("iptables", "-A", "f2b-sip", "-s", OTHER4, "-j", "REJECT")
    lab.srv("iptables", "-A", "f2b-sip", "-j", "RETURN")
    lab.srv("iptables", "-A", "INPUT", "-j", "f2b-sip")
    lab.srv("iptables", "-A", "INPUT", "-s", CLIENT4, "-p", "udp", "--dport", "5060", "-j", "ACCEPT")
    server = lab.echo_server(SERVER4)
    try:
        # public: SIP open to the world as far as sipguard goes
        lab.module({"scanner_user_agents": ["friendly-scanner"]})
        assert lab.send(OTHER4, PHONE) == 0, "fail2ban's ban must still bite"
        assert lab.send(CLIENT4, PHONE, sport=40001) == 1
        lab.srv("iptables", "-D", "INPUT", "-s", CLIENT4, "-p", "udp", "--dport", "5060", "-j", "ACCEPT")
        assert lab.send(CLIENT4, PHONE, sport=40002) == 0, "the host's DROP policy must still hold"
        # Opening SIP where the host drops it is explicit, and fail2ban's ban still comes first.
        lab.module({"allowed_networks": ["198.18.99.0/24"], "restrict_to_allowed": False,
                    "scanner_user_agents": ["friendly-scanner"], "accept_sip": True})
        assert lab.input_rules()[-1] == f"-A INPUT -j {lab.name}-ACCEPT"
        assert lab.send(CLIENT4, PHONE, sport=40003) == 1
        assert lab.send(OTHER4, PHONE, sport=40004) == 0
    finally:
        lines = received(server)
        lab.srv("iptables", "-P", "INPUT", "ACCEPT")
    assert [line.split()[0] for line in lines] == [CLIENT4, CLIENT4]


def test_a_tool_inserting_above_the_jump_is_no_change_an_accept_above_is(lab):
    lab.module({})
    lab.srv("iptables", "-I", "INPUT", "1", "-j", "other-chain")  # what fail2ban does at start
    assert not lab.module({})["changed"]
    lab.srv("iptables", "-I", "INPUT", "1", "-p", "udp", "-j", "ACCEPT")
    again = lab.module({})
    assert again["changed"] and lab.input_rules()[0] == f"-A INPUT -j {lab.name}-INPUT"


def test_a_lan_only_layer_with_nothing_to_allow_is_refused(lab):
    before = lab.snapshot()
    for options in ({"restrict_to_allowed": True}, {"restrict_to_allowed": True, "trunk_addresses": []}):
        refused = lab.module(options, check_ok=False)
        assert refused["failed"] and "both are empty" in refused["msg"]
        assert "Traceback" not in refused["msg"]
    assert lab.snapshot() == before


def test_a_refusal_that_also_drops_a_version_leaves_everything_as_it_was(lab):
    lab.module({"scanner_user_agents": ["friendly-scanner"], "block_set_timeout": 600})
    lab.srv("ipset", "add", f"{lab.name}-block6", "2001:2:99::77")
    before = lab.snapshot(), sets_without_countdown(lab.srv("ipset", "save"))
    refused = lab.module({"ip_versions": [4], "log": True, "log_rate": "999999/second"}, check_ok=False)
    assert refused["failed"] and "nothing was changed" in refused["msg"]
    assert (lab.snapshot(), sets_without_countdown(lab.srv("ipset", "save"))) == before


def test_no_lan_packet_is_lost_while_the_first_apply_goes_live(lab):
    counter = subprocess.Popen(["ip", "netns", "exec", lab.server, sys.executable, "-c", COUNTER, SERVER4],
                               stdout=subprocess.PIPE, text=True)
    assert counter.stdout.readline().strip() == "ready"
    stream = lab.stream(CLIENT4, PHONE, seconds=8)
    try:
        time.sleep(0.5)
        lab.module({"allowed_networks": [f"{CLIENT4}/32"]})  # restricted to the LAN
        sent = int(stream.communicate(timeout=30)[0])
        time.sleep(0.3)
    finally:
        counter.terminate()
        got = int(counter.communicate(timeout=10)[0])
    assert sent > 500
    assert got == sent, f"{sent - got} LAN packets lost while the layer went live"


def test_a_pending_guard_refuses_an_unguarded_apply_and_a_late_confirm_fails(lab):
    lab.module({"scanner_user_agents": ["sipvicious"]})
    lab.module({"scanner_user_agents": ["sipcli"], "rollback_timeout": 10})
    before_refusal = lab.snapshot()
    refused = lab.module({"scanner_user_agents": ["sipsak"]}, check_ok=False)
    assert refused["failed"] and "rollback guard" in refused["msg"]
    assert lab.snapshot() == before_refusal
    guard = f"/var/lib/sipguard/firewall/{lab.name}"
    deadline = time.monotonic() + 30
    while os.path.exists(guard) and time.monotonic() < deadline:
        time.sleep(0.3)
    late = lab.module({"state": "confirmed"}, check_ok=False)
    assert late["failed"] and "rolled back" in late["msg"]
    assert user_agents(lab.srv("iptables-save")) == {"sipvicious"}
    assert lab.module({"scanner_user_agents": ["sipsak"]})["changed"]
    assert not lab.module({"state": "confirmed"})["changed"], "a new apply forgets the old rollback"


def test_rollback_restores_the_block_sets_timeout_and_a_removed_versions_members(lab):
    lab.module({"block_set_timeout": 600})
    lab.srv("ipset", "add", f"{lab.name}-block6", "2001:2:99::77")
    lab.module({"block_set_timeout": 60, "ip_versions": [4], "rollback_timeout": 6})
    assert f"{lab.name}-block6" not in lab.srv("ipset", "list", "-n")
    deadline = time.monotonic() + 20
    while "timeout 60 " in lab.srv("ipset", "save", f"{lab.name}-block4") and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(0.5)
    assert "timeout 600" in lab.srv("ipset", "save", f"{lab.name}-block4")
    assert "2001:2:99::" in lab.srv("ipset", "save", f"{lab.name}-block6")
    assert not lab.module({"block_set_timeout": 600})["changed"]


def test_a_chain_left_by_an_earlier_sipguard_is_removed(lab):
    lab.module({})
    ban = f"{lab.name}-BAN"
    lab.srv("iptables", "-N", ban)
    lab.srv("iptables", "-A", ban, "-j", "DROP")
    again = lab.module({})
    assert again["changed"] and ban not in lab.srv("iptables-save")
    assert not lab.module({})["changed"]


def log_rules(lab, tool="iptables-save"):
    return [line for line in lab.srv(tool, "-t", "filter").splitlines() if "-j LOG" in line]


def own_rules(lab, tool="iptables-save"):
    """The layer's chains, their rules and the jumps to them, without counters."""
    return [line.split(" [")[0] for line in lab.srv(tool, "-t", "filter").splitlines()
            if f"{lab.name}-" in line]


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.3)
    return predicate()


def test_a_debug_window_logs_in_the_layers_chain_and_ends_by_itself(lab):
    lab.module({"scanner_user_agents": ["sipcli"]})
    opened = lab.module({"scanner_user_agents": ["sipcli"], "debug_log": "open", "debug_log_ttl": 8})
    assert opened["changed"] and opened["debug_window"]["ends"].endswith(" UTC")
    for tool in ("iptables-save", "ip6tables-save"):
        logs = log_rules(lab, tool)
        assert len(logs) == 4, logs  # every SIP packet, the block set, the User-Agent with and without space
        assert all(line.startswith(f"-A {lab.name}-SIP ") and "--limit 1/sec" in line for line in logs), logs
    # A re-run without debug_log during the window (site.yml) keeps its LOG rules and its end, and
    # the window's end loads the layer as that run applied it.
    kept = lab.module({"scanner_user_agents": ["sipvicious"]})
    assert kept["changed"] and kept["debug_window"]["until"] == opened["debug_window"]["until"]
    assert any("debug window" in warning for warning in kept.get("warnings", []))
    assert len(log_rules(lab)) == 4 and user_agents(lab.srv("iptables-save")) == {"sipvicious"}
    # The host's own rules and another tool's chain, added while the window is open.
    for tool in ("iptables", "ip6tables"):
        lab.srv(tool, "-N", "f2b-test")
        lab.srv(tool, "-A", "f2b-test", "-j", "RETURN")
        lab.srv(tool, "-I", "INPUT", "1", "-p", "udp", "--dport", "5061", "-j", "f2b-test")
    lab.srv("iptables", "-A", "INPUT", "-s", OTHER4, "-j", "DROP")
    outside = [line for line in lab.srv("iptables-save", "-t", "filter").splitlines()
               if f"{lab.name}-" not in line and not line.startswith("#")]
    assert wait_until(lambda: not log_rules(lab) and not log_rules(lab, "ip6tables-save"), 30), log_rules(lab)
    assert not os.path.exists(f"/run/sipguard-firewall-{lab.name}.debug"), "the window's script stays"
    after = [line for line in lab.srv("iptables-save", "-t", "filter").splitlines()
             if f"{lab.name}-" not in line and not line.startswith("#")]
    assert after == outside, "the window's end touched rules that are not the layer's"
    assert "-A INPUT -s 198.18.99.3/32 -j DROP" in after
    assert "-A f2b-test -j RETURN" in lab.srv("ip6tables-save", "-t", "filter")
    assert user_agents(lab.srv("iptables-save")) == {"sipvicious"}
    again = lab.module({"scanner_user_agents": ["sipvicious"]})
    assert not again["changed"], again["differences"]
    assert not again["debug_window"] and not again.get("warnings")


def test_a_debug_window_shows_in_check_and_diff_mode_and_closes_on_request(lab):
    lab.module({})
    before = lab.snapshot()
    checked = lab.module({"debug_log": "open", "debug_log_ttl": 600}, check=True, diff=True)
    assert checked["changed"] and "--log-prefix" in checked["diff"]["after"]
    assert "--log-prefix" not in checked["diff"]["before"]
    assert lab.snapshot() == before, "check mode changed the kernel"
    assert not os.path.exists(f"/run/sipguard-firewall-{lab.name}.debug")
    lab.module({"debug_log": "open", "debug_log_ttl": 600})
    script = f"/run/sipguard-firewall-{lab.name}.debug"
    assert log_rules(lab) and sleepers(script), "no timer for the window"
    renewed = lab.module({"debug_log": "open", "debug_log_ttl": 900})
    assert renewed["changed"] and len(sleepers(script)) == 1, "renewing must replace the timer"
    closing = lab.module({"debug_log": "close"}, check=True, diff=True)
    assert closing["changed"] and log_rules(lab)
    closed = lab.module({"debug_log": "close"})
    assert closed["changed"] and not log_rules(lab) and not os.path.exists(script)
    assert wait_until(lambda: not sleepers(script), 5), "closing must end the timer process"
    assert lab.snapshot() == before
    assert not lab.module({"debug_log": "close"})["changed"]


@pytest.mark.slow
def test_rollback_guard_restores_the_previous_state_unless_confirmed(lab):
    before = lab.snapshot()
    guarded = lab.module({"rollback_timeout": 2})
    assert guarded["changed"] and guarded["rollback_pending"]
    deadline = time.monotonic() + 15
    while lab.snapshot() != before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert lab.snapshot() == before, "nobody confirmed: the layer must be rolled back"

    lab.module({"scanner_user_agents": ["sipvicious"]})
    guard = f"/var/lib/sipguard/firewall/{lab.name}"
    pending = lab.module({"scanner_user_agents": ["sipcli"], "rollback_timeout": 60})
    assert pending["rollback_pending"] and sleepers(guard)
    confirmed = lab.module({"state": "confirmed"})
    assert confirmed["changed"] and not confirmed["rollback_pending"]
    assert not sleepers(guard), "confirming must end the timer process"
    assert not os.path.exists(guard)
    assert user_agents(lab.srv("iptables-save")) == {"sipcli"}
    assert not lab.module({"state": "confirmed"})["changed"]


def sleepers(guard):
    """Processes whose command line names the guard directory (the detached rollback timer)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if guard.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


# --- persistence and the systemd rollback timer, in a container with systemd as PID 1 ---------

IMAGE = os.environ.get("SIPGUARD_IMAGE", "localhost/sipguard-lab:latest")


@pytest.fixture
def container():
    if os.geteuid() != 0 or not shutil.which("podman"):
        pytest.skip("needs root and podman")
    if sh("podman", "image", "exists", IMAGE, check=False).returncode != 0:
        pytest.skip(f"image {IMAGE} not built (scripts/build-image.sh)")
    name = f"sgfw-ct{os.getpid() % 100000}"
    # No network at all: the test talks to it through `podman exec` only. The set match reaches
    # ipset through a raw socket, hence NET_RAW next to NET_ADMIN.
    sh("podman", "run", "-d", "--name", name, "--network", "none", "--systemd=always",
       "--cap-add", "NET_ADMIN,NET_RAW", IMAGE, "/lib/systemd/systemd")
    try:
        state = wait_for_systemd(name, 30)
        if state not in BOOTED:
            raise AssertionError(f"systemd in {name} did not come up: {state}")
        for tool in ("iptables-restore", "ip6tables-restore"):
            subprocess.run(["podman", "exec", "-i", name, tool], input=BASELINE, text=True, check=True,
                           timeout=30)
        yield name
    finally:
        sh("podman", "rm", "-f", "-t", "0", name, check=False)


@pytest.mark.slow
def test_persistence_and_the_systemd_rollback_timer_in_a_container(container):
    def ct(*args):
        return sh("podman", "exec", container, *args, check=False).stdout

    def snapshot():
        rules = [line for tool in ("iptables-save", "ip6tables-save")
                 for line in ct(tool).splitlines() if not line.startswith("#")]
        files = ct("sh", "-c", "ls -d /etc/sipguard /var/lib/sipguard /etc/systemd/system/sipguard*")
        return rules, ct("ipset", "list", "-n").split(), files

    def module(args):
        return run_ansible(["all", "-i", f"{container},", "-c", "containers.podman.podman"], args)

    before = snapshot()
    options = {"scanner_user_agents": ["friendly-scanner"]}
    applied = module(options)
    assert applied["changed"] and not applied.get("warnings")
    for unit in ("sipguard-firewall-sets.service", "sipguard-firewall.service"):
        assert ct("systemctl", "is-enabled", unit).strip() == "enabled"

    sh("podman", "restart", "-t", "2", container)  # a reboot: only the unit can bring the layer back
    wait_for_systemd(container)
    for tool in ("iptables-save", "ip6tables-save"):
        input_rules = [line for line in ct(tool).splitlines() if line.startswith("-A INPUT")]
        assert input_rules == ["-A INPUT -j sipguard-INPUT"], "the unit loaded the layer at boot"
    assert not module(options)["changed"], "after boot the kernel must match the module's rendering"
    # The container's own rules were not persisted; put them back so `absent` can be compared.
    for tool in ("iptables-restore", "ip6tables-restore"):
        subprocess.run(["podman", "exec", "-i", container, tool, "--noflush"], input=BASELINE, text=True,
                       check=True, timeout=30)

    guarded = module({"scanner_user_agents": ["sipcli"], "rollback_timeout": 8})
    assert guarded["rollback_pending"]
    assert user_agents(ct("iptables-save")) == {"sipcli"}
    assert user_agents(ct("cat", "/etc/sipguard/firewall/sipguard.rules4")) == {"friendly-scanner"}, \
        "persisted only on confirm"
    deadline = time.monotonic() + 30
    while "sipcli" in user_agents(ct("iptables-save")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert user_agents(ct("iptables-save")) == {"friendly-scanner"}
    assert not module(options)["changed"]

    assert module({"state": "absent"})["changed"]
    assert snapshot() == before
