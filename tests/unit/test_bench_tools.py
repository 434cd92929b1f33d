"""Smoke tests for the benchmark's pure helpers (the benchmark itself is not run here)."""

import socket

import loadgen  # bench/ is on pytest's pythonpath (pyproject.toml)
import procstats
import pytest
import sipmsg

UDP_NAMES = "InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors"
SNMP = f"""Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: {UDP_NAMES}
Udp: 1000 3 42 900 40 0 0
UdpLite: {UDP_NAMES}
UdpLite: 0 0 0 0 0 0 0
"""


def udp_line(port_hex: str, drops: int) -> str:
    """A /proc/net/udp row (13 fields, drops last) for a socket on 127.0.0.1."""
    queues = "00000000:00000000 00:00000000 00000000"
    return f"  1: 0100007F:{port_hex} 00000000:0000 07 {queues} 0 0 1 2 0 {drops}"


# Two sockets on port 0x13C4 = 5060 (SO_REUSEPORT workers) and one on another port.
PROC_NET_UDP = "\n".join(
    ["  sl local_address rem_address st tx_queue rx_queue tr tm->when retrnsmt uid timeout inode ref drops",
     udp_line("13C4", 17), udp_line("13C4", 5), udp_line("13C5", 999)]
)


def test_snmp_udp_counters_are_read_from_the_udp_rows_only():
    counters = procstats.parse_snmp_udp(SNMP)
    assert counters["InErrors"] == 42
    assert counters["RcvbufErrors"] == 40


def test_snmp_without_udp_rows_is_an_error():
    with pytest.raises(ValueError):
        procstats.parse_snmp_udp("Ip: a b\nIp: 1 2\n")


def test_socket_drops_are_summed_over_every_socket_on_the_port():
    assert procstats.parse_udp_socket_drops(PROC_NET_UDP, 5060) == 22
    assert procstats.parse_udp_socket_drops(PROC_NET_UDP, 5061) == 999
    assert procstats.parse_udp_socket_drops(PROC_NET_UDP, 5062) == 0


def test_vmrss_is_read_in_kib():
    assert procstats.parse_vmrss_kib("Name:\tpython3\nVmRSS:\t   23456 kB\n") == 23456
    assert procstats.parse_vmrss_kib("Name:\tzombie\n") == 0


def test_request_template_gives_unique_branch_call_id_and_cseq():
    template = sipmsg.request_template(
        "REGISTER", user="1001", server="127.0.0.1:5070", client="127.0.0.1:5060"
    )
    packet = (template % (7, 8, 9)).decode()
    assert packet.startswith("REGISTER sip:127.0.0.1:5070 SIP/2.0\r\n")
    assert "branch=z9hG4bK-b0-7;" in packet
    assert "\r\nCall-ID: bench-0-8\r\n" in packet
    assert "\r\nCSeq: 9 REGISTER\r\n" in packet
    assert "\r\nContact: <sip:1001-0@127.0.0.1:5060>\r\n" in packet
    assert packet.endswith("Content-Length: 0\r\n\r\n")


def test_status_code_and_call_id_of_a_reply():
    reply = b"SIP/2.0 403 Forbidden\r\nVia: x\r\ncall-id: abc-1\r\nContent-Length: 0\r\n\r\n"
    assert sipmsg.status_code(reply) == 403
    assert sipmsg.call_id(reply) == b"abc-1"
    assert sipmsg.status_code(b"OPTIONS sip:x SIP/2.0\r\n") == 0


def test_digest_answer_matches_the_rfc_2617_example():
    reply = (
        b"SIP/2.0 401 Unauthorized\r\n"
        b'WWW-Authenticate: Digest realm="testrealm@host.com", qop="auth,auth-int", '
        b'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n\r\n'
    )
    challenge = sipmsg.parse_challenge(reply)
    answer = sipmsg.DigestAnswer(
        challenge,
        user="Mufasa",
        password="Circle Of Life",  # noqa: S106 - the RFC's example credential
        method="GET",
        uri="/dir/index.html",
    )
    header = answer.header(1, "0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_loopback_sources_are_distinct_and_skip_network_and_broadcast_hosts():
    sources = loadgen.loopback_sources(600, first="127.1.0.1")
    assert len(set(sources)) == 600
    assert all(not s.endswith((".0", ".255")) for s in sources)
    assert sources[:2] == ["127.1.0.1", "127.1.0.2"]


def test_loopback_sources_refuse_to_leave_127_slash_8():
    with pytest.raises(ValueError):
        loadgen.loopback_sources(10, first="127.255.255.250")


def test_pktinfo_sets_the_source_address_on_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
         socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(2)
        sender.bind(("127.0.0.1", 0))
        sender.sendmsg([b"x"], loadgen.pktinfo_source("127.9.8.7"), 0, sink.getsockname())
        assert sink.recvfrom(16)[1][0] == "127.9.8.7"


def test_cpu_ticks_are_utime_plus_stime_even_with_a_tricky_command_name():
    # Fields 14 and 15 (utime 7, stime 5) after a command name holding spaces and ')'.
    stat = "42 (my (odd) name) S 1 42 42 0 -1 4194304 10 0 0 0 7 5 0 0 20 0 1 0 100 0 0"
    assert procstats.parse_cpu_ticks(stat) == 12


def test_pss_is_read_from_smaps_rollup():
    rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:     20000 kB\nPss:      9000 kB\n"
    assert procstats.parse_pss_kib(rollup) == 9000


def test_bare_reference_copies_only_the_five_headers_and_answers_like_an_unknown_source():
    import bare_responder  # noqa: PLC0415 - only this test needs it

    request = sipmsg.request_template("REGISTER", user="9", server="127.0.0.1:5070", client="127.1.0.1:5060")
    reply = bare_responder.answer(request % (1, 2, 3)).decode()
    assert reply.startswith("SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.1.0.1:5060;branch=z9hG4bK-b0-1")
    assert "\r\nCall-ID: bench-0-2\r\nCSeq: 3 REGISTER\r\nWWW-Authenticate: Digest " in reply
    assert "User-Agent" not in reply and "Contact" not in reply and "Max-Forwards" not in reply
    options = sipmsg.request_template("OPTIONS", user="9", server="127.0.0.1:5070", client="127.1.0.1:5060")
    assert bare_responder.answer(options % (1, 2, 3)).startswith(b"SIP/2.0 403 Forbidden\r\n")
    assert bare_responder.answer(b"ACK sip:x SIP/2.0\r\nVia: a\r\n\r\n") is None
