#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run the whole suite:
# Debian packages (real peers: SIPp, sipsak, baresip, tshark, openssl, coturn, BIND), a virtualenv with the
# project and its dev tools, the static checks (ruff, mypy strict, import contracts), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(sip-tester sipsak baresip tshark openssl coturn iproute2 bind9 bind9-utils etcd-server sngrep chromium chromium-driver)
if command -v apt-get >/dev/null 2>&1; then
    missing=()
    for pkg in "${debs[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "== installing Debian packages: ${missing[*]}"
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($python --version)"
    $python -m venv .venv
fi
echo "== installing hybridvoice with its dev tools into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

echo "== ruff";          .venv/bin/ruff check src tests benchmarks
echo "== mypy --strict"; .venv/bin/mypy
echo "== import contracts"; .venv/bin/lint-imports
# Most of the suite's time is waiting (real programs starting, real-time SIP timers), not CPU:
# pytest-xdist runs it in parallel, in two phases (docs/dev/TESTING.md):
#   1. the unit and role tests (CPU-bound): twice as many workers as cores, 4 to 8;
#   2. the tests with real programs and real-time SIP (-m "interop or live"): one worker a core
#      (at least 2), so that no CPU-bound test starves their timers;
#   3. the SIPp load runs (-m load), in one process, with nothing else of ours running.
# Phases 2 and 3 list their slowest tests (--durations): the xdist groups run their tests one
# after another on one worker, so a group's sum is the floor of its phase's time.
# Tests that must not overlap carry an xdist_group mark (--dist loadgroup: one worker a group).
# HV_TEST_WORKERS=N sets the first phase's workers (0: no xdist). Arguments (a file, -k ...)
# run those tests once, with the first phase's workers.
cores=$(nproc 2>/dev/null || echo 2)
workers=${HV_TEST_WORKERS:-$(( cores * 2 < 4 ? 4 : (cores * 2 > 8 ? 8 : cores * 2) ))}
live_workers=$(( workers == 0 ? 0 : (cores < 2 ? 2 : (cores > workers ? workers : cores)) ))
if [ $# -gt 0 ]; then
    echo "== pytest ($workers workers)"
    .venv/bin/pytest -q -n "$workers" --dist loadgroup "$@"
    exit
fi
status=0
echo "== pytest: unit and role tests ($workers workers)"
.venv/bin/pytest -q -n "$workers" --dist loadgroup -m "not interop and not live" || status=$?
echo "== pytest: real programs and real-time SIP ($live_workers workers)"
.venv/bin/pytest -q -n "$live_workers" --dist loadgroup -m "(interop or live) and not load" \
    --durations=20 || status=$?
echo "== pytest: SIPp load runs (alone)"
.venv/bin/pytest -q -m load --durations=10 || status=$?
exit $status
