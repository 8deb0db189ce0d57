"""Hillshades of unconditional 256² samples of the shipped prior at every trained dx level, for
docs/model-card.md: ``.venv/bin/python scripts/model_card_grid.py [-o docs/model-card-grid.png]``.

One row per dx (30, 60, 120, 960, 1920 m): ``-n`` real training tiles of that dx (``--data``, a
``p2p dataset build`` folder, seed 0; skipped when missing), ``-n`` raw samples (DDIM, 30
log-SNR steps, seed 0), then the same samples after the default fluvial polish (``p2p sample``'s
output).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pixels2peaks.diffusion.model import load_default_model
from pixels2peaks.evaluation.unconditional import FLUVIAL_POLISH, sample_heightmaps
from pixels2peaks.training.viz import save_grid

DX_M = (30.0, 60.0, 120.0, 960.0, 1920.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="docs/model-card-grid.png")
    ap.add_argument("-n", type=int, default=4, help="samples per dx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="runs/data/prior_v1", help="dataset folder for the real tiles")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_default_model()
    real = {}
    if (Path(a.data) / "manifest.json").is_file():
        from pixels2peaks.evaluation.realism import load_split_tiles

        real = load_split_tiles(a.data, "train")
        if any(len(real.get(dx, ())) < a.n for dx in DX_M):
            print(f"{a.data} lacks tiles at some dx: no real tiles in the grid")
            real = {}
    else:
        print(f"{a.data} not found: no real tiles in the grid")
    cols = 2 * a.n + (a.n if real else 0)
    tiles, dxs, labels = [], [], []
    for dx in DX_M:
        if real:
            pick = np.random.default_rng(0).choice(len(real[dx]), a.n, replace=False)
            tiles += [real[dx][i].astype(np.float64) for i in pick]
            dxs += [dx] * a.n
            labels += [f"real {dx:g} m"] * a.n
        for polish, name in ((None, "raw"), (FLUVIAL_POLISH, "polished")):
            tiles += list(sample_heightmaps(model, a.n, 256, dx, steps=30, seed=0, polish=polish))
            dxs += [dx] * a.n
            labels += [f"{name} {dx:g} m"] * a.n
    print(save_grid(tiles, dxs, a.out, ncols=cols, labels=labels))


if __name__ == "__main__":
    main()
