#!/bin/bash
# Create .venv-legacy with the pinned legacy controller toolchain (ansible 9 /
# ansible-core 2.16, the last one that manages Python 2.7 and 3.6 targets such
# as CentOS 7) from requirements-legacy.txt. Used by `./run matrix`; the main
# toolchain stays in .venv (scripts/bootstrap-venv.sh). Re-installs only when
# requirements-legacy.txt changed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo/.venv-legacy"
stamp="$venv/.sipguard-stamp"
want="$(sha256sum < "$repo/requirements-legacy.txt" | cut -c1-16)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "bootstrap-venv-legacy: .venv-legacy is up to date"
    exit 0
fi
echo "bootstrap-venv-legacy: installing ansible-core 2.16 into .venv-legacy (a few minutes the first time)"
[[ -x "$venv/bin/python" ]] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/requirements-legacy.txt"
echo "$want" > "$stamp"
echo "bootstrap-venv-legacy: done ($("$venv/bin/ansible" --version | head -n1))"
