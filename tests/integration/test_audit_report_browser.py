"""The audit's HTML report as a person sees it, in a real browser (issue 12, item 7).

The role's report entry point (roles/sipguard_audit/tasks/report.yml) runs in a tiny playbook
on the controller: fixture rows, built by the audit filter from fake probe results, stand in for
the probes of a fleet with an ok, an exposed, a mismatched, an unreachable host and one that
left the play without a row. The playbook must write the three reports and fail. Then Debian's
Chromium (headless, installed by scripts/bootstrap-host.sh) opens audit.html; the test reads
the page through the DevTools protocol over --remote-debugging-pipe (standard library only):
the rendered text of the summary line, the first host row, the legend, a closed detail section
that a click opens, no script, no image and no request for anything outside the file.
"""

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from testkit.ansible import ansible

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
HOSTILE = '<img src=x onerror="alert(1)">&amp;'
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/bootstrap-host.sh)"),
]


def _audit_filters():
    spec = importlib.util.spec_from_file_location("audit_filters", ROOT / "plugins/filter/audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(outside, lan, scanner=None):
    out = []
    for vantage, seen in (("outside", outside), ("lan", lan)):
        for transport in ("udp", "tcp"):
            for method, status in seen.items():
                item = {"vantage": vantage, "transport": transport, "method": method, "scanner": False}
                source = "203.0.113.7:40000" if vantage == "outside" else "10.0.0.103:40000"
                out.append({"item": item, "answered": status is not None, "status_code": status,
                            "source": source, "target": f"192.0.2.1:5060/{transport}"})
    item = {"vantage": "lan", "transport": "udp", "method": "OPTIONS", "scanner": True}
    out.append({"item": item, "answered": scanner is not None, "status_code": scanner,
                "source": "10.0.0.103:40001", "target": "192.0.2.1:5060/udp"})
    return out


def fixture_rows():
    audit = _audit_filters()
    silent = {"OPTIONS": None, "REGISTER": None, "INVITE": None}
    lan = {"OPTIONS": None, "REGISTER": 401, "INVITE": None}
    expected = {"outside": silent, "lan": lan, "scanner": None}
    vantage = {"outside": {"host": "scanner-1", "source": "", "target": "192.0.2.1"},
               "lan": {"host": "phone-1", "source": "10.0.0.103", "target": "192.0.2.1"}}

    def row(name, results, profile="public"):
        return audit.sipguard_audit_row(results, {
            "host": name, "profile": profile, "reply_unauthorized": "Off", "expected": expected,
            "expected_reply": "Off", "vantage": vantage})

    return {
        "pbx-ok": row("pbx-ok", _results(silent, lan)),
        "pbx-exposed": row("pbx-exposed", _results({**silent, "REGISTER": 401}, lan), profile=HOSTILE),
        "pbx-mismatch": row("pbx-mismatch", _results(silent, silent)),
        "pbx-down": audit.sipguard_audit_unprobed(
            {"host": "pbx-down", "profile": "public", "vantage": vantage},
            "Reach the host: Failed to connect to the host via ssh", unreachable=True),
    }


PLAYBOOK = """\
---
- name: Stand in for the probes
  hosts: targets
  gather_facts: false
  tasks:
    - name: Take the fixture row
      ansible.builtin.set_fact:
        sipguard_audit_row: "{{ fixture_rows[inventory_hostname] }}"
      when: inventory_hostname in fixture_rows

- name: Report
  hosts: localhost
  gather_facts: false
  connection: local
  vars:
    sipguard_audit_hosts: "{{ groups['targets'] }}"
    sipguard_audit_started_at: "2030-01-02T03:04:05Z"
  tasks:
    - name: Write the reports
      ansible.builtin.include_role:
        name: sipguard.hardening.sipguard_audit
        tasks_from: report.yml
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    work = tmp_path_factory.mktemp("audit-report")
    rows = fixture_rows()
    hosts = [*rows, "pbx-gone"]
    (work / "hosts.yml").write_text(json.dumps({"all": {"children": {"targets": {"hosts": {
        name: {"ansible_connection": "local", "sipguard_profile": "mixed"} for name in hosts}}}}}))
    (work / "rows.json").write_text(json.dumps({"fixture_rows": rows}))
    (work / "report.yml").write_text(PLAYBOOK)
    # The json callback shows the set_stats data (AWX's artifacts) as global_custom_stats.
    run = ansible("-i", work / "hosts.yml", work / "report.yml", "-e", f"@{work / 'rows.json'}",
                  "-e", f"sipguard_audit_report_dir={work / 'reports'}",
                  callback="ansible.builtin.json", env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"}, timeout=300)
    return work / "reports", run


def test_report_playbook_writes_every_file_and_fails(reports):
    directory, run = reports
    out = run.stdout + run.stderr
    assert run.returncode == 2, out[-4000:]
    summary = "FAILED: 5 hosts: 1 exposed, 1 mismatch, 2 unreachable, 1 ok; not ok: pbx-exposed"
    assert summary in out, out[-4000:]
    rows = json.loads((directory / "audit.json").read_text())
    assert [r["host"] for r in rows] == ["pbx-exposed", "pbx-mismatch", "pbx-down", "pbx-gone", "pbx-ok"]
    assert [r["verdict"] for r in rows] == ["EXPOSED", "MISMATCH", "UNREACHABLE", "NOT PROBED", "ok"]
    # The host that left the play without a row is named in every report, with the profile it has.
    assert rows[3]["profile"] == "mixed" and "no result" in rows[3]["problems"][0]
    for row in rows:
        assert row["audit"]["started_at"] == "2030-01-02T03:04:05Z"
        assert row["audit"]["finished_at"].endswith("Z")
        assert row["audit"]["sipguard_version"] == _audit_filters().collection_version(ROOT)
    assert rows[0]["vantage"]["outside"]["sources_used"] == ["203.0.113.7"]
    junit = (directory / "audit.junit.xml").read_text()
    assert 'tests="5" failures="2" errors="2"' in junit and "pbx-gone" in junit
    # set_stats: what AWX keeps as the job's artifacts.
    stats = json.loads(run.stdout)["global_custom_stats"]
    assert stats["sipguard_audit_passed"] is False
    assert stats["sipguard_audit_summary"] == {"hosts": 5, "exposed": 1, "mismatch": 1, "unreachable": 2,
                                               "ok": 1}
    assert stats["sipguard_audit_verdicts"] == {"pbx-exposed": "EXPOSED", "pbx-mismatch": "MISMATCH",
                                                "pbx-down": "UNREACHABLE", "pbx-gone": "NOT PROBED",
                                                "pbx-ok": "ok"}
    assert set(stats["sipguard_audit_problems"]) == {"pbx-exposed", "pbx-mismatch", "pbx-down", "pbx-gone"}
    assert stats["sipguard_audit_started_at"] == "2030-01-02T03:04:05Z"
    assert stats["sipguard_audit_version"] == _audit_filters().collection_version(ROOT)


class Browser:
    """Headless Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-framed JSON)."""

    def __init__(self, profile_dir):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire():  # runs in the child: the pipe ends become its fds 3 and 4
            read, write = os.dup(to_chrome_r), os.dup(from_chrome_w)  # neither clobbers the other
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={profile_dir}", "--window-size=1280,900",
             "about:blank"],
            # Only dup2 between fork and exec; the other fds are closed after preexec_fn.
            pass_fds=(3, 4), preexec_fn=wire,  # noqa: PLW1509
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.session = None

    def call(self, method, session=True, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    return reply["result"]
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise AssertionError("chromium closed the pipe")
            self._buffer += chunk
        raise AssertionError(f"{method}: no answer")

    def open(self, url):
        target = self.call("Target.createTarget", session=False, url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", session=False, targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while self.js("document.readyState + ' ' + location.href") != f"complete {url}":
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.1)

    def js(self, expression):
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in reply, reply
        return reply["result"].get("value")

    def click(self, selector):
        box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                      ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="module")
def page(reports, tmp_path_factory):
    directory, _ = reports
    browser = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        browser.open((directory / "audit.html").as_uri())
        yield browser
    finally:
        browser.close()


def test_summary_line_is_what_a_person_reads_first(page):
    assert page.js("document.querySelector('#summary').innerText") == (
        "FAILED: 5 hosts: 1 exposed, 1 mismatch, 2 unreachable, 1 ok")
    # Above everything else but the title, and on the first screen.
    assert page.js("document.querySelector('#summary').getBoundingClientRect().bottom") < 200
    assert "sipguard " + _audit_filters().collection_version(ROOT) in page.js(
        "document.querySelector('#meta').innerText")
    meta = page.js("document.querySelector('#meta').innerText")
    assert "2030-01-02T03:04:05Z" in meta and "scanner-1" in meta and "203.0.113.7" in meta
    assert "phone-1" in meta and "10.0.0.103" in meta


def test_first_host_row_is_the_exposed_one_in_red(page):
    cells = page.js("[...document.querySelectorAll('#hosts > tbody > tr')].map("
                    "r => [...r.children].slice(0, 7).map(c => c.innerText))")
    assert [c[0] for c in cells] == ["pbx-exposed", "pbx-mismatch", "pbx-down", "pbx-gone", "pbx-ok"]
    assert cells[0][6] == "EXPOSED" and cells[0][3] == "- 401 -"
    assert cells[2][3:7] == ["n/a", "n/a", "n/a", "UNREACHABLE"]
    # The hostile profile name is shown as text, not turned into an element.
    assert cells[0][1] == HOSTILE
    colour = page.js("getComputedStyle(document.querySelector('#hosts > tbody > tr')).backgroundColor")
    assert colour == "rgb(255, 187, 187)", colour


def test_legend_explains_the_columns(page):
    legend = page.js("document.querySelector('#legend').innerText")
    assert "O/R/I" in legend and "OPTIONS, REGISTER, INVITE" in legend
    assert "O = OPTIONS, R = REGISTER, I = INVITE" in legend
    for verdict in ("EXPOSED", "MISMATCH", "UNREACHABLE", "ok"):
        assert verdict in legend


def test_detail_opens_on_a_click(page):
    first = "#hosts > tbody > tr:first-child details"
    assert page.js("document.querySelectorAll('#hosts tbody details').length") == 5
    assert page.js(f"document.querySelector('{first}').open") is False
    problem = "answers REGISTER from outside over udp with 401"
    assert problem not in page.js("document.body.innerText")  # closed: not on the screen
    page.click(f"{first} summary")
    assert page.js(f"document.querySelector('{first}').open") is True
    detail = page.js(f"document.querySelector('{first}').innerText")
    assert problem in detail and "scanner-1 (203.0.113.7)" in detail


def test_page_is_self_contained_and_inert(page, reports):
    directory, _ = reports
    assert page.js("document.scripts.length") == 0
    assert page.js("document.images.length") == 0
    assert page.js("document.querySelectorAll('link, iframe, object, embed').length") == 0
    assert page.js("performance.getEntriesByType('resource').length") == 0
    # A screenshot next to the reports, for a person looking at a failed run.
    shot = page.call("Page.captureScreenshot", format="png")["data"]
    (directory / "audit.png").write_bytes(base64.b64decode(shot))
    assert (directory / "audit.png").stat().st_size > 10_000
