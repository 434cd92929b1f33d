#!/bin/bash
# ansible-test sanity on the collection as a user gets it (docs/development.md, "Sanity and releasing").
#
#   scripts/sanity.sh            1. every sanity test on Python 3.11, the controller's Python
#                                2. compile (and, for the target-only 3.8-3.10, import) on each other
#                                   Python ansible-core 2.19 supports that this machine has
#                                3. with .venv-legacy (ansible-core 2.16): compile on 2.7, 3.6, 3.7, the
#                                   CentOS 7 targets' Pythons, when this machine has them
#                                A Python that is not here is reported as skipped, not failed.
#   scripts/sanity.sh ARGS...    only `ansible-test sanity ARGS...` (e.g. --test validate-modules --python 3.11)
#   SIPGUARD_SANITY_KEEP=1 scripts/sanity.sh   keep the installed copy (its path is printed)
#
# ansible-test wants the collection at .../ansible_collections/sipguard/hardening as real files (it
# resolves the working directory physically, and its sanity tests skip symlinked files), so this builds
# the tarball from the working tree (uncommitted changes included, galaxy.yml's build_ignore applied),
# installs it into a temporary collections path and runs there. Sanity's own tool versions (pylint,
# validate-modules, yamllint ...) go into ansible-test's cached virtualenvs under ~/.ansible/test/venv,
# from PyPI: the first run takes about 5 minutes longer. No container is used.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
export PATH="$repo/.venv/bin:$PATH"
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS

work="$(mktemp -d "${TMPDIR:-/tmp}/sipguard-sanity.XXXXXX")"
if [[ -z "${SIPGUARD_SANITY_KEEP:-}" ]]; then
    trap 'rm -rf "$work"' EXIT
fi

# ansible-test bootstraps pip into each new virtualenv with a get-pip script from
# ci-files.testing.ansible.com. Where that host is unreachable (only PyPI is, here), a stand-in
# takes its place in ansible-test's cache: ensurepip, then the pip version ansible-test asked
# for, from PyPI. An official script already in the cache is used as it is.
pip_version="$(python - <<'EOF'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="3.11"))["pip"])
EOF
)"
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -f "$get_pip" ]]; then
    mkdir -p "$(dirname "$get_pip")"
    if ! curl -fsS --max-time 20 -o "$get_pip.download" \
        "https://ci-files.testing.ansible.com/ansible-test/get-pip-$pip_version.py" 2>/dev/null; then
        cat >"$get_pip.download" <<'EOF'
# sipguard's stand-in for ansible-test's get-pip script (scripts/sanity.sh wrote it because
# ci-files.testing.ansible.com was unreachable): pip from ensurepip, then the requested pip from PyPI.
import ensurepip
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
ensurepip.bootstrap()
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet"] + args))
EOF
    fi
    mv "$get_pip.download" "$get_pip"
fi

ansible-galaxy collection build --output-path "$work" . >/dev/null
ansible-galaxy collection install --force -p "$work/collections" "$work"/sipguard-hardening-*.tar.gz >/dev/null 2>&1
cd "$work/collections/ansible_collections/sipguard/hardening"
[[ -n "${SIPGUARD_SANITY_KEEP:-}" ]] && echo "sanity: the installed collection is in $(pwd)"

if (($#)); then
    exec ansible-test sanity --color no "$@"
fi

# Interpreters for the other Python versions: pyenv's builds, else pythonX.Y on PATH (a pyenv shim
# is not one: it only runs the version pyenv has selected). They are linked into one directory
# ahead of PATH, where ansible-test looks for pythonX.Y.
mkdir -p "$work/bin"
find_python() { # X.Y -> path, or nothing
    local found
    found="$(compgen -G "$HOME/.pyenv/versions/$1.*/bin/python$1" | sort -V | tail -n1 || true)"
    [[ -z "$found" ]] && found="$(command -v "python$1" || true)"
    [[ -n "$found" && "$found" != */shims/* ]] && echo "$found"
}
skipped=()
extra_versions() { # ansible-test's python -> its supported versions other than 3.11, one a line
    "$1" -c 'from ansible_test._internal.constants import SUPPORTED_PYTHON_VERSIONS as v; print("\n".join(v))' |
        grep -vx 3.11
}
have_python() { # X.Y: link it into $work/bin, or note it as skipped
    local found
    found="$(find_python "$1")"
    if [[ -z "$found" ]]; then
        skipped+=("$1")
        return 1
    fi
    ln -sf "$found" "$work/bin/python$1"
}

status=0
echo "=== sanity: all tests, Python 3.11 (ansible-core $(ansible --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p'))"
ansible-test sanity --color no --python 3.11 || status=1

# 2.19's other Pythons: compile everywhere; import of the target-side code (modules,
# module_utils) on the target-only ones. Import on 3.12/3.13 would only repeat 3.11's import of
# the controller-side filters, in one more virtualenv each.
remote_only="$(python -c 'from ansible_test._internal.constants import REMOTE_ONLY_PYTHON_VERSIONS as v; print(" ".join(v))')"
for version in $(extra_versions python); do
    have_python "$version" || continue
    tests=(--test compile)
    names=compile
    if [[ " $remote_only " == *" $version "* ]]; then
        tests+=(--test import)
        names="compile, import"
    fi
    echo "=== sanity: $names, Python $version"
    PATH="$work/bin:$PATH" ansible-test sanity --color no "${tests[@]}" --python "$version" || status=1
done

# The CentOS 7 targets' Pythons need ansible-core 2.16's ansible-test (2.19's knows 3.8+ only).
legacy="$repo/.venv-legacy/bin"
if [[ -x "$legacy/ansible-test" ]]; then
    for version in 2.7 3.6 3.7; do
        have_python "$version" || continue
        echo "=== sanity: compile, Python $version (ansible-core 2.16, .venv-legacy)"
        PATH="$legacy:$work/bin:$PATH" ansible-test sanity --color no --test compile --python "$version" || status=1
    done
else
    echo "=== sanity: no .venv-legacy (scripts/bootstrap-venv-legacy.sh makes it): Python 2.7, 3.6, 3.7 not compiled"
fi

if ((${#skipped[@]})); then
    echo "=== sanity: skipped for lack of an interpreter: Python ${skipped[*]}"
fi
echo "=== sanity: $( ((status == 0)) && echo passed || echo FAILED)"
exit $status
