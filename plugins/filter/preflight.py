"""Verdicts of the preflight: can this controller manage the host's Python, is the platform tested.

Pure functions (the unit tests call them directly); the role feeds them what
``ansible.builtin.raw`` printed and the distribution facts. Each returns "" when
the host passes, else one message naming the host, what was found and what to do.
"""

import re

PROBE_LINE = re.compile(r"^SIPGUARD-PY (?P<path>\S+) (?P<version>\S+)\s*$")
VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")


def _version(text):
    """(major, minor, micro) of "3.11.2" (micro 0 when missing), or None."""
    match = VERSION.match(str(text).strip())
    return tuple(int(part or 0) for part in match.groups()) if match else None


def _major_minor(text):
    found = _version(text)
    return found[:2] if found else None


def parse_python_probe(stdout):
    """[(path, version)] in the order probed; version is "absent", "unusable" or "X.Y.Z"."""
    found = []
    for line in str(stdout or "").replace("\r", "").splitlines():
        match = PROBE_LINE.match(line.strip())
        if match:
            found.append((match["path"], match["version"]))
    return found


def _support_row(controller_version, support):
    """The row of ``support`` for this controller: the newest row not newer than it."""
    rows = sorted(support, key=_major_minor)
    mine = _major_minor(controller_version)
    eligible = [row for row in rows if _major_minor(row) <= mine]
    return eligible[-1] if eligible else rows[0]


def _accepts(row, version):
    oldest = row.get(str(version[0]))
    return oldest is not None and version[:2] >= _major_minor(oldest)


def _requirement(row):
    parts = [row[major] for major in sorted(row)]
    return " or ".join([*parts[:-1], parts[-1] + " or later"])


def _fix(version, support, toolchains):
    """What to do about a Python this controller cannot manage: the newest toolchain that can."""
    able = [row for row in sorted(support, key=_major_minor) if _accepts(support[row], version)]
    with_toolchain = [row for row in able if row in toolchains]
    if with_toolchain:
        return f"run sipguard for this host with {toolchains[with_toolchain[-1]]}"
    return "there is no sipguard toolchain for it"


def sipguard_preflight_python_problem(stdout, host, controller_version, interpreter, discovery, support,
                                      toolchains):
    """Judge the interpreter the controller will use on ``host``.

    ``stdout`` is what the raw probe printed (one ``SIPGUARD-PY PATH VERSION`` line per candidate).
    ``interpreter`` is the explicit ansible_python_interpreter, or "" when the controller discovers one
    from ``discovery`` (its INTERPRETER_PYTHON_FALLBACK list, in order). ``support`` maps a controller
    version ("2.19") to {python major: oldest "major.minor"}; ``toolchains`` names where to get a controller.
    """
    controller = ".".join(str(controller_version).split(".")[:2])
    row = support[_support_row(controller, support)]
    needs = _requirement(row)
    newest = row[max(row)]
    install = f"install Python {newest} or later and set ansible_python_interpreter to it"
    probed = parse_python_probe(stdout)
    if not probed:
        return (f"{host}: could not run the Python probe (raw printed {str(stdout or '').strip()[:200]!r}); "
                f"check that the host has a POSIX shell and Python {needs}")

    if interpreter:
        path, version = next(((p, v) for p, v in probed if p == interpreter), (interpreter, "absent"))
        where = f"ansible_python_interpreter {path}"
    else:
        present = [(p, v) for p, v in probed if v != "absent"]
        chosen = next(((p, v) for p, v in present if p in discovery), None)
        if chosen is None:
            usable = [(p, v) for p, v in present if _version(v)]
            if not usable:
                return f"{host}: no Python found (looked for {', '.join(discovery)}); {install}"
            path, version = max(usable, key=lambda found: _version(found[1]))
            context = (f"the controller's discovery ({', '.join(discovery)}) finds no Python; the host has "
                       f"Python {version} at {path}")
            refusal = _judge(host, path, version, controller, row, needs, install, support, toolchains,
                             context)
            return refusal or f"{host}: {context}; set ansible_python_interpreter: {path}"
        path, version = chosen
        where = f"the discovered interpreter {path}"

    if version == "absent":
        return f"{host}: {where} does not exist on the host; point it at the host's Python, or {install}"
    if not _version(version):
        return f"{host}: {where} did not run as Python (it printed {version!r}); {install}"
    return _judge(host, path, version, controller, row, needs, install, support, toolchains, "")


def _judge(host, path, version, controller, row, needs, install, support, toolchains, context):
    found = _version(version)
    if _accepts(row, found):
        return ""
    what = context or f"Python {version} at {path}"
    return (f"{host}: {what}, which ansible-core {controller} cannot manage (it needs Python {needs} on the "
            f"target); {_fix(found, support, toolchains)}, or {install}")


def sipguard_preflight_platform_problem(facts, host, platforms):
    """"" when the host's distribution and major version are in ``platforms``, else why not."""
    facts = facts or {}
    name = facts.get("distribution", "unknown")
    version = str(facts.get("distribution_major_version", "?"))
    release = facts.get("distribution_release") or "?"
    for platform in platforms:
        if platform["distribution"] == name and str(platform["version"]) == version:
            return ""
    tested = ", ".join(f"{p['distribution']} {p['version']} ({p['release']})" for p in platforms)
    return (f"{host}: {name} {version} ({release}) is not a platform sipguard is tested on ({tested}); run "
            f"it on one of those, or test this one and add it to sipguard_preflight_platforms "
            f"(roles/sipguard_preflight/vars/main.yml)")


class FilterModule:
    def filters(self):
        return {
            "preflight_python_problem": sipguard_preflight_python_problem,
            "preflight_platform_problem": sipguard_preflight_platform_problem,
        }
