#!/bin/bash
# The built-in lab: podman networks and containers that stand in for a fleet.
#
#   scripts/lab.sh up      create (or start) the lab; idempotent
#   scripts/lab.sh down    remove the lab's containers and networks
#   scripts/lab.sh status  list the lab's containers
#
# Layout (also in inventory/lab/hosts.yml and docs/lab.md): a "wan" network that
# plays the internet (scanner, trunk) and a "lan" network (a phone); the four
# targets, one per profile, sit on both. Both networks are --internal: nothing
# in the lab can route beyond this machine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/image-name.sh
source "$here/image-name.sh"
image="$(sipguard_image_name)"

WAN=sipguard-lab-wan
LAN=sipguard-lab-lan
# name  lan-host-part  wan-host-part   ("-" = not on that network)
HOSTS=(
    "sg-private 11 11"
    "sg-public  12 12"
    "sg-mixed   13 13"
    "sg-debug   14 14"
    "sg-scanner - 100"
    "sg-phone   100 -"
    "sg-trunk   - 50"
)

ensure_network() { # name v4-prefix v6-prefix
    podman network exists "$1" && return
    podman network create --internal --ipv6 \
        --subnet "$2.0/24" --subnet "$3::/64" "$1" >/dev/null
    echo "lab: network $1 ($2.0/24, $3::/64)"
}

ensure_container() { # name lan wan
    local name=$1 lan=$2 wan=$3 args=()
    if podman container exists "$name"; then
        [[ "$(podman inspect -f '{{.State.Running}}' "$name")" == true ]] || podman start "$name" >/dev/null
        return
    fi
    [[ $lan != - ]] && args+=(--network "$LAN:ip=198.18.10.$lan,ip=2001:2:0:10::$lan")
    [[ $wan != - ]] && args+=(--network "$WAN:ip=198.18.20.$wan,ip=2001:2:0:20::$wan")
    podman run -d --name "$name" --hostname "$name" --label sipguard.lab=1 \
        --systemd=always --cap-add NET_ADMIN --cap-add NET_RAW \
        "${args[@]}" "$image" /lib/systemd/systemd >/dev/null
    echo "lab: container $name"
}

wait_systemd() { # name
    local state
    for _ in $(seq 1 60); do
        state="$(podman exec "$1" systemctl is-system-running 2>/dev/null || true)"
        [[ $state == running || $state == degraded ]] && return 0
        sleep 0.5
    done
    echo "lab: $1: systemd did not come up (state: ${state:-unknown})" >&2
    return 1
}

# The trunk also serves DNS for its own name (molecule/shared/trunk-dns.yml), so
# the mixed profile resolves its trunk the RFC 3263 way from a real DNS server.
start_trunk_dns() {
    (cd "$here/.." && ansible-playbook -i inventory/lab molecule/shared/trunk-dns.yml >/dev/null) \
        || { echo "lab: trunk DNS failed; rerun: ansible-playbook -i inventory/lab molecule/shared/trunk-dns.yml" >&2; return 1; }
    echo "lab: trunk DNS on 198.18.20.50 (trunk.lab.sipguard.test)"
}

up() {
    "$here/build-image.sh"
    ensure_network "$WAN" 198.18.20 2001:2:0:20
    ensure_network "$LAN" 198.18.10 2001:2:0:10
    local entry
    for entry in "${HOSTS[@]}"; do
        # shellcheck disable=SC2086
        ensure_container $entry
    done
    for entry in "${HOSTS[@]}"; do
        wait_systemd "${entry%% *}"
    done
    start_trunk_dns
    echo "lab: up ($(podman ps --filter label=sipguard.lab=1 -q | wc -l) containers)"
}

down() {
    local ids
    ids="$(podman ps -a --filter label=sipguard.lab=1 -q)"
    [[ -n $ids ]] && podman rm -f -t 2 $ids >/dev/null
    for net in "$WAN" "$LAN"; do
        podman network exists "$net" && podman network rm "$net" >/dev/null
    done
    echo "lab: down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) podman ps -a --filter label=sipguard.lab=1 --format '{{.Names}}\t{{.Status}}' ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
