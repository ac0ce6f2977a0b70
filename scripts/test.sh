#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run the whole suite:
# Debian packages (real peers: SIPp, sipsak, baresip, tshark, openssl, coturn, BIND), a virtualenv with the
# project and its dev tools, the static checks (ruff, mypy strict, import contracts), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(sip-tester sipsak baresip tshark openssl coturn iproute2 bind9 bind9-utils etcd-server)
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
echo "== pytest";        .venv/bin/pytest -q "$@"
