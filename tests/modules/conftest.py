"""Call a module from plugins/modules/ in-process, the way Ansible would, and capture its result.

Ansible hands a module its arguments as JSON and reads one JSON document from its stdout; the module
ends with exit_json()/fail_json(), which print that document and call sys.exit(). The helper below feeds
the arguments through the same entry point (`basic._ANSIBLE_ARGS`) and parses the printed result, so
argument-spec validation, check mode, diff mode and no_log filtering all run for real.

Usage in a test:

    def test_x(run_module):
        result = run_module("softswitch", {"path": "...", "params": {...}}, check=True, diff=True)
        assert result["changed"]
        assert not result.get("failed")
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic

from testkit.ansible import ansible

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "plugins" / "modules"
COLLECTION = "sipguard.hardening"


def _import_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_module(name: str):
    """Import plugins/modules/<name>.py as a Python module (its main() is not run).

    Its module_utils imports (ansible_collections.sipguard.hardening...) resolve through tests/conftest.py.
    """
    return _import_file(f"sipguard_test_{name}", MODULES / f"{name}.py")


def call_module(name: str, args: dict, *, check: bool = False, diff: bool = False) -> dict:
    """Run plugins/modules/<name>.py with `args`; return the result dict (`failed: True` on fail_json)."""
    module = load_module(name)
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    saved = basic._ANSIBLE_ARGS, basic._ANSIBLE_PROFILE
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
            module.main()
    finally:
        basic._ANSIBLE_ARGS, basic._ANSIBLE_PROFILE = saved
    # The result is the last JSON document printed; anything before it would be stray output.
    text = out.getvalue().strip()
    result = json.loads(text[text.rindex("\n{") + 1 :] if "\n{" in text else text)
    assert (exited.value.code == 0) == (not result.get("failed")), "exit code disagrees with the result"
    return result


@pytest.fixture
def run_module():
    """The call_module() helper as a fixture."""
    return call_module


def check_documentation(name: str) -> None:
    """Fail unless `ansible-doc` renders the module and its DOCUMENTATION matches its ARGUMENT_SPEC.

    A module that wants this check keeps its argument spec in a module-level ARGUMENT_SPEC dict.
    """
    rendered = ansible(f"{COLLECTION}.{name}", tool="ansible-doc")
    assert rendered.returncode == 0, rendered.stderr
    assert "[WARNING]" not in rendered.stderr, rendered.stderr

    module = load_module(name)
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = module.ARGUMENT_SPEC
    assert set(documented) == set(spec), "DOCUMENTATION options differ from the argument spec"
    for option, doc in documented.items():
        assert doc.get("type", "str") == spec[option].get("type", "str"), f"type of {option}"
        assert doc.get("default") == spec[option].get("default"), f"default of {option}"
        assert bool(doc.get("required")) == bool(spec[option].get("required")), f"required of {option}"
        assert doc.get("choices") == spec[option].get("choices"), f"choices of {option}"
    # Every example task must parse and use only documented options.
    for task in yaml.safe_load(module.EXAMPLES):
        fqcn = f"{COLLECTION}.{name}"
        assert not {name, f"sipguard_{name}"} & set(task), f"example calls the module by a short name: {task}"
        if fqcn in task:
            assert set(task[fqcn]) <= set(documented), f"example uses unknown options: {task[fqcn]}"
    yaml.safe_load(module.RETURN)


@pytest.fixture
def documentation_check():
    """The check_documentation() helper as a fixture."""
    return check_documentation


@pytest.fixture
def library_module():
    """The load_module() helper as a fixture, for testing a module's functions directly."""
    return load_module


def run_adhoc(name: str, args: dict) -> dict:
    """Run the module <name> through `ansible localhost -m`, the real path; return the host's result.

    localhost is given as its own inventory and runs this venv's python, so the result does not depend
    on what the project inventory says about localhost.
    """
    completed = ansible(
        *("localhost", "-i", "localhost,", "-c", "local"),
        *("-e", f"ansible_python_interpreter={sys.executable}"),
        *("-m", f"{COLLECTION}.{name}", "-a", json.dumps(args)),
        tool="ansible", callback="json", timeout=120,
    )
    assert completed.stdout.strip(), completed.stderr
    return json.loads(completed.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.fixture
def adhoc_module():
    """The run_adhoc() helper as a fixture."""
    return run_adhoc
