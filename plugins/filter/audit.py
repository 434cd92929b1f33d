"""Turn audit probe results into report rows, a terminal table, JUnit XML and AWX stats.

Pure functions over plain data, so tests/unit calls them without Ansible.
A row compares what each vantage point saw with what the host's profile
expects (``audit`` in the profile table): a status code, or None for silence.
A host that could not be probed gets a row too (``audit_unprobed``), with the
verdict UNREACHABLE or NOT PROBED, so no report is silent about it.
"""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

VANTAGES = ("outside", "lan")
# Worst first: the order of the HTML page and the terminal table.
VERDICTS = ("EXPOSED", "MISMATCH", "UNREACHABLE", "NOT PROBED", "ok")
UNPROBED = ("UNREACHABLE", "NOT PROBED")


def collection_version(root=None):
    """sipguard's version: MANIFEST.json of an installed collection, else galaxy.yml of a clone.

    ``root`` is the collection's directory, by default the one this file is in
    (plugins/filter/ under it). "unknown" when neither file says.
    """
    root = Path(root) if root else Path(__file__).resolve().parents[2]
    try:
        return json.loads((root / "MANIFEST.json").read_text())["collection_info"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return str(yaml.safe_load((root / "galaxy.yml").read_text())["version"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "unknown"


def sipguard_audit_info(info):
    """``info`` (started_at, finished_at, ...) plus the sipguard version: the report's header."""
    return {**info, "sipguard_version": collection_version()}


def _status(result):
    """The status a probe got, or None when the target stayed silent."""
    return result.get("status_code") if result.get("answered") else None


def _address(endpoint):
    """ "198.18.0.20:40312" / "[2001:db8::1]:40312" -> the address without the port."""
    if not endpoint:
        return None
    address = endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 or endpoint.startswith("[") else endpoint
    return address.strip("[]")


def _enumeration_problems(row):
    """svwar's test: an existing account's REGISTER (the probe item ``account``) must get what a
    missing user's got from the same vantage over the same transport."""
    problems = []
    for vantage, by_transport in row.get("account", {}).items():
        for transport, got in by_transport.items():
            stranger = row["observed"].get(vantage, {}).get("REGISTER", {}).get(transport, got)
            if got != stranger:
                problems.append(
                    f"EXPOSED: account enumeration: REGISTER for an existing account from {vantage} over "
                    f"{transport} gets {got or 'silence'}, for a missing one {stranger or 'silence'}"
                )
    return problems


def _problems(row, expected, expected_reply):
    problems = []
    if row["reply_unauthorized"] != expected_reply:
        problems.append(
            f"SS_REPLY_UNAUTHORIZED is {row['reply_unauthorized']!r}, "
            f"profile {row['profile']} wants {expected_reply!r}"
        )
    for vantage in VANTAGES:
        for method, by_transport in row["observed"].get(vantage, {}).items():
            want = expected.get(vantage, {}).get(method)
            for transport, got in by_transport.items():
                if got == want:
                    continue
                where = f"{method} from {vantage} over {transport}"
                if want is None:
                    problems.append(
                        f"EXPOSED: answers {where} with {got} (profile {row['profile']} expects silence)"
                    )
                elif got is None:
                    problems.append(f"silent to {where} (profile {row['profile']} expects {want})")
                else:
                    problems.append(f"answers {where} with {got} (profile {row['profile']} expects {want})")
    problems += _enumeration_problems(row)
    want, got = expected.get("scanner"), row["scanner"]["status"]
    if got != want:
        if want is None:
            problems.append(f"EXPOSED: answers a scanner User-Agent with {got} (profile expects a drop)")
        else:
            problems.append(f"scanner User-Agent from the LAN got {got or 'silence'}, profile expects {want}")
    return problems


def _vantage(host, results):
    """Per vantage point: the inventory host the probes left from, the source addresses they
    really used (as the probe module reports them) and the target addresses they went to."""
    given = host.get("vantage") or {}
    vantage = {}
    for name in VANTAGES:
        mine = [r for r in results if r["item"]["vantage"] == name]
        sources = {_address(r.get("source")) for r in mine} - {None}
        targets = {_address(r.get("target", "").rsplit("/", 1)[0]) for r in mine} - {None}
        vantage[name] = {
            "host": given.get(name, {}).get("host"),
            "source": given.get(name, {}).get("source") or "",
            "sources_used": sorted(sources),
            "target": given.get(name, {}).get("target"),
            "targets_probed": sorted(targets),
        }
    return vantage


def sipguard_audit_row(results, host):
    """Build one host's report row from the registered probe loop results.

    ``host`` is ``{host, profile, reply_unauthorized, expected, expected_reply}``
    (``expected`` is the profile's ``audit`` entry) and optionally ``vantage`` =
    ``{outside: {host, source, target}, lan: {...}}``. Each result carries ``item``
    = ``{vantage, transport, method, scanner}`` and the probe module's
    ``answered``/``status_code``/``source``/``target``. An item with ``account: true`` is a REGISTER
    for an existing account sent by the same stranger: it must get what the missing user's REGISTER
    got on that vantage and transport, or the row is EXPOSED (svwar could tell the accounts apart).
    """
    observed = {v: {} for v in VANTAGES}
    account = {}
    scanner = {"answered": False, "status": None}
    for result in results:
        item = result["item"]
        if item.get("scanner"):
            scanner = {"answered": bool(result.get("answered")), "status": _status(result)}
            continue
        if item.get("account"):
            account.setdefault(item["vantage"], {})[item["transport"]] = _status(result)
            continue
        observed[item["vantage"]].setdefault(item["method"], {})[item["transport"]] = _status(result)
    row = {
        "host": host["host"],
        "profile": host["profile"],
        "reply_unauthorized": host["reply_unauthorized"],
        "observed": observed,
        "expected": host["expected"],
        "scanner": scanner,
        "vantage": _vantage(host, results),
    }
    if account:
        row["account"] = account
    row["problems"] = _problems(row, host["expected"], host["expected_reply"])
    row["exposed"] = any(p.startswith("EXPOSED") for p in row["problems"])
    row["passed"] = not row["problems"]
    row["verdict"] = "ok" if row["passed"] else ("EXPOSED" if row["exposed"] else "MISMATCH")
    return row


def sipguard_audit_unprobed(host, reason="", unreachable=False):
    """The row of a host that could not be probed: verdict UNREACHABLE (Ansible could not
    reach it) or NOT PROBED (it failed, or left the play, before its probes finished).

    ``host`` is ``{host, profile}`` and optionally ``vantage`` as for ``audit_row``, or a host name.
    """
    if not isinstance(host, dict):
        host = {"host": host}
    verdict = "UNREACHABLE" if unreachable else "NOT PROBED"
    given = host.get("vantage") or {}
    return {
        "host": host["host"],
        "profile": host.get("profile") or "?",
        "reply_unauthorized": None,
        "observed": {v: {} for v in VANTAGES},
        "expected": host.get("expected") or {},
        "scanner": {"answered": False, "status": None},
        "vantage": {
            v: {"host": given.get(v, {}).get("host"), "source": given.get(v, {}).get("source") or "",
                "sources_used": [], "target": given.get(v, {}).get("target"), "targets_probed": []}
            for v in VANTAGES
        },
        "problems": [f"{verdict}: {reason or 'no probe result'}"],
        "exposed": False,
        "passed": False,
        "verdict": verdict,
    }


def _verdict(row):
    """The verdict of a row, also of rows written before rows carried one."""
    if "verdict" in row:
        return row["verdict"]
    return "ok" if row["passed"] else ("EXPOSED" if row["exposed"] else "MISMATCH")


def sipguard_audit_sorted(rows):
    """Exposed hosts first, then mismatches, hosts not probed, and ok; by host name within each."""
    return sorted(rows, key=lambda row: (VERDICTS.index(_verdict(row)), str(row["host"])))


def sipguard_audit_summary(rows):
    """Counts per verdict (``unreachable`` counts UNREACHABLE and NOT PROBED) and one line of text."""
    verdicts = [_verdict(row) for row in rows]
    summary = {
        "hosts": len(rows),
        "exposed": verdicts.count("EXPOSED"),
        "mismatch": verdicts.count("MISMATCH"),
        "unreachable": sum(1 for v in verdicts if v in UNPROBED),
        "ok": verdicts.count("ok"),
    }
    summary["passed"] = bool(rows) and summary["ok"] == len(rows)
    counts = ", ".join(f"{summary[k]} {k}" for k in ("exposed", "mismatch", "unreachable", "ok"))
    summary["text"] = f"{'PASSED' if summary['passed'] else 'FAILED'}: {len(rows)} hosts: {counts}"
    return summary


def sipguard_audit_vantages(rows):
    """Every vantage host, source address and target address the report's rows used, per vantage."""
    seen = {v: {"hosts": set(), "sources": set(), "sources_used": set()} for v in VANTAGES}
    for row in rows:
        for v in VANTAGES:
            given = (row.get("vantage") or {}).get(v) or {}
            if given.get("host"):
                seen[v]["hosts"].add(str(given["host"]))
            if given.get("source"):
                seen[v]["sources"].add(str(given["source"]))
            seen[v]["sources_used"].update(str(s) for s in given.get("sources_used") or [])
    return {v: {k: sorted(s) for k, s in kinds.items()} for v, kinds in seen.items()}


def _cell(by_transport):
    """ "403" when every transport agrees, else "udp:403 tcp:-"; "-" is silence."""
    shown = {t: "-" if s is None else str(s) for t, s in by_transport.items()}
    if len(set(shown.values())) <= 1:
        return next(iter(shown.values()), "?")
    return " ".join(f"{t}:{s}" for t, s in shown.items())


def sipguard_audit_columns(rows, methods):
    """Header and cells of the exposure table, shared by the terminal and HTML views.

    One cell per vantage point lists the answer to each method in order, e.g.
    "403 401 403" or "- - -" (silent), so the table fits a terminal. A host that
    was not probed shows "n/a".
    """
    initials = "/".join(m[0] for m in methods)
    header = ["host", "profile", "SS_REPLY_UNAUTHORIZED"]
    header += [f"{v} {initials}" for v in VANTAGES] + ["scanner UA", "verdict"]
    body = []
    for row in rows:
        verdict = _verdict(row)
        cells = [str(row["host"]), str(row["profile"]), row["reply_unauthorized"] or "?"]
        if verdict in UNPROBED:
            cells += ["n/a", "n/a", "n/a"]
        else:
            cells += [" ".join(_cell(row["observed"][v].get(m, {})) for m in methods) for v in VANTAGES]
            cells.append(str(row["scanner"]["status"]) if row["scanner"]["answered"] else "dropped")
        cells.append(verdict)
        body.append(cells)
    return {"header": header, "rows": body}


def sipguard_audit_table(rows, methods):
    """The exposure table as fixed-width text, a legend, then one line per problem."""
    columns = sipguard_audit_columns(rows, methods)
    lines = [columns["header"], *columns["rows"]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns["header"]))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append(f"(answers to {' '.join(methods)} from each vantage point; - = silent)")
    for row in rows:
        text += [f"{row['host']}: {problem}" for problem in row["problems"]]
    return "\n".join(text)


def sipguard_audit_junit(rows, info=None):
    """JUnit XML: one test case per host, a failure when its exposure contradicts its profile,
    an error when it could not be probed. ``info`` (started_at, sipguard_version, ...) and each
    host's vantage points become properties."""
    info = info or {}
    verdicts = [_verdict(row) for row in rows]
    errors = sum(1 for v in verdicts if v in UNPROBED)
    failures = sum(1 for v in verdicts if v not in UNPROBED and v != "ok")
    attrs = {"name": "sipguard-audit", "tests": str(len(rows)), "failures": str(failures),
             "errors": str(errors)}
    if info.get("started_at"):
        attrs["timestamp"] = str(info["started_at"])
    suite = ET.Element("testsuite", attrs)
    properties = ET.SubElement(suite, "properties")
    for key in sorted(info):
        ET.SubElement(properties, "property", name=str(key), value=str(info[key]))
    for row, verdict in zip(rows, verdicts, strict=True):
        case = ET.SubElement(suite, "testcase", classname=f"sipguard.{row['profile']}", name=str(row["host"]))
        case_properties = ET.SubElement(case, "properties")
        ET.SubElement(case_properties, "property", name="verdict", value=verdict)
        for vantage, seen in sorted((row.get("vantage") or {}).items()):
            for key in ("host", "source", "target"):
                if seen.get(key):
                    ET.SubElement(case_properties, "property", name=f"{vantage}.{key}", value=str(seen[key]))
            if seen.get("sources_used"):
                ET.SubElement(case_properties, "property", name=f"{vantage}.sources_used",
                              value=" ".join(seen["sources_used"]))
        if row["problems"]:
            kind = "error" if verdict in UNPROBED else "failure"
            failure = ET.SubElement(case, kind, message=row["problems"][0])
            failure.text = "\n".join(row["problems"])
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def sipguard_audit_stats(rows, info=None):
    """What the audit hands to AWX through set_stats (the job's artifacts, a workflow's next
    extra vars): the overall verdict, the counts, every host's verdict, the problems of the
    hosts that are not ok, when it ran and the sipguard version."""
    info = info or {}
    summary = sipguard_audit_summary(rows)
    counts = ("hosts", "exposed", "mismatch", "unreachable", "ok")
    return {
        "sipguard_audit_passed": summary["passed"],
        "sipguard_audit_summary": {k: summary[k] for k in counts},
        "sipguard_audit_verdicts": {str(row["host"]): _verdict(row) for row in rows},
        "sipguard_audit_problems": {str(r["host"]): list(r["problems"]) for r in rows if r["problems"]},
        "sipguard_audit_started_at": info.get("started_at"),
        "sipguard_audit_finished_at": info.get("finished_at"),
        "sipguard_audit_version": info.get("sipguard_version"),
    }


class FilterModule:
    def filters(self):
        return {
            "audit_row": sipguard_audit_row,
            "audit_unprobed": sipguard_audit_unprobed,
            "audit_info": sipguard_audit_info,
            "audit_sorted": sipguard_audit_sorted,
            "audit_summary": sipguard_audit_summary,
            "audit_vantages": sipguard_audit_vantages,
            "audit_columns": sipguard_audit_columns,
            "audit_table": sipguard_audit_table,
            "audit_junit": sipguard_audit_junit,
            "audit_stats": sipguard_audit_stats,
        }
