#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
exec .venv/bin/python -m pytest "$@"
