#!/usr/bin/env python3
"""Write the four profile scenarios' molecule.yml from one template and the address plan.

The profile scenarios (public, private_lan, mixed, debug) differ only in their name, profile and
addresses, so they are generated rather than kept as near-copies:

    .venv/bin/python scripts/profile-scenarios.py          # rewrite molecule/<scenario>/molecule.yml
    .venv/bin/python scripts/profile-scenarios.py --check  # exit 1 if one is out of date

The template is molecule/shared/templates/profile-scenario.yml.j2; the addresses come from
testkit/topology.json (molecule.scenarios.<topology name>). Each scenario keeps its own directory and
tests, so `molecule test -s public` is what a user types. tests/unit/test_profile_scenarios.py fails when
a committed file differs from what this script writes.
"""

import json
import sys
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "molecule/shared/templates/profile-scenario.yml.j2"

# directory -> (name in the address plan, profile, what the scenario is about beyond the profile)
SCENARIOS = {
    "public": ("public", "public", ""),
    "private_lan": ("private-lan", "private_lan", ""),
    "mixed": ("mixed", "mixed", ""),
    "debug": ("debug", "public", "The verifier opens a short debug window with playbooks/debug.yml\n"
                                  "and watches the host revert by itself."),
}


def _prefix(subnet: str, sep: str) -> str:
    """198.19.2.0/24 -> 198.19.2 ; 2001:2:0:102::/64 -> 2001:2:0:102:"""
    network = subnet.split("/", maxsplit=1)[0]
    return network.rsplit(".", 1)[0] if sep == "." else network.rstrip(":") + ":"


def render(directory: str) -> str:
    topology_name, profile, about = SCENARIOS[directory]
    plan = json.loads((ROOT / "testkit/topology.json").read_text())["molecule"]["scenarios"][topology_name]
    # YAML, not HTML: nothing to escape.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,  # noqa: S701
                             trim_blocks=True)
    return env.from_string(TEMPLATE.read_text()).render(
        directory=directory, name=topology_name, index=plan["index"], profile=profile, about=about,
        wan_net=plan["wan"]["ipv4"], lan_net=plan["lan"]["ipv4"],
        wan4=_prefix(plan["wan"]["ipv4"], "."), lan4=_prefix(plan["lan"]["ipv4"], "."),
        wan6=_prefix(plan["wan"]["ipv6"], ":"), lan6=_prefix(plan["lan"]["ipv6"], ":"),
        lan_net6=plan["lan"]["ipv6"])


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for directory in SCENARIOS:
        path = ROOT / "molecule" / directory / "molecule.yml"
        text = render(directory)
        if path.read_text() != text:
            stale.append(str(path.relative_to(ROOT)))
            if not check:
                path.write_text(text)
    if check and stale:
        print("out of date (run scripts/profile-scenarios.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
