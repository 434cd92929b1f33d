#!/bin/bash
# The legacy case of `./run matrix`: the public profile on a VOS3000-style host
# of the Debian 11 proxy image (python2.7 as the target interpreter, iptables in
# legacy mode), driven by ansible-core 2.16 from .venv-legacy. Molecule (in
# .venv, with ansible-core 2.19) cannot drive 2.16, so this script does its
# steps itself: create, prepare, converge, idempotence, verify (the shared
# helpers in molecule/shared and playbooks/audit.yml), destroy.
#
#   molecule/legacy/converge.sh [--keep] [-- ANSIBLE-PLAYBOOK-ARGS...]
#   --keep leaves the containers up; arguments after -- go to every site.yml run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
# shellcheck source=scripts/image-name.sh
source scripts/image-name.sh
image="$(sipguard_suite_image_name bullseye legacy)"
keep=0
[[ "${1:-}" == "--keep" ]] && { keep=1; shift; }
[[ "${1:-}" == "--" ]] && shift
extra=("$@")
names=(mol-legacy-target mol-legacy-scanner mol-legacy-phone)

destroy() { podman rm -f "${names[@]}" >/dev/null 2>&1 || true; }
((keep)) || trap destroy EXIT
step() { echo; echo "=== legacy: $*"; }

step "create (image $image)"
destroy
molecule/shared/networks.sh legacy 6
run() { # name networks...
    local name=$1
    shift
    podman run -d --name "$name" --hostname "$name" --systemd=always --cap-add NET_ADMIN,NET_RAW \
        --label sipguard.molecule=1 "$@" "$image" /lib/systemd/systemd >/dev/null
}
run mol-legacy-target --network=sipguard-mol-legacy-wan:ip=198.19.12.10,ip=2001:2:0:10c::10 \
    --network=sipguard-mol-legacy-lan:ip=198.19.13.10,ip=2001:2:0:10d::10
run mol-legacy-scanner --network=sipguard-mol-legacy-wan:ip=198.19.12.100,ip=2001:2:0:10c::100
run mol-legacy-phone --network=sipguard-mol-legacy-lan:ip=198.19.13.100,ip=2001:2:0:10d::100

step "prepare (a VOS3000-style softswitch.conf and a fake mbx3000d on the target)"
for name in "${names[@]}"; do
    podman exec "$name" sh -c 'systemctl is-system-running --wait >/dev/null; true'
done
podman exec mol-legacy-target sh -c 'mkdir -p /home/kunshi/mbx3000/etc /var/lib/fake-mbx3000d'
podman cp "$here/softswitch.conf" mol-legacy-target:/home/kunshi/mbx3000/etc/softswitch.conf
podman cp "$here/fake-mbx3000d.py" mol-legacy-target:/usr/local/sbin/fake-mbx3000d
podman cp "$here/mbx3000d.service" mol-legacy-target:/etc/systemd/system/mbx3000d.service
podman exec mol-legacy-target sh -c 'systemctl daemon-reload && systemctl enable --now mbx3000d'
# What was there before sipguard, for the rollback check of the shared helpers.
podman exec mol-legacy-target sh -c 'mkdir -p /var/lib/sipguard-test/before && cd /var/lib/sipguard-test/before &&
    iptables-save -t filter > iptables-save.txt && ip6tables-save -t filter > ip6tables-save.txt &&
    ipset list -n > ipsets.txt && grep -h "^SS_" /home/kunshi/mbx3000/etc/softswitch.conf > softswitch.txt'

export ANSIBLE_CONFIG="$repo/ansible.cfg" ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
legacy=(env PATH="$repo/.venv-legacy/bin:$PATH" ansible-playbook -i "$here/inventory" "${extra[@]}")
"$repo/.venv-legacy/bin/ansible-playbook" --version | sed -n 1p

step "converge (playbooks/site.yml, ansible-core 2.16)"
"${legacy[@]}" playbooks/site.yml

step "idempotence"
out="$("${legacy[@]}" playbooks/site.yml)" || { echo "$out"; exit 1; }
echo "$out" | tail -n 8
if echo "$out" | grep -E '^mol-legacy-target +:' | grep -vq 'changed=0 '; then
    echo "legacy: the second converge changed something" >&2
    exit 1
fi

step "verify (molecule/legacy/tests with the shared helpers; the audit with ansible-core 2.16)"
# The shared audit check runs the test kit's ansible-playbook: the 2.16 one.
SIPGUARD_ANSIBLE_BIN="$repo/.venv-legacy/bin" PATH="$repo/.venv-legacy/bin:$PATH" \
    MOLECULE_INVENTORY_FILE="$here/inventory" \
    "$repo/.venv/bin/pytest" -p no:cacheprovider -q "$here/tests"
