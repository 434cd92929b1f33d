#!/bin/bash
# Install what the benchmarks need beyond the test suite: Kamailio 5.6 from
# Debian, the reference server bench/responder_vs_kamailio.py measures against.
# The bench starts its own Kamailio in a network namespace, so the packaged
# service is stopped and disabled: a softswitch box must not grow a second SIP
# server on port 5060 because somebody ran a benchmark.
set -euo pipefail

if dpkg-query -W -f='${Status}' kamailio 2>/dev/null | grep -q "install ok installed"; then
    echo "bootstrap-bench: kamailio present"
else
    echo "bootstrap-bench: installing kamailio"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends kamailio >/dev/null
fi
systemctl disable --now kamailio >/dev/null 2>&1 || true
