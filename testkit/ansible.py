"""Run Ansible's command-line tools the one way the tests, verifiers and benchmarks do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_CFG = REPO / "ansible.cfg"


def _tool(name: str) -> str:
    """`name` from SIPGUARD_ANSIBLE_BIN (a directory: the legacy leg points it at .venv-legacy/bin, the
    ansible-core 2.16 toolchain), else beside this interpreter (the venv's), else from PATH."""
    chosen = os.environ.get("SIPGUARD_ANSIBLE_BIN")
    if chosen:
        return str(Path(chosen) / name)
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def ansible(*args: str, tool: str = "ansible-playbook", cwd: Path | str = REPO, config: bool = True,
            collections: Path | str | None = None, callback: str | None = None,
            env: dict[str, str] | None = None, inherit_env: bool = True, timeout: float = 600,
            prefix: tuple[str, ...] | list[str] = ()) -> subprocess.CompletedProcess:
    """Run `tool` (ansible-playbook, ansible, ansible-doc...) with `args`; never raises on failure.

    config: with the repo's ansible.cfg (ANSIBLE_CONFIG); collections: ANSIBLE_COLLECTIONS_PATH;
    callback: the stdout callback (e.g. "json", "ansible.posix.json"; ad hoc runs load it too);
    env: more variables, over this process's environment (or, inherit_env=False, over nothing);
    prefix: a command that runs the tool (e.g. ["ip", "netns", "exec", NS]).
    Output is captured as text, without colour.
    """
    full = dict(os.environ) if inherit_env else {}
    full["ANSIBLE_NOCOLOR"] = "1"
    if config:
        full["ANSIBLE_CONFIG"] = str(ANSIBLE_CFG)
    if collections is not None:
        full["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    if callback:
        full.update(ANSIBLE_STDOUT_CALLBACK=callback, ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    full.update(env or {})
    return subprocess.run([*prefix, _tool(tool), *map(str, args)], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout, check=False)
