#!/usr/bin/env bash
# Set up .venv (if needed) and run the main job offline on the bundled example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
out="${1:-out/example}"
mkdir -p "$out"
.venv/bin/p2p analyze examples/alps_globe_256.tif
.venv/bin/p2p hydro breach examples/alps_globe_256.tif -o "$out/breached.tif" --depressions "$out/depressions.png" --overwrite
echo "wrote $out/breached.tif and $out/depressions.png"
