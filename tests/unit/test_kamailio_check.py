"""The Kamailio preflight's two patterns (roles/sipguard_kamailio/tasks/check.yml): which kamailio.cfg
texts count as pulling in sipguard.cfg and calling route(SIPGUARD) first in request_route."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECK = yaml.safe_load((ROOT / "roles/sipguard_kamailio/tasks/check.yml").read_text())
VARS = next(task["vars"] for task in CHECK if "vars" in task)


def include_pattern(path="/etc/kamailio/sipguard.cfg"):
    # The Jinja in the pattern only inserts the file's name and path, escaped.
    text = VARS["sipguard_kamailio_include_pattern"]
    text = text.replace("{{ sipguard_kamailio_file | basename | regex_escape }}", re.escape(Path(path).name))
    return text.replace("{{\nsipguard_kamailio_file | regex_escape }}", re.escape(path)).replace(
        "{{ sipguard_kamailio_file | regex_escape }}", re.escape(path))


ROUTE = VARS["sipguard_kamailio_route_start"] + VARS["sipguard_kamailio_route_call"]


INCLUDES = ['import_file "sipguard.cfg"', 'include_file "sipguard.cfg"', '#!import_file "sipguard.cfg"',
            '  import_file "/etc/kamailio/sipguard.cfg"']


@pytest.mark.parametrize("line", INCLUDES)
def test_include_lines_accepted(line):
    assert re.search(include_pattern(), f"loadmodule \"sl.so\"\n{line}\nrequest_route {{\n}}\n")


@pytest.mark.parametrize("line", ['# import_file "sipguard.cfg"', 'import_file "other.cfg"',
                                  'import_file "sipguard.cfg.bak"', 'import_file "/tmp/sipguard.cfg"'])
def test_other_lines_refused(line):
    assert not re.search(include_pattern(), f"{line}\nrequest_route {{\n}}\n")


@pytest.mark.parametrize("body", [
    "\troute(SIPGUARD);\n\troute(REQINIT);",
    "\n\t# sipguard first\n\troute(SIPGUARD);",
    "#!ifdef WITH_SIPGUARD\n\troute(SIPGUARD);\n#!endif",
    "\n\t/* sipguard\n\t   first */\n\t// really\n\troute(SIPGUARD);",
])
def test_route_first_accepted(body):
    assert re.search(ROUTE, f"route[X] {{\n}}\nrequest_route {{\n{body}\n}}\n")


@pytest.mark.parametrize("body", [
    "\troute(REQINIT);\n\troute(SIPGUARD);",
    "#!ifdef WITH_OTHER\n\troute(SIPGUARD);\n#!endif",
    "\t# route(SIPGUARD);",
    "\troute(SIPGUARD_AUTH);",
])
def test_route_not_first_refused(body):
    assert not re.search(ROUTE, f"request_route {{\n{body}\n}}\n")


def test_debian_kamailio_cfg_shape_is_refused_as_shipped():
    shipped = ('import_file "kamailio-local.cfg"\n'
               "request_route {\n\n\t# per request initial checks\n\troute(REQINIT);\n}\n")
    assert not re.search(include_pattern(), shipped) and not re.search(ROUTE, shipped)
