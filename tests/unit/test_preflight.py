"""The preflight's verdicts (roles/sipguard_preflight) and the one list of tested platforms."""

import importlib.util
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
PLUGIN = ROLES.parent / "plugins/filter/preflight.py"
spec = importlib.util.spec_from_file_location("preflight", PLUGIN)
preflight = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preflight)

VARS = yaml.safe_load((ROLES / "sipguard_preflight/vars/main.yml").read_text())
SUPPORT = VARS["sipguard_preflight_python_support"]
TOOLCHAINS = VARS["sipguard_preflight_toolchains"]
PLATFORMS = VARS["sipguard_preflight_platforms"]
DISCOVERY = ["python3.13", "python3.12", "python3.11", "python3.10", "python3.9", "python3.8",
             "/usr/bin/python3", "python3"]


def probe(*found):
    return "".join(f"SIPGUARD-PY {path} {version}\r\n" for path, version in found)


def verdict(stdout, controller="2.19.14", interpreter=""):
    return preflight.sipguard_preflight_python_problem(stdout, "h1", controller, interpreter, DISCOVERY,
                                                       SUPPORT, TOOLCHAINS)


def test_a_modern_python_passes():
    assert verdict(probe(("/usr/bin/python3", "3.11.2")), interpreter="/usr/bin/python3") == ""
    assert verdict(probe(("python3.13", "absent"), ("python3.11", "3.11.2"))) == ""


def test_python_27_under_219_names_the_216_toolchain():
    message = verdict(probe(("/usr/bin/python2.7", "2.7.5")), interpreter="/usr/bin/python2.7")
    assert message.startswith("h1: Python 2.7.5 at /usr/bin/python2.7, which ansible-core 2.19 cannot manage")
    assert "needs Python 3.8 or later" in message
    assert "the ansible-core 2.16 toolchain (docs/development.md)" in message


def test_centos7_python36_found_by_discovery_is_refused_with_the_fix():
    # Discovery takes /usr/bin/python3 (3.6 on CentOS 7 with python3 installed): 2.19 cannot run it.
    message = verdict(probe(("python3.13", "absent"), ("/usr/bin/python3", "3.6.8"), ("python2.7", "2.7.5")))
    assert "Python 3.6.8 at /usr/bin/python3" in message
    assert "ansible-core 2.16 toolchain" in message


def test_only_python2_found_by_discovery_says_what_the_host_has():
    message = verdict(probe(*[(p, "absent") for p in DISCOVERY], ("python2.7", "2.7.5"), ("python", "2.7.5")))
    assert "finds no Python" in message and "Python 2.7.5 at python2.7" in message
    assert "ansible-core 2.16 toolchain" in message


def test_a_usable_python_outside_discovery_is_named():
    message = verdict(probe(*[(p, "absent") for p in DISCOVERY], ("/opt/py/bin/python3.12", "3.12.1")))
    assert message.endswith("set ansible_python_interpreter: /opt/py/bin/python3.12")


def test_no_python_at_all_and_a_missing_or_broken_interpreter():
    assert "no Python found" in verdict(probe(*[(p, "absent") for p in DISCOVERY]))
    assert "does not exist on the host" in verdict(probe(("/usr/bin/python9", "absent")),
                                                   interpreter="/usr/bin/python9")
    assert "did not run as Python" in verdict(probe(("/bin/true", "unusable")), interpreter="/bin/true")
    assert "could not run the Python probe" in verdict("sh: not found")


def test_under_216_python_27_and_36_pass_but_35_does_not():
    for version in ("2.7.5", "3.6.8", "3.12.1"):
        assert verdict(probe(("/usr/bin/python", version)), "2.16.14", "/usr/bin/python") == "", version
    message = verdict(probe(("/usr/bin/python3", "3.5.2")), "2.16.14", "/usr/bin/python3")
    assert "cannot manage" in message and "2.7 or 3.6 or later" in message
    assert "there is no sipguard toolchain for it" in message


def test_a_controller_newer_than_the_table_uses_its_newest_row():
    assert verdict(probe(("/usr/bin/python3", "3.11.2")), "2.21.0", "/usr/bin/python3") == ""
    assert "ansible-core 2.21 cannot manage" in verdict(probe(("/usr/bin/python3", "3.7.3")), "2.21.0",
                                                        "/usr/bin/python3")


def debian(version, release):
    return {"distribution": "Debian", "distribution_major_version": version, "distribution_release": release}


@pytest.mark.parametrize(
    ("facts", "ok"),
    [
        (debian("12", "bookworm"), True),
        (debian("10", "buster"), False),
        ({**debian("7", "Core"), "distribution": "CentOS"}, False),
        ({}, False),
    ],
)
def test_platform_verdict(facts, ok):
    message = preflight.sipguard_preflight_platform_problem(facts, "h1", PLATFORMS)
    assert (message == "") == ok
    if not ok:
        assert message.startswith("h1: ") and "Debian 12 (bookworm)" in message
        assert "sipguard_preflight_platforms" in message


# A product's backend role declares the releases that package the product (Debian ships Asterisk in 11
# only), a subset of the preflight list; every other role declares the whole list.
PRODUCT_RELEASES = {"sipguard_asterisk": {"Debian": {"bullseye"}}}


def test_every_role_declares_exactly_the_preflight_platforms():
    """The roles' meta/main.yml and the preflight list say the same (one list is the data, the
    other what Galaxy and ansible-lint read)."""
    declared = {}
    for platform in PLATFORMS:
        declared.setdefault(platform["distribution"], set()).add(platform["release"])
    for meta in sorted(ROLES.glob("*/meta/main.yml")):
        galaxy = yaml.safe_load(meta.read_text())["galaxy_info"]
        roles_platforms = {p["name"]: set(p["versions"]) for p in galaxy["platforms"]}
        role = meta.parent.parent.name
        assert roles_platforms == PRODUCT_RELEASES.get(role, declared), meta
        assert all(versions <= declared.get(name, set()) for name, versions in roles_platforms.items()), meta
