#!/bin/bash
# Make this clone importable as the collection sipguard.hardening, so the roles,
# playbooks and tests run from the repository exactly as they run from an
# installed collection (FQCN names, ansible_collections.* imports).
#
# ansible.cfg lists .ansible/collections first in collections_path; this puts
# ansible_collections/sipguard/hardening there as a relative link to the clone.
# (ansible-lint makes the same link itself when it finds galaxy.yml.)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.ansible/collections/ansible_collections/sipguard
mkdir -p "$dir"
if [[ "$(readlink "$dir/hardening" 2>/dev/null)" != "../../../.." ]]; then
    rm -rf "$dir/hardening"
    ln -s ../../../.. "$dir/hardening"
fi
