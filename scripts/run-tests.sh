#!/usr/bin/env bash
# Set up .venv (if needed) and Debian's chromium (the studio's browser test), then run the whole
# test suite. Used by .ci/run. Without root the browser tests are skipped (CI requires them:
# P2P_REQUIRE_BROWSER=1 in .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/setup-browser.sh || echo "warning: chromium not installed: the browser tests will be skipped" >&2
exec .venv/bin/python -m pytest "$@"
