"""In-memory tile set for training: random dx level, random crop, 8 rotations/flips, normalization."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pixels2peaks.errors import InputError


def read_manifest(data_dir: str | Path) -> dict:
    p = Path(data_dir) / "manifest.json"
    if not p.is_file():
        raise InputError(f"no dataset manifest at {p}; build one with `p2p dataset build SOURCE... -o DIR`")
    try:
        return json.loads(p.read_text())
    except ValueError as exc:
        raise InputError(f"bad dataset manifest {p}: {exc}") from None


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 rotations/flips (k in 0..7) of the last two axes."""
    if k >= 4:
        a = a[..., ::-1]
    return np.rot90(a, k % 4, axes=(-2, -1))


class TileSet:
    """All tiles of one split, grouped by dx level."""

    def __init__(self, data_dir: str | Path, split: str = "train"):
        self.data_dir = Path(data_dir)
        manifest = read_manifest(self.data_dir)
        by_dx: dict[float, list[np.ndarray]] = defaultdict(list)
        for rel in manifest.get("shards", []):
            if not rel.startswith(split + "/"):
                continue
            with np.load(self.data_dir / rel) as f:
                z, dx = f["z"], f["dx_m"]
            for d in np.unique(dx):
                by_dx[float(d)].append(z[dx == d])
        self.levels = sorted(by_dx)
        self.tiles = {d: np.concatenate(by_dx[d]).astype(np.float32) for d in self.levels}
        self.manifest = manifest

    def __len__(self) -> int:
        return sum(len(v) for v in self.tiles.values())

    def counts(self) -> dict[float, int]:
        return {d: len(self.tiles[d]) for d in self.levels}

    def level_probs(self, power: float) -> np.ndarray:
        n = np.array([len(self.tiles[d]) for d in self.levels], dtype=np.float64)
        w = n**power
        return w / w.sum()

    def batch(
        self,
        rng: np.random.Generator,
        batch_size: int,
        crop: int,
        slope_scale: Callable[[float], float],
        *,
        level_power: float = 0.5,
        jitter: float = 0.5,
        augment: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0 (B,1,crop,crop) normalized, dx_m (B,))``.

        Normalization: ``(z - z_ref) / (s(dx) * dx)`` with ``s = slope_scale(dx)`` (e.g.
        ``PriorConfig.slope_scale_at``) and ``z_ref = crop mean + jitter * crop std * N(0,1)``.
        """
        if not self.levels:
            raise InputError(f"dataset {self.data_dir} holds no tiles")
        probs = self.level_probs(level_power)
        xs = np.empty((batch_size, 1, crop, crop), dtype=np.float32)
        dxs = np.empty(batch_size, dtype=np.float32)
        for i in range(batch_size):
            d = self.levels[rng.choice(len(self.levels), p=probs)]
            tiles = self.tiles[d]
            t = tiles[rng.integers(len(tiles))]
            h, w = t.shape
            if h < crop or w < crop:
                raise InputError(f"tiles are {h}x{w}, smaller than crop_cells={crop}")
            r, c = rng.integers(h - crop + 1), rng.integers(w - crop + 1)
            z = t[r : r + crop, c : c + crop].astype(np.float64)
            if augment:
                z = dihedral(z, int(rng.integers(8)))
            z_ref = z.mean() + jitter * z.std() * rng.standard_normal()
            xs[i, 0] = (z - z_ref) / (slope_scale(d) * d)
            dxs[i] = d
        return torch.from_numpy(xs), torch.from_numpy(dxs)
