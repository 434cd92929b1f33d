#!/bin/bash
# Install what sipguard needs on the controller/test machine (Debian 12, root):
# podman + runc, the firewall tools, debootstrap, and the real SIP peers the
# tests use. Quick when everything is already there.
set -euo pipefail

PACKAGES=(
    # containers: rootful podman with runc, netavark networking
    podman runc netavark aardvark-dns
    # the firewall layer's tools (used inside network namespaces and containers only)
    iptables ipset conntrack iproute2
    # the lab image is built from Debian's archive, no registry needed
    debootstrap
    # real SIP peers and a real DNS server for the tests
    sipvicious sipsak sip-tester baresip-core dnsmasq-base
    # a real browser for the audit report's test (headless)
    chromium
    # the venv
    python3-venv python3-pip
    # the fleet benchmark and its drift test reach their hosts over SSH, as a real fleet is reached
    openssh-client
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "bootstrap-host: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "bootstrap-host: host packages present"
fi
