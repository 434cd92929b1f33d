"""The audit's report filters and HTML template, without Ansible (issue 12, item 7).

Rows come from the real audit_row filter fed fake probe results; the role's template is
rendered in-process with Jinja2 and the collection's filters under their FQCN names, the way
the role's report.yml renders it (autoescape off: the template escapes every value itself).
"""

import importlib.util
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[2]
METHODS = ["OPTIONS", "REGISTER", "INVITE"]
SILENT = dict.fromkeys(METHODS)
LAN = {"OPTIONS": None, "REGISTER": 401, "INVITE": None}
EXPECTED = {"outside": SILENT, "lan": LAN, "scanner": None}
HOSTILE = "<script>alert('x')</script>\"'&<b>"


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


audit = load(ROOT / "plugins/filter/audit.py")


def results(outside, lan, scanner=None):
    out = []
    for vantage, seen in (("outside", outside), ("lan", lan)):
        for transport in ("udp", "tcp"):
            for method, status in seen.items():
                item = {"vantage": vantage, "transport": transport, "method": method, "scanner": False}
                source = "[2001:db8::7]:40000" if vantage == "outside" else "10.0.0.103:40000"
                out.append({"item": item, "answered": status is not None, "status_code": status,
                            "source": source, "target": f"192.0.2.1:5060/{transport}"})
    item = {"vantage": "lan", "transport": "udp", "method": "OPTIONS", "scanner": True}
    out.append({"item": item, "answered": scanner is not None, "status_code": scanner,
                "source": "10.0.0.103:40001", "target": "192.0.2.1:5060/udp"})
    return out


VANTAGE = {"outside": {"host": "scanner", "source": "", "target": "192.0.2.1"},
           "lan": {"host": "phone", "source": "10.0.0.103", "target": "192.0.2.1"}}


def row(name, outside=SILENT, lan=LAN, scanner=None, reply="Off"):
    return audit.sipguard_audit_row(results(outside, lan, scanner), {
        "host": name, "profile": "public", "reply_unauthorized": reply, "expected": EXPECTED,
        "expected_reply": "Off", "vantage": VANTAGE})


def fleet():
    return [
        row("a-ok"),
        row("b-mismatch", lan=SILENT),
        audit.sipguard_audit_unprobed({"host": "c-down", "profile": "public"}, "ssh timeout",
                                      unreachable=True),
        row("d-exposed", outside={**SILENT, "INVITE": 403}),
        audit.sipguard_audit_unprobed("e-gone"),
        row("f-ok"),
        row("a-exposed", scanner=200),
    ]


def render(rows, info=None):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "roles/sipguard_audit/templates"),
                             autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701 - as Ansible
    for name, function in audit.FilterModule().filters().items():
        env.filters[f"sipguard.hardening.{name}"] = function
    info = info or {"started_at": "2030-01-02T03:04:05Z", "finished_at": "2030-01-02T03:05:00Z",
                    "sipguard_version": "9.9.9"}
    return env.get_template("audit.html.j2").render(
        sipguard_audit_rows=rows, sipguard_audit_methods=METHODS, sipguard_audit_info=info)


class Page(HTMLParser):
    """Elements and text of the page, as a parser (a browser's first step) sees them."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


# --- rows ----------------------------------------------------------------------------------------


def test_rows_carry_a_verdict_and_the_vantage_addresses_used():
    ok, exposed = row("a-ok"), row("d-exposed", outside={**SILENT, "INVITE": 403})
    assert ok["verdict"] == "ok" and exposed["verdict"] == "EXPOSED"
    assert row("b", lan=SILENT)["verdict"] == "MISMATCH"
    assert ok["vantage"]["outside"] == {"host": "scanner", "source": "", "sources_used": ["2001:db8::7"],
                                        "target": "192.0.2.1", "targets_probed": ["192.0.2.1"]}
    assert ok["vantage"]["lan"]["sources_used"] == ["10.0.0.103"]


def with_account(results_, **by_vantage):
    """``results_`` plus the REGISTER for an existing account: {vantage: status} on both transports."""
    extra = [{"item": {"vantage": vantage, "transport": transport, "method": "REGISTER", "scanner": False,
                       "account": True},
              "answered": status is not None, "status_code": status, "source": "10.0.0.103:40002",
              "target": f"192.0.2.1:5060/{transport}"}
             for vantage, status in by_vantage.items() for transport in ("udp", "tcp")]
    return results_ + extra


def account_row(**by_vantage):
    return audit.sipguard_audit_row(with_account(results(SILENT, LAN), **by_vantage), {
        "host": "pbx", "profile": "public", "reply_unauthorized": "Off", "expected": EXPECTED,
        "expected_reply": "Off", "vantage": VANTAGE})


def test_an_existing_account_answered_like_a_missing_one_passes():
    # A missing user's REGISTER got 401 from the LAN and silence outside: the same for the real account.
    ok = account_row(lan=401, outside=None)
    assert ok["passed"] and ok["verdict"] == "ok", ok["problems"]
    assert ok["account"] == {"lan": {"udp": 401, "tcp": 401}, "outside": {"udp": None, "tcp": None}}
    assert ok["observed"]["lan"]["REGISTER"] == {"udp": 401, "tcp": 401}  # the account probe is kept apart


@pytest.mark.parametrize(("vantage", "status"), [("lan", 404), ("lan", 200), ("outside", 401)])
def test_an_account_svwar_can_tell_apart_is_exposed(vantage, status):
    # 404 or 200 for the real account where a missing one got 401 (or an answer where it got silence).
    exposed = account_row(**{vantage: status})
    assert exposed["verdict"] == "EXPOSED" and not exposed["passed"]
    assert any(p.startswith(f"EXPOSED: account enumeration: REGISTER for an existing account from {vantage}")
               for p in exposed["problems"]), exposed["problems"]


def test_rows_without_an_account_probe_are_unchanged():
    assert "account" not in row("a-ok")


def test_a_host_that_could_not_be_probed_is_a_failing_row():
    down = audit.sipguard_audit_unprobed({"host": "c", "profile": "mixed"}, "ssh timeout", unreachable=True)
    assert down["verdict"] == "UNREACHABLE" and not down["passed"] and not down["exposed"]
    assert down["problems"] == ["UNREACHABLE: ssh timeout"] and down["profile"] == "mixed"
    gone = audit.sipguard_audit_unprobed("e")
    assert gone["verdict"] == "NOT PROBED" and gone["profile"] == "?" and gone["problems"]
    cells = audit.sipguard_audit_columns([down], METHODS)["rows"][0]
    assert cells == ["c", "mixed", "?", "n/a", "n/a", "n/a", "UNREACHABLE"]
    assert "c: UNREACHABLE: ssh timeout" in audit.sipguard_audit_table([down], METHODS)


def test_worst_first_then_by_name():
    order = [(r["verdict"], r["host"]) for r in audit.sipguard_audit_sorted(fleet())]
    assert order == [("EXPOSED", "a-exposed"), ("EXPOSED", "d-exposed"), ("MISMATCH", "b-mismatch"),
                     ("UNREACHABLE", "c-down"), ("NOT PROBED", "e-gone"), ("ok", "a-ok"), ("ok", "f-ok")]


def test_rows_from_before_verdicts_still_sort():
    old = {k: v for k, v in row("x", lan=SILENT).items() if k != "verdict"}
    assert audit.sipguard_audit_sorted([row("a"), old])[0]["host"] == "x"


def test_summary_counts_and_text():
    summary = audit.sipguard_audit_summary(fleet())
    assert summary == {"hosts": 7, "exposed": 2, "mismatch": 1, "unreachable": 2, "ok": 2, "passed": False,
                       "text": "FAILED: 7 hosts: 2 exposed, 1 mismatch, 2 unreachable, 2 ok"}
    assert audit.sipguard_audit_summary([row("a")])["text"] == (
        "PASSED: 1 hosts: 0 exposed, 0 mismatch, 0 unreachable, 1 ok")
    assert not audit.sipguard_audit_summary([])["passed"]  # an audit of nothing proves nothing


def test_vantages_list_every_host_and_address():
    assert audit.sipguard_audit_vantages(fleet()) == {
        "outside": {"hosts": ["scanner"], "sources": [], "sources_used": ["2001:db8::7"]},
        "lan": {"hosts": ["phone"], "sources": ["10.0.0.103"], "sources_used": ["10.0.0.103"]},
    }


def test_junit_has_failures_errors_and_properties():
    info = {"started_at": "2030-01-02T03:04:05Z", "sipguard_version": "9.9.9"}
    xml = audit.sipguard_audit_junit(audit.sipguard_audit_sorted(fleet()), info)
    suite = ET.fromstring(xml).find("testsuite")  # noqa: S314 - our own output
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("7", "3", "2")
    assert suite.get("timestamp") == "2030-01-02T03:04:05Z"
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["sipguard_version"] == "9.9.9"
    errors = suite.findall("testcase/error")
    assert [e.get("message") for e in errors] == ["UNREACHABLE: ssh timeout", "NOT PROBED: no probe result"]
    first = suite.find("testcase")
    case_props = {p.get("name"): p.get("value") for p in first.findall("properties/property")}
    assert case_props["verdict"] == "EXPOSED" and case_props["outside.sources_used"] == "2001:db8::7"


def test_stats_for_awx():
    stats = audit.sipguard_audit_stats(fleet(), {"started_at": "s", "finished_at": "f",
                                                 "sipguard_version": "9.9.9"})
    assert stats["sipguard_audit_passed"] is False
    assert stats["sipguard_audit_summary"] == {"hosts": 7, "exposed": 2, "mismatch": 1, "unreachable": 2,
                                               "ok": 2}
    assert stats["sipguard_audit_verdicts"]["c-down"] == "UNREACHABLE"
    not_ok = {"b-mismatch", "c-down", "d-exposed", "e-gone", "a-exposed"}
    assert set(stats["sipguard_audit_problems"]) == not_ok
    assert (stats["sipguard_audit_started_at"], stats["sipguard_audit_version"]) == ("s", "9.9.9")
    json.dumps(stats)  # plain data, as set_stats and AWX need


# --- the version ---------------------------------------------------------------------------------


def test_version_from_the_clone_is_galaxy_yml():
    import yaml  # noqa: PLC0415

    assert audit.collection_version() == str(yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"])


def test_version_from_an_installed_collection_is_manifest_json(tmp_path):
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "1.2.3"}}))
    (tmp_path / "galaxy.yml").write_text("version: 0.0.1\n")
    assert audit.collection_version(tmp_path) == "1.2.3"
    assert audit.collection_version(tmp_path / "nowhere") == "unknown"
    info = audit.sipguard_audit_info({"started_at": "s"})
    assert info == {"started_at": "s", "sipguard_version": audit.collection_version()}


# --- the HTML page -------------------------------------------------------------------------------


def test_page_shows_summary_order_legend_and_details():
    html = render(fleet())
    page = Page(html)
    text = " ".join(" ".join(page.text).split())
    assert "FAILED: 7 hosts: 2 exposed, 1 mismatch, 2 unreachable, 2 ok" in text
    assert "O/R/I" in text and "O = OPTIONS, R = REGISTER, I = INVITE" in text
    assert "2030-01-02T03:04:05Z" in text and "sipguard 9.9.9" in text and "2001:db8::7" in text
    assert page.tags.count("details") == 7
    hosts = ["a-exposed", "d-exposed", "b-mismatch", "c-down", "e-gone", "a-ok", "f-ok"]
    positions = [html.index(f"<td>{h}</td>") for h in hosts]
    assert positions == sorted(positions)


def test_page_needs_nothing_from_outside():
    page = Page(render(fleet()))
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(page.tags)
    assert not [value for name, value in page.attrs if name in {"src", "href"}]


@pytest.mark.parametrize("field", ["host", "profile", "problem", "version"])
def test_hostile_strings_stay_text(field):
    rows = [row("ok-host"), audit.sipguard_audit_unprobed("down")]
    info = {"started_at": "s", "finished_at": "f", "sipguard_version": "1"}
    if field == "host":
        rows[0]["host"] = HOSTILE
    elif field == "profile":
        rows[0]["profile"] = HOSTILE
    elif field == "problem":
        rows[1]["problems"] = [HOSTILE]
    else:
        info["sipguard_version"] = HOSTILE
    html = render(rows, info)
    page = Page(html)
    assert "script" not in page.tags and "b" not in page.tags
    assert HOSTILE not in html
    assert HOSTILE in "".join(page.text)  # shown to the reader as it is
