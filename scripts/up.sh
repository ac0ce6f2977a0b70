#!/usr/bin/env bash
# Set up hybridvoice in a virtualenv on a fresh Debian machine and run its main job.
# Today the main job is the SIP core on the wire: a SIP responder on loopback that a
# `hybridvoice sip options` ping reaches; `hybridvoice up` replaces it when the roles land.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || $python -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
hv=.venv/bin/hybridvoice
port=${HV_PORT:-5060}
$hv --help
$hv sip serve --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 50); do
    $hv sip options "sip:127.0.0.1:$port" --timeout 0.2 >/dev/null 2>&1 && break
    sleep 0.1
done
$hv sip options "sip:127.0.0.1:$port"
$hv sip options "sip:127.0.0.1:$port;transport=tcp"
echo "hybridvoice is answering SIP on 127.0.0.1:$port (UDP and TCP); Ctrl-C stops it."
wait $server
