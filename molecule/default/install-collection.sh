#!/bin/bash
# The default scenario's dependency step: its networks, and the collection built
# from this clone (scripts/release.sh) installed the way a user installs it,
#   ansible-galaxy collection install TARBALL -p DIR
# into a directory of its own (.cache/collection-install, ignored by git). The
# scenario converges from that copy only (ANSIBLE_COLLECTIONS_PATH in
# molecule.yml), so a role or module that still needs the clone fails here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="$repo/.cache/collection-install"
"$repo/molecule/shared/networks.sh" default 0
rm -rf "$dir"
mkdir -p "$dir/build" "$dir/collections"
tarball="$("$repo/scripts/release.sh" "$dir/build")"
ANSIBLE_COLLECTIONS_PATH="$dir/collections" \
    ansible-galaxy collection install --force "$tarball" -p "$dir/collections" >/dev/null
echo "collection: $tarball installed in $dir/collections"
