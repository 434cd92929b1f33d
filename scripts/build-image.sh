#!/bin/bash
# Build the lab/test container image without a registry:
# debootstrap Debian 12 -> tar -> `podman import`.
#
# The image is tagged with a hash of its recipe (this script and the package
# list), so it is rebuilt only when the recipe changes. Set SIPGUARD_IMAGE to
# use an image of your own instead (nothing is built then).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source=scripts/image-name.sh
source "$here/image-name.sh"

image="$(sipguard_image_name)"
if [[ -n "${SIPGUARD_IMAGE:-}" ]]; then
    echo "build-image: using SIPGUARD_IMAGE=$image (not building)"
    podman image exists "$image" || { echo "build-image: image $image is not present; pull or import it first" >&2; exit 1; }
    exit 0
fi

if podman image exists "$image"; then
    # `:latest` always names the image of the checked-out recipe.
    podman tag "$image" "${image%%:*}:latest"
    echo "build-image: $image is cached"
    exit 0
fi

mirror="${SIPGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="$(grep -v '^#' "$here/image-packages.txt" | grep -v '^$' | paste -sd, -)"
work="$(mktemp -d /var/tmp/sipguard-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "build-image: debootstrap bookworm ($packages) - takes a few minutes"
debootstrap --variant=minbase --include="$packages" bookworm "$work/root" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# Trim what a test container never uses, and make systemd happy as PID 1.
chroot "$work/root" apt-get clean
rm -rf "$work/root"/var/lib/apt/lists/* "$work/root"/usr/share/doc/* "$work/root"/usr/share/man/*
: > "$work/root/etc/machine-id"
# Units that fail or hang without real hardware in a container.
for unit in systemd-udevd.service systemd-udev-trigger.service getty@tty1.service \
            systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$work/root/etc/systemd/system/$unit"
done

echo "build-image: importing as $image"
tar -C "$work/root" -c . | podman import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=podman' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    - "$image" >/dev/null
podman tag "$image" "${image%%:*}:latest"
echo "build-image: done ($(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
