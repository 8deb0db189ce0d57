#!/usr/bin/env bash
# Install Debian's headless browser for the studio's browser test (tests/test_studio_browser.py):
# chromium + chromium-driver. Idempotent; needs root (or sudo) and the Debian mirrors.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup-browser: need root or sudo to apt-get install chromium" >&2; exit 1; }
    as_root=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q >/dev/null
"${as_root[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null
echo "setup-browser: installed $(chromium --version 2>/dev/null || echo chromium)"
