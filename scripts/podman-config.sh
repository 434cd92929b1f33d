#!/bin/bash
# Make sure podman can start the lab image with systemd as PID 1.
#
# On some kernels (this project's CI machines among them) raising RLIMIT_NPROC
# is forbidden and crun rejects hybrid cgroups, so `podman run` fails with
# "error setting rlimits". Only then do we add a drop-in that selects runc and
# sets ulimits podman can honour; an existing containers.conf is left as it is.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/image-name.sh
source "$here/image-name.sh"
image="$(sipguard_image_name)"
dropin=/etc/containers/containers.conf.d/50-sipguard.conf

probe() { podman run --rm --network none "$image" /bin/true >/dev/null 2>&1; }

if probe; then
    echo "podman-config: podman runs containers as configured"
    exit 0
fi
echo "podman-config: podman cannot start a container as configured; writing $dropin"
mkdir -p "$(dirname "$dropin")"
cat > "$dropin" <<'CONF'
# Written by sipguard's scripts/podman-config.sh because `podman run` failed
# with the default settings (see docs/development.md). Delete to undo.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
if ! probe; then
    echo "podman-config: podman still cannot start $image:" >&2
    podman run --rm --network none "$image" /bin/true >&2 || true
    exit 1
fi
echo "podman-config: ok"
