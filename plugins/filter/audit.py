"""Turn audit probe results into report rows, a terminal table and JUnit XML.

Pure functions over plain data, so tests/unit calls them without Ansible.
A row compares what each vantage point saw with what the host's profile
expects (``audit`` in the profile table): a status code, or None for silence.
"""

import xml.etree.ElementTree as ET

VANTAGES = ("outside", "lan")


def _status(result):
    """The status a probe got, or None when the target stayed silent."""
    return result.get("status_code") if result.get("answered") else None


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
    want, got = expected.get("scanner"), row["scanner"]["status"]
    if got != want:
        if want is None:
            problems.append(f"EXPOSED: answers a scanner User-Agent with {got} (profile expects a drop)")
        else:
            problems.append(f"scanner User-Agent from the LAN got {got or 'silence'}, profile expects {want}")
    return problems


def sipguard_audit_row(results, host):
    """Build one host's report row from the registered probe loop results.

    ``host`` is ``{host, profile, reply_unauthorized, expected, expected_reply}``
    (``expected`` is the profile's ``audit`` entry). Each result carries ``item``
    = ``{vantage, transport, method, scanner}`` and the probe module's
    ``answered``/``status_code``.
    """
    observed = {v: {} for v in VANTAGES}
    scanner = {"answered": False, "status": None}
    for result in results:
        item = result["item"]
        if item.get("scanner"):
            scanner = {"answered": bool(result.get("answered")), "status": _status(result)}
            continue
        observed[item["vantage"]].setdefault(item["method"], {})[item["transport"]] = _status(result)
    row = {
        "host": host["host"],
        "profile": host["profile"],
        "reply_unauthorized": host["reply_unauthorized"],
        "observed": observed,
        "expected": host["expected"],
        "scanner": scanner,
    }
    row["problems"] = _problems(row, host["expected"], host["expected_reply"])
    row["exposed"] = any(p.startswith("EXPOSED") for p in row["problems"])
    row["passed"] = not row["problems"]
    return row


def _cell(by_transport):
    """"403" when every transport agrees, else "udp:403 tcp:-"; "-" is silence."""
    shown = {t: "-" if s is None else str(s) for t, s in by_transport.items()}
    if len(set(shown.values())) <= 1:
        return next(iter(shown.values()), "?")
    return " ".join(f"{t}:{s}" for t, s in shown.items())


def sipguard_audit_columns(rows, methods):
    """Header and cells of the exposure table, shared by the terminal and HTML views.

    One cell per vantage point lists the answer to each method in order, e.g.
    "403 401 403" or "- - -" (silent), so the table fits a terminal.
    """
    initials = "/".join(m[0] for m in methods)
    header = ["host", "profile", "SS_REPLY_UNAUTHORIZED"]
    header += [f"{v} {initials}" for v in VANTAGES] + ["scanner UA", "verdict"]
    body = []
    for row in rows:
        cells = [row["host"], row["profile"], row["reply_unauthorized"] or "?"]
        cells += [" ".join(_cell(row["observed"][v].get(m, {})) for m in methods) for v in VANTAGES]
        cells.append(str(row["scanner"]["status"]) if row["scanner"]["answered"] else "dropped")
        cells.append("ok" if row["passed"] else ("EXPOSED" if row["exposed"] else "MISMATCH"))
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


def sipguard_audit_junit(rows):
    """JUnit XML: one test case per host, failed when its exposure contradicts its profile."""
    failures = sum(1 for row in rows if not row["passed"])
    suite = ET.Element("testsuite", name="sipguard-audit", tests=str(len(rows)), failures=str(failures))
    for row in rows:
        case = ET.SubElement(suite, "testcase", classname=f"sipguard.{row['profile']}", name=row["host"])
        if row["problems"]:
            failure = ET.SubElement(case, "failure", message=row["problems"][0])
            failure.text = "\n".join(row["problems"])
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


class FilterModule:
    def filters(self):
        return {
            "audit_row": sipguard_audit_row,
            "audit_columns": sipguard_audit_columns,
            "audit_table": sipguard_audit_table,
            "audit_junit": sipguard_audit_junit,
        }
