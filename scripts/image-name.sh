# shellcheck shell=bash
# The one place that names the lab/test image. Sourced by the scripts; the
# Molecule scenarios and the lab inventory read SIPGUARD_IMAGE from the
# environment that ./run exports.
sipguard_image_name() {
    if [[ -n "${SIPGUARD_IMAGE:-}" ]]; then
        echo "$SIPGUARD_IMAGE"
        return
    fi
    local dir key
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    key="$(cat "$dir/build-image.sh" "$dir/image-packages.txt" | sha256sum | cut -c1-12)"
    echo "localhost/sipguard-lab:$key"
}

# The image of another Debian release (scripts/build-suite-image.sh SUITE
# [--iptables MODE]): localhost/sipguard-lab-SUITE[-MODE]:<key>, the key a hash
# of only what that build uses. The mode is in the name so that each variant
# has its own :latest (bullseye is built both ways).
sipguard_suite_image_name() { # suite [iptables-mode]
    local dir key
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    key="$( (cat "$dir/build-suite-image.sh" "$dir/image-packages-$1.txt"; echo "iptables=${2:-}") | sha256sum | cut -c1-12)"
    echo "localhost/sipguard-lab-$1${2:+-$2}:$key"
}
