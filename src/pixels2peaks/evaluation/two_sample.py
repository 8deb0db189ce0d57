"""Classifier two-sample test (Lopez-Paz & Oquab 2017, *Revisiting classifier two-sample tests*,
ICLR): can a small CNN tell two sets of heightmap tiles apart?

The tiles of both sets are labelled 0 and 1, split into ``folds`` stratified folds, and for each
fold a CNN is trained on the others and scored on it. The result is the cross-validated
accuracy: about 0.5 when the sets cannot be told apart, 1 when they always can.

Input normalisation: each tile minus its mean, divided by ``dx`` times the pooled standard
deviation of the cell slopes of both sets, so the network sees slopes, roughness and relief
(the differences that matter) but not the absolute elevation or the cell size. Channels: the
normalised heights and their two finite differences. Deterministic for a given ``seed`` on one
machine (CPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pixels2peaks.errors import InputError

__all__ = ["C2STConfig", "two_sample_accuracy"]


@dataclass(frozen=True)
class C2STConfig:
    """``crop_cells``: tiles are centre-cropped (and larger ones split) to this size;
    ``folds``; ``epochs`` of Adam at ``lr`` with ``batch`` tiles; ``width``: channels of the
    first convolution; ``max_tiles``: per set, at most this many tiles are used."""

    crop_cells: int = 64
    folds: int = 5
    epochs: int = 20
    lr: float = 2e-3
    batch: int = 16
    width: int = 16
    max_tiles: int = 256
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _features(x: np.ndarray, scale: float) -> torch.Tensor:
    z = (x - x.mean(axis=(1, 2), keepdims=True)) / scale
    gy = np.diff(z, axis=1, append=z[:, -1:, :])
    gx = np.diff(z, axis=2, append=z[:, :, -1:])
    f = np.stack([z / max(z.shape[1], 1), gy, gx], axis=1)
    return torch.from_numpy(np.clip(f, -20, 20).astype(np.float32))


def _net(width: int) -> nn.Module:
    w = int(width)
    return nn.Sequential(
        nn.Conv2d(3, w, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 1),
    )


def two_sample_accuracy(a: np.ndarray, b: np.ndarray, dx_m: float, cfg: C2STConfig = C2STConfig()) -> float:
    """Cross-validated accuracy of a CNN telling tiles ``a`` from tiles ``b`` (``(N, H, W)``
    metres, the same ``dx_m``); see the module docstring."""
    if cfg.folds < 2 or cfg.epochs < 1 or cfg.crop_cells < 8:
        raise InputError("the two-sample test needs folds >= 2, epochs >= 1 and crop_cells >= 8")
    from pixels2peaks.evaluation.realism import crop_tiles

    rng = np.random.default_rng(cfg.seed)
    sets = []
    for s in (a, b):
        c = crop_tiles(np.asarray(s), cfg.crop_cells)
        if len(c) > cfg.max_tiles:
            c = c[np.sort(rng.choice(len(c), cfg.max_tiles, replace=False))]
        sets.append(c)
    n = min(len(s) for s in sets)
    if n < cfg.folds:
        raise InputError(f"the two-sample test needs at least {cfg.folds} crops of {cfg.crop_cells}^2 per set, got {n}")
    sets = [s[rng.permutation(len(s))[:n]] for s in sets]  # balanced classes: chance is 0.5
    x = np.concatenate(sets)
    if not np.isfinite(x).all():
        raise InputError("the two-sample test needs finite tiles")
    g = np.concatenate([np.abs(np.diff(x, axis=1)).ravel(), np.abs(np.diff(x, axis=2)).ravel()])
    scale = max(float(np.sqrt(np.mean(g**2))), 1e-9)
    feats = _features(x, scale)
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    fold = np.concatenate([rng.permutation(n) % cfg.folds, rng.permutation(n) % cfg.folds])
    correct = 0
    gen = torch.Generator().manual_seed(cfg.seed)
    for f in range(cfg.folds):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        torch.manual_seed(cfg.seed * 1000 + f)
        net = _net(cfg.width)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        loss_fn = nn.BCEWithLogitsLoss()
        for _ in range(cfg.epochs):
            perm = tr[torch.randperm(len(tr), generator=gen).numpy()]
            for i in range(0, len(perm), cfg.batch):
                idx = torch.from_numpy(perm[i : i + cfg.batch])
                opt.zero_grad()
                loss = loss_fn(net(feats[idx])[:, 0], y[idx])
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = net(feats[torch.from_numpy(te)])[:, 0] > 0
        correct += int((pred.float() == y[torch.from_numpy(te)]).sum())
    return correct / float(2 * n)
