"""sipguard_asterisk's two pjsip templates, rendered without Ansible: what Asterisk is given.

The Molecule scenario (molecule/asterisk) shows Asterisk loading them and behaving; these pin the parts
that must never change by accident: the ACL denies everything before it permits the LAN and the trunks,
and no secret is in the file Ansible shows a diff of.
"""

from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "roles/sipguard_asterisk/templates"


def flatten(items):
    return [x for item in items for x in (item if isinstance(item, list) else [item])]


def render(name, **overrides):
    # Plain text for Asterisk, not HTML: no autoescape, as Ansible's template module renders it.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,  # noqa: S701
                             trim_blocks=True, keep_trailing_newline=True)
    env.filters["flatten"] = flatten
    env.filters["bool"] = bool
    context = {
        "ansible_managed": "Ansible managed", "sipguard_profile": "mixed", "inventory_hostname": "pbx1",
        "sipguard_asterisk_pjsip_conf": "/etc/asterisk/pjsip.conf",
        "sipguard_asterisk_file": "/etc/asterisk/pjsip_sipguard.conf",
        "sipguard_asterisk_auth_file": "/etc/asterisk/pjsip_sipguard_auth.conf",
        "sipguard_asterisk_acl": True, "sipguard_asterisk_codecs": ["ulaw", "alaw"],
        "sipguard_asterisk_phone_context": "phones", "sipguard_asterisk_trunk_context": "trunks",
        "sipguard_asterisk_realm": "asterisk",
        "sipguard_lan_networks": ["10.0.0.0/24", "2001:db8:1::/64"],
        "sipguard_trunks_resolved": [{"name": "carrier", "addresses": ["192.0.2.7", "2001:db8:2::7"]}],
        "sipguard_accounts": [{"username": "1001", "password": "s3cret"},
                              {"username": "1002", "ha1_md5": "0123456789abcdef0123456789abcdef"}],
        "sipguard_softswitch_params": {"SS_ENDPOINT_EXPIRE": 3600, "SS_ENDPOINT_REGISTER_REPLACE": "On"},
    }
    context.update(overrides)
    return env.get_template(name).render(context)


def sections(text):
    """[(name, {key: [values]})] in file order."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            out.append((line[1:-1], {}))
        elif "=" in line and not line.startswith((";", "#")) and out:
            key, value = line.split("=", 1)
            out[-1][1].setdefault(key, []).append(value)
    return out


def test_the_acl_denies_everything_then_permits_the_lan_and_the_trunks():
    (acl,) = [body for name, body in sections(render("pjsip_sipguard.conf.j2")) if name == "sipguard-acl"]
    assert acl["type"] == ["acl"] and acl["deny"] == ["0.0.0.0/0.0.0.0", "::/0"]
    assert acl["permit"] == ["10.0.0.0/24", "2001:db8:1::/64", "192.0.2.7", "2001:db8:2::7"]


def test_no_acl_when_the_profile_does_not_restrict_sip():
    assert "type=acl" not in render("pjsip_sipguard.conf.j2", sipguard_asterisk_acl=False)


def test_trunks_are_identified_by_address_and_accounts_register_with_digest():
    found = sections(render("pjsip_sipguard.conf.j2"))
    assert ("sipguard-trunk-carrier", {"type": ["identify"], "endpoint": ["sipguard-trunk-carrier"],
                                       "match": ["192.0.2.7", "2001:db8:2::7"]}) in found
    endpoint = next(body for name, body in found if name == "1001" and body["type"] == ["endpoint"])
    assert endpoint["auth"] == ["sipguard-auth-1001"] and endpoint["aors"] == ["1001"]
    aor = next(body for name, body in found if name == "1001" and body["type"] == ["aor"])
    assert aor["max_contacts"] == ["1"] and aor["remove_existing"] == ["yes"]
    assert aor["maximum_expiration"] == ["3600"]


def test_secrets_only_in_the_auth_file():
    main, auth = render("pjsip_sipguard.conf.j2"), render("pjsip_sipguard_auth.conf.j2")
    assert "s3cret" not in main and "0123456789abcdef" not in main
    assert '#include "/etc/asterisk/pjsip_sipguard_auth.conf"' in main
    found = dict(sections(auth))
    assert found["sipguard-auth-1001"]["password"] == ["s3cret"]
    assert found["sipguard-auth-1001"]["auth_type"] == ["userpass"]
    # An HA1 is bound to its realm; no realm is written for a password (Asterisk's default realm, the same
    # in every challenge, so an account's 401 looks like a missing one's).
    ha1 = found["sipguard-auth-1002"]
    assert ha1["auth_type"] == ["md5"] and ha1["realm"] == ["asterisk"]
    assert "realm" not in found["sipguard-auth-1001"]


def test_no_accounts_no_include():
    assert "#include" not in render("pjsip_sipguard.conf.j2", sipguard_accounts=[])
