"""Hillshaded sample grids and loss curves (PNG) for training runs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def save_grid(tiles: list[np.ndarray], dxs: list[float], path: str | Path, ncols: int = 4,
              labels: list[str] | None = None) -> Path:
    """Hillshade every heightmap (metres) and tile them into one greyscale PNG (2 px gaps).

    Vertical exaggeration is ``sqrt(dx / 30 m)`` (x5.7 at 960 m), the same for real and generated tiles.
    """
    from PIL import Image, ImageDraw

    # vertical exaggeration sqrt(dx / 30 m): coarse cells have small slopes and would look flat
    from pixels2peaks.terrain.attributes import hillshade

    imgs = [(np.asarray(hillshade(np.asarray(z, np.float64) * max(1.0, (dx / 30.0) ** 0.5), dx)) * 255).astype(np.uint8)
            for z, dx in zip(tiles, dxs)]
    h = max(i.shape[0] for i in imgs)
    w = max(i.shape[1] for i in imgs)
    ncols = min(ncols, len(imgs))
    nrows = (len(imgs) + ncols - 1) // ncols
    canvas = np.full((nrows * (h + 2), ncols * (w + 2)), 255, np.uint8)
    for k, im in enumerate(imgs):
        r, c = divmod(k, ncols)
        canvas[r * (h + 2) : r * (h + 2) + im.shape[0], c * (w + 2) : c * (w + 2) + im.shape[1]] = im
    pil = Image.fromarray(canvas)
    if labels:
        d = ImageDraw.Draw(pil)
        for k, lab in enumerate(labels):
            r, c = divmod(k, ncols)
            d.text((c * (w + 2) + 3, r * (h + 2) + 2), lab, fill=255)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pil.save(p)
    return p


def plot_loss(csv_path: str | Path, png_path: str | Path) -> Path | None:
    """Loss (and validation loss) vs step from the run's ``loss.csv``; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    steps, loss, vsteps, vloss = [], [], [], []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            s = int(row["step"])
            if row.get("loss"):
                steps.append(s)
                loss.append(float(row["loss"]))
            if row.get("val_loss"):
                vsteps.append(s)
                vloss.append(float(row["val_loss"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    if loss:
        ax.plot(steps, loss, lw=0.8, label="train (mean over log interval)")
        if len(loss) >= 10:
            k = max(5, len(loss) // 20)
            sm = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], sm, lw=1.5, label=f"train ({k}-point mean)")
    if vloss:
        ax.plot(vsteps, vloss, "o-", ms=3, label="val (EMA, held-out regions)")
    ax.set_xlabel("step")
    ax.set_ylabel("v-prediction MSE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)
