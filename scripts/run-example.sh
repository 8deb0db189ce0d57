#!/usr/bin/env bash
# Set up .venv (if needed) and run the main job offline on the bundled example photo:
# photo -> complete 1024 x 1024 heightmap + previews in out/example/ (see docs/run.md).
# Stages are cached (~/.cache/pixels2peaks or $P2P_CACHE_DIR): a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
out="${1:-out/example}"
mkdir -p "$(dirname "$out")"  # p2p run creates $out itself but refuses a missing parent
.venv/bin/p2p run examples/alps_photo.jpg -o "$out" --overwrite
# DEM tools on the bundled GLOBE DEM (a few seconds)
mkdir -p "$out/dem"
.venv/bin/p2p analyze examples/alps_globe_256.tif
.venv/bin/p2p hydro breach examples/alps_globe_256.tif -o "$out/dem/breached.tif" \
    --depressions "$out/dem/depressions.png" --overwrite
echo "wrote $out/ (heightmap.tif, heightmap.png, previews, report.json) and $out/dem/"
