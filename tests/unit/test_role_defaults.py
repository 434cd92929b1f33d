"""Every role's defaults/main.yml and meta/argument_specs.yml agree, and docs/roles.md is generated from them.

argument_specs are the source of each role's defaults and their documentation; defaults/main.yml is what
the role actually uses. Both are compared as parsed YAML (a Jinja default is a string, compared as text):

- every variable in defaults/main.yml is documented in at least one entry point, and every entry point
  that documents it gives the same default (an option without ``default`` means null);
- every option documented with a default is in defaults/main.yml, with that value;
- a default that is not a Jinja expression has the documented type (and element type), and an option
  documented in several entry points has the same type in each.
"""

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta/argument_specs.yml").is_file())
MISSING = object()
TYPES = {"str": str, "path": str, "int": int, "float": (float, int), "bool": bool, "list": list, "dict": dict}


def load_script():
    path = ROOT / "scripts/role-docs.py"
    spec = importlib.util.spec_from_file_location("role_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path):
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def disagreements(role):
    """What differs between ``role``'s defaults/main.yml and its argument_specs, one line each."""
    defaults = read(role / "defaults/main.yml") or {}
    entries = (read(role / "meta/argument_specs.yml") or {}).get("argument_specs") or {}
    problems = []
    documented = {}  # variable -> {entry point: spec default}
    for entry, spec in entries.items():
        for name, option in ((spec or {}).get("options") or {}).items():
            documented.setdefault(name, {})[entry] = (option or {}).get("default", MISSING)
    for name, value in defaults.items():
        if name not in documented:
            problems.append(f"{name}: in defaults/main.yml but documented in no entry point")
            continue
        for entry, spec_default in documented[name].items():
            spec_value = None if spec_default is MISSING else spec_default
            if spec_value != value:
                shown = "no default" if spec_default is MISSING else repr(spec_default)
                problems.append(f"{name}: defaults/main.yml has {value!r}, entry point {entry} {shown}")
    for name, by_entry in documented.items():
        for entry, spec_default in by_entry.items():
            if spec_default is not MISSING and name not in defaults:
                problems.append(f"{name}: entry point {entry} documents the default {spec_default!r}, "
                                f"defaults/main.yml has none")
    return problems


def fits(value, kind):
    """Whether a default ``value`` can be of the argument_specs type ``kind`` (null and Jinja always can)."""
    if value is None or (isinstance(value, str) and "{{" in value) or kind in ("raw", None):
        return True
    if kind in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES.get(kind, object))


def type_problems(role):
    entries = (read(role / "meta/argument_specs.yml") or {}).get("argument_specs") or {}
    problems, types = [], {}
    for entry, spec in entries.items():
        for name, given in ((spec or {}).get("options") or {}).items():
            option = given or {}
            kind, elements = option.get("type", "str"), option.get("elements")
            if types.setdefault(name, (kind, elements)) != (kind, elements):
                problems.append(f"{name}: entry point {entry} says {kind}/{elements}, another {types[name]}")
            value = option.get("default")
            if not fits(value, kind):
                problems.append(f"{name}: default {value!r} is not a {kind}")
            elif kind == "list" and isinstance(value, list) and elements:
                problems += [f"{name}: element {item!r} is not a {elements}"
                             for item in value if not fits(item, elements)]
    return problems


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_defaults_agree_with_argument_specs(role):
    assert disagreements(role) == []


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_defaults_have_the_documented_type(role):
    assert type_problems(role) == []


def test_the_type_check_finds_a_wrong_type(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n"
        "      a: {type: int, default: '60'}\n"
        "      b: {type: list, elements: int, default: [22, '80']}\n"
        "      c: {type: bool, default: '{{ x }}'}\n"
        "  other:\n    options:\n"
        "      c: {type: str}\n"
    )
    assert type_problems(tmp_path) == [
        "a: default '60' is not a int",
        "b: element '80' is not a int",
        "c: entry point other says str/None, another ('bool', None)",
    ]


def test_the_comparison_finds_a_disagreement(tmp_path):
    (tmp_path / "defaults").mkdir()
    (tmp_path / "meta").mkdir()
    (tmp_path / "defaults/main.yml").write_text("a: 1\nb: '{{ x }}'\nundocumented: 3\nnulled: null\n")
    (tmp_path / "meta/argument_specs.yml").write_text(
        "argument_specs:\n"
        "  main:\n    options:\n"
        "      a: {type: int, default: 2}\n"
        "      b: {type: str, default: '{{ x  }}'}\n"
        "      nulled: {type: int}\n"
        "      only_here: {type: int, default: 5}\n"
        "  other:\n    options:\n"
        "      a: {type: int, default: 1}\n"
    )
    assert disagreements(tmp_path) == [
        "a: defaults/main.yml has 1, entry point main 2",
        "b: defaults/main.yml has '{{ x }}', entry point main '{{ x  }}'",
        "undocumented: in defaults/main.yml but documented in no entry point",
        "only_here: entry point main documents the default 5, defaults/main.yml has none",
    ]


def test_docs_roles_md_is_what_the_script_writes():
    committed = (ROOT / "docs/roles.md").read_text()
    assert committed == load_script().render(ROOT / "roles"), (
        "docs/roles.md is out of date: run scripts/role-docs.py")


# --- the responder role writes only what the inventory changes ------------------------------------


def render_responder_toml(**overrides):
    """responder.toml as the role renders it from its defaults (plus ``overrides``) for a public host."""
    import json  # noqa: PLC0415 - only these tests need them

    from ansible.module_utils.parsing.convert_bool import boolean  # noqa: PLC0415
    from jinja2 import Environment, StrictUndefined  # noqa: PLC0415
    from jinja2.nativetypes import NativeEnvironment  # noqa: PLC0415

    role = ROOT / "roles/sipguard_responder"
    context = {
        "inventory_hostname": "sg-public", "ansible_managed": "managed", "role_path": str(role),
        "sipguard_settings": {"trace": False, "scanner_drop": True},
    }
    native = NativeEnvironment(undefined=StrictUndefined)
    # The one lookup the defaults use, as Ansible's query() would call it.
    from ansible_collections.sipguard.hardening.plugins.lookup import scanner_user_agents  # noqa: PLC0415

    lookups = {"sipguard.hardening.scanner_user_agents": scanner_user_agents.read_scanner_user_agents}
    native.globals["query"] = lambda name: lookups[name]()

    def resolve(value):
        if isinstance(value, str) and "{{" in value:
            return native.from_string(value).render(context)
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    profile = read(ROOT / "roles/sipguard_profile/defaults/main.yml")
    for name, value in {**profile, **read(role / "defaults/main.yml"), **overrides}.items():
        context[name] = resolve(value)
    env = Environment(trim_blocks=True, undefined=StrictUndefined, autoescape=False)  # noqa: S701 - TOML
    env.filters.update(to_json=json.dumps, bool=lambda v: boolean(v, strict=False))
    return env.from_string((role / "templates/responder.toml.j2").read_text()).render(context)


LEFT_TO_THE_RESPONDER = ("tcp_max_connections", "final_status", "final_reason")


def test_responder_toml_leaves_unset_knobs_to_the_responder():
    from sipresponder.config import parse_settings  # noqa: PLC0415

    text = render_responder_toml()
    for key in LEFT_TO_THE_RESPONDER:
        assert f"{key} =" not in text, text
    settings = parse_settings(text)
    # Kept on purpose (docs/roles.md): the host's realm (stored HA1s depend on it) and no metrics listener.
    assert settings.auth_realm == "sg-public"
    assert settings.stats_prometheus_listen == ""
    assert settings.limits_tcp_max_connections == parse_settings("").limits_tcp_max_connections
    assert settings.invite_final_status == parse_settings("").invite_final_status
    assert settings.invite_final_reason == parse_settings("").invite_final_reason


def test_responder_toml_writes_what_the_inventory_sets():
    from sipresponder.config import parse_settings  # noqa: PLC0415

    settings = parse_settings(render_responder_toml(
        sipguard_responder_tcp_max_connections=512, sipguard_responder_invite_final_status=480,
        sipguard_responder_invite_final_reason="Temporarily Unavailable",
        sipguard_responder_prometheus_listen="127.0.0.1:9999", sipguard_responder_realm="pbx.example.net"))
    assert (settings.limits_tcp_max_connections, settings.invite_final_status, settings.invite_final_reason,
            settings.stats_prometheus_listen, settings.auth_realm) == (
        512, 480, "Temporarily Unavailable", "127.0.0.1:9999", "pbx.example.net")
    unset = parse_settings(render_responder_toml(sipguard_responder_realm=None,
                                                 sipguard_responder_prometheus_listen=None))
    assert (unset.auth_realm, unset.stats_prometheus_listen) == (
        parse_settings("").auth_realm, parse_settings("").stats_prometheus_listen)
