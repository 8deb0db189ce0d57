#!/usr/bin/env bash
# Create or update the project's virtual environment in .venv/ (idempotent, offline-friendly).
# torch is pinned to 2.13.0 (the CPU wheel on this machine); install it first so nothing
# pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
stamp=".venv/.p2p-installed-$extras"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
fi
