#!/bin/bash
# Create .venv with the pinned development tools (ansible 12 / ansible-core 2.19,
# molecule, linters, pytest) and the sipresponder package in editable mode.
# Re-installs only when requirements-dev.txt or pyproject.toml changed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo/.venv"
stamp="$venv/.sipguard-stamp"
want="$(cat "$repo/requirements-dev.txt" "$repo/pyproject.toml" | sha256sum | cut -c1-16)"

# The repo root on the venv's path, so the test kit (testkit/) imports in `python bench/x.py` as it
# does in pytest runs (pyproject.toml's pytest pythonpath).
link_repo() {
    local site
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    echo "$repo" > "$site/sipguard-repo.pth"
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    link_repo
    echo "bootstrap-venv: .venv is up to date"
    exit 0
fi
echo "bootstrap-venv: installing the pinned tools into .venv (a few minutes the first time)"
# Debian's interpreter, so the venv matches what a fresh Debian 12 has.
[[ -x "$venv/bin/python" ]] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/requirements-dev.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$repo"
link_repo
echo "$want" > "$stamp"
echo "bootstrap-venv: done"
