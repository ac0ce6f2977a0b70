#!/usr/bin/env bash
# Set up hybridvoice in a virtualenv on a fresh Debian machine and run its main job:
# `hybridvoice up` on embedded defaults (the online service, one appliance with every role
# and a lab gateway, all on loopback), checked with one `hybridvoice test-call`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || $python -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
hv=.venv/bin/hybridvoice
$hv up &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 100); do
    $hv appliance status --json >/dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || { wait $server; exit 1; }
    sleep 0.1
done
$hv test-call --from alice --to +15550199
echo "hybridvoice is up; Ctrl-C stops it."
wait $server
