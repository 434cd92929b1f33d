#!/bin/bash
# Create the podman networks of one Molecule scenario before `molecule create`
# (molecule.yml cannot give a platform's network a fixed subnet). Called by each
# scenario's `dependency` step:  networks.sh SCENARIO INDEX
#
# The subnets come from the address plan, testkit/topology.json (molecule.scenarios.SCENARIO,
# whose index must be INDEX): every scenario gets its own pair inside 198.19.0.0/16 (lab: 198.18.x):
#   wan  198.19.<2*INDEX>.0/24    2001:2:0:<2*INDEX+0x100>::/64   the "internet"
#   lan  198.19.<2*INDEX+1>.0/24  2001:2:0:<2*INDEX+0x101>::/64
# Both are --internal: nothing routes beyond this machine.
set -euo pipefail
scenario=$1 index=$2
topology="$(cd "$(dirname "$0")/../.." && pwd)/testkit/topology.json"
# "wan4 wan6 lan4 lan6" of the scenario, or a failure naming the disagreement.
read -r wan4 wan6 lan4 lan6 < <(python3 - "$topology" "$scenario" "$index" <<'PY'
import json, sys
path, name, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
nets = json.load(open(path))["molecule"]["scenarios"][name]
if nets["index"] != index:
    sys.exit(f"networks.sh: {name} is index {nets['index']} in {path}, not {index}")
print(nets["wan"]["ipv4"], nets["wan"]["ipv6"], nets["lan"]["ipv4"], nets["lan"]["ipv6"])
PY
)
create() { # name v4-subnet v6-subnet
    podman network exists "$1" && return
    podman network create --internal --ipv6 --label sipguard.molecule=1 \
        --subnet "$2" --subnet "$3" "$1" >/dev/null
    echo "networks: $1 $2"
}
create "sipguard-mol-$scenario-wan" "$wan4" "$wan6"
create "sipguard-mol-$scenario-lan" "$lan4" "$lan6"
