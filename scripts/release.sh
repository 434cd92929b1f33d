#!/bin/bash
# Build the collection tarball (sipguard-hardening-VERSION.tar.gz) from this
# clone and print its path. What goes in is galaxy.yml's business (build_ignore):
# the roles, playbooks, plugins, the responder package, docs and the example
# inventory; not the lab, tests or tools.
#
#   scripts/release.sh [OUTPUT_DIR]     default: build/
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build}"
mkdir -p "$out"
ansible-galaxy collection build --force --output-path "$out" . >/dev/null
version="$(sed -n 's/^version: *//p' galaxy.yml)"
tarball="$out/sipguard-hardening-$version.tar.gz"
[[ -f "$tarball" ]] || { echo "release: $tarball was not built" >&2; exit 1; }
echo "$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
