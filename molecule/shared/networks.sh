#!/bin/bash
# Create the podman networks of one Molecule scenario before `molecule create`
# (molecule.yml cannot give a platform's network a fixed subnet). Called by each
# scenario's `dependency` step:  networks.sh SCENARIO INDEX
#
# Every scenario gets its own pair inside 198.19.0.0/16 (lab: 198.18.x):
#   wan  198.19.<2*INDEX>.0/24    2001:2:0:<2*INDEX+0x100>::/64   the "internet"
#   lan  198.19.<2*INDEX+1>.0/24  2001:2:0:<2*INDEX+0x101>::/64
# Both are --internal: nothing routes beyond this machine.
set -euo pipefail
scenario=$1 index=$2
wan=$((2 * index)) lan=$((2 * index + 1))
create() { # name v4-third-octet
    podman network exists "$1" && return
    podman network create --internal --ipv6 --label sipguard.molecule=1 \
        --subnet "198.19.$2.0/24" --subnet "2001:2:0:$(printf '%x' $((0x100 + $2)))::/64" "$1" >/dev/null
    echo "networks: $1 198.19.$2.0/24"
}
create "sipguard-mol-$scenario-wan" "$wan"
create "sipguard-mol-$scenario-lan" "$lan"
