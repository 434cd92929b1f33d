#!/bin/bash
# Build a lab/test image of another Debian release than the default one:
#
#   scripts/build-suite-image.sh SUITE [--iptables legacy|nft]
#
# debootstrap SUITE with the packages of scripts/image-packages-SUITE.txt ->
# tar -> `podman import`, tagged localhost/sipguard-lab-SUITE:<hash of this
# script and that list> and :latest. `--iptables legacy` switches the
# iptables/ip6tables alternatives to the legacy (x_tables) backend, as on a
# CentOS 7 host. A SUITE with a suffix (bookworm-kamailio, bullseye-asterisk)
# debootstraps the release before the dash with that list: the images of the
# product backends' scenarios. The default Debian 12 image stays with scripts/build-image.sh,
# so its recipe, hash and contents do not change with this script.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/image-name.sh
source "$here/image-name.sh"

suite="${1:-}"
shift || true
iptables_mode=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --iptables) iptables_mode="${2:-}"; shift 2 ;;
        *) echo "build-suite-image: unknown option $1" >&2; exit 2 ;;
    esac
done
list="$here/image-packages-$suite.txt"
[[ -n "$suite" && -f "$list" ]] || { echo "usage: $0 SUITE [--iptables legacy|nft] (needs scripts/image-packages-SUITE.txt)" >&2; exit 2; }
[[ -z "$iptables_mode" || "$iptables_mode" == legacy || "$iptables_mode" == nft ]] \
    || { echo "build-suite-image: --iptables takes legacy or nft" >&2; exit 2; }

image="$(sipguard_suite_image_name "$suite" "$iptables_mode")"
if podman image exists "$image"; then
    podman tag "$image" "${image%%:*}:latest"
    echo "build-suite-image: $image is cached"
    exit 0
fi

mirror="${SIPGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="$(grep -v '^#' "$list" | grep -v '^$' | paste -sd, -)"
work="$(mktemp -d /var/tmp/sipguard-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "build-suite-image: debootstrap ${suite%%-*} ($packages) - takes a few minutes"
debootstrap --variant=minbase --include="$packages" "${suite%%-*}" "$work/root" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

if [[ -n "$iptables_mode" ]]; then
    for tool in iptables ip6tables; do
        chroot "$work/root" update-alternatives --set "$tool" "/usr/sbin/$tool-$iptables_mode" >/dev/null
    done
fi
# The same trimming and systemd preparation as the default image.
chroot "$work/root" apt-get clean
rm -rf "$work/root"/var/lib/apt/lists/* "$work/root"/usr/share/doc/* "$work/root"/usr/share/man/*
: > "$work/root/etc/machine-id"
for unit in systemd-udevd.service systemd-udev-trigger.service getty@tty1.service \
            systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$work/root/etc/systemd/system/$unit"
done

echo "build-suite-image: importing as $image"
tar -C "$work/root" -c . | podman import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=podman' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    - "$image" >/dev/null
podman tag "$image" "${image%%:*}:latest"
echo "build-suite-image: done ($(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
