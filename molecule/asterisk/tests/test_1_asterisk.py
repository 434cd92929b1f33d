"""asterisk: two Asterisk 16 PBXs (chan_pjsip) hardened by sipguard_asterisk, one private_lan, one mixed.

Asterisk has no silent mode: what reaches it gets an answer (the artificial 401 for a source that matches
no endpoint). The kernel layer keeps the internet away in both profiles; from the LAN a stranger gets
what the backend table (sipguard_profile_backends.asterisk.settings) says, and an existing extension
cannot be told from a missing one.
"""

import re

import pytest
from sipcheck import add_address, sip_probe, svwar

PHONE = {"user": "1001", "password": "lab-phone-secret"}
METHODS = ["OPTIONS", "REGISTER", "INVITE"]
TRANSPORTS = ["udp", "tcp"]


def test_lan_phone_registers_with_digest(topo, pbx):
    reply = sip_probe(topo.host("phone"), pbx.lan, method="REGISTER", **PHONE)
    assert reply["statuses"][:1] == [401] and reply["status"] == 200, reply


def test_a_wrong_password_is_refused(topo, pbx):
    reply = sip_probe(topo.host("phone"), pbx.lan, method="REGISTER", user="1001", password="not-the-secret")
    assert reply["statuses"] == [401, 401], reply


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trunk_resolved_by_dns_gets_its_invite_handled(topo, pbx, transport):
    reply = sip_probe(topo.host("trunk"), pbx.wan, method="INVITE", transport=transport)
    assert reply["answered"] and reply["status"] >= 200, reply


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("method", METHODS)
def test_outside_gets_no_answer(topo, pbx, method, transport):
    reply = sip_probe(topo.host("scanner"), pbx.wan, method=method, transport=transport)
    assert not reply["answered"] and not reply.get("tcp_refused"), reply


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("method", METHODS)
def test_unknown_lan_source_gets_what_the_backend_table_says(topo, pbx, method, transport):
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.102", 24)
    reply = sip_probe(phone, pbx.lan, method=method, transport=transport, user="4711", source=source)
    assert reply["status"] == pbx.expected["audit"]["lan"][method], (pbx, reply)


@pytest.mark.parametrize("user", ["1001", "4711"])
def test_existing_and_missing_extension_get_the_same_answer(topo, pbx, user):
    # svwar's test: the same status for the real account as for a missing one.
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.102", 24)
    reply = sip_probe(phone, pbx.lan, method="REGISTER", user=user, source=source)
    assert reply["status"] == pbx.expected["audit"]["lan"]["REGISTER"], (pbx, reply)


def test_scanner_user_agent_from_the_lan_gets_what_the_backend_table_says(topo, pbx):
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.102", 24)
    reply = sip_probe(phone, pbx.lan, user_agent="friendly-scanner", user="4711", source=source)
    assert reply["status"] == pbx.expected["audit"]["scanner"], (pbx, reply)


def _found(report: str) -> list[str]:
    """The extensions svwar reports (its table's rows), '1001' for the real account."""
    return re.findall(r"^\|\s*(\d+)\s*\|", report, flags=re.MULTILINE)


def test_svwar_from_outside_finds_no_extension(topo, pbx):
    report = svwar(topo.host("scanner"), pbx.wan)
    assert "found nothing" in report and not _found(report), report


def test_svwar_from_the_lan_finds_no_extension(topo, pbx):
    report = svwar(topo.host("phone"), pbx.lan)
    assert "found nothing" in report and not _found(report), report


def test_sipguard_owns_only_its_files(pbx):
    for path in ("/etc/asterisk/pjsip_sipguard.conf", "/etc/asterisk/pjsip_sipguard_auth.conf"):
        f = pbx.host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "asterisk", 0o640), path
    # The operator's pjsip.conf is as the operator wrote it.
    before = pbx.host.check_output("grep ' ./pjsip.conf$' /var/lib/sipguard-test/before/asterisk.sha256")
    assert pbx.host.check_output("cd /etc/asterisk && sha256sum ./pjsip.conf") == before
    assert "lab-phone-secret" not in pbx.host.file("/etc/asterisk/pjsip_sipguard.conf").content_string


def test_security_events_are_logged(topo, pbx):
    phone = topo.host("phone")
    source = add_address(phone, f"{topo.lan}.102", 24)
    sip_probe(phone, pbx.lan, method="REGISTER", user="4799", source=source)
    log = pbx.host.file("/var/log/asterisk/sipguard-security").content_string
    assert re.search(r'SecurityEvent="InvalidAccountID".*AccountID="4799"', log), log[-2000:]
