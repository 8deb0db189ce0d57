"""Hillshades of unconditional 256² samples of the shipped prior at every trained dx level, for
docs/model-card.md: ``.venv/bin/python scripts/model_card_grid.py [-o docs/model-card-grid.png]``.

One row per dx (30, 60, 120, 960, 1920 m): ``-n`` raw samples (DDIM, 30 log-SNR steps, seed 0),
then the same samples after the default fluvial polish (``p2p sample``'s output).
"""

from __future__ import annotations

import argparse

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
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_default_model()
    tiles, dxs, labels = [], [], []
    for dx in DX_M:
        for polish, name in ((None, "raw"), (FLUVIAL_POLISH, "polished")):
            tiles += list(sample_heightmaps(model, a.n, 256, dx, steps=30, seed=0, polish=polish))
            dxs += [dx] * a.n
            labels += [f"{name} {dx:g} m"] * a.n
    print(save_grid(tiles, dxs, a.out, ncols=2 * a.n, labels=labels))


if __name__ == "__main__":
    main()
