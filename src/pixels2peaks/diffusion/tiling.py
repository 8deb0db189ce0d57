"""2-D SpotDiffusion tiling (paper §5.4; Frolov et al. 2025): a tile denoiser -> a denoiser over a
whole heightmap of any size.

At every call the heightmap is cut into **contiguous, non-overlapping** tiles of ``tile_cells``
whose grid is translated by a random offset ``(oy, ox)`` in ``[0, tile)`` (drawn from a seeded
generator, a new one per call = per denoising step), so tile boundaries never stay in place and
seams of one step are denoised away by the next ones. Each tile is denoised independently; tiles
of equal shape are batched through the U-Net (``max_batch`` at a time).

Borders / any size: the heightmap is reflect-padded. A tile cut short by the map border (the
first and last tile of a row or column, or a map smaller than a tile) is extended *outwards* into
the padding to at least ``min_edge_cells`` and to a multiple of the U-Net's downsampling factor,
instead of always running a full tile: a 512-cell axis with a random offset costs 512-640 cells of
U-Net work instead of 768. Only cells inside the heightmap are kept.

Overlap (``overlap_cells`` = ``o``, ours; 0 = the paper's contiguous tiles): each tile's U-Net
input reaches ``o`` cells past its kept range on every side, and the tiles' outputs are blended
with weights that fall linearly from 1 to 0 across the ``2 o`` cells that two neighbours share
(they sum to 1 there; MultiDiffusion, Bar-Tal et al. 2023). Without it, the random shifts
disperse the seams of the noisy steps, but the seam left by each of the last, nearly noise-free
steps stays: a faint grid at the tile pitch, at offsets fixed by the seed (issue
[hidden-terrain]). ``o = 16`` costs ``(1 + 2 o / tile)^2 = 1.27`` times the U-Net work of
256-cell tiles.

Guidance must wrap the tiled denoiser, not the tiles (``guided(SpotTiledDenoiser(...))``): the
hydrological loss needs the whole map (a tile-wise breach would drain every tile to its own
border, the disconnected flow paths the paper warns about in §7.3), and the geomorphological
statistics are global means over known/unknown cells. The tiled denoiser is differentiable (pad,
crop and concatenation only), so "unet" gradient guidance backpropagates through it; with
``checkpoint=True`` each tile batch is recomputed during the backward pass instead of keeping all
tiles' activations (memory of one batch instead of the whole map).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as _checkpoint

from pixels2peaks.diffusion.sampling import Profiler, section
from pixels2peaks.errors import InputError

__all__ = ["SpotTiledDenoiser", "tile_segments", "reflect_pad", "blend_weights"]


def tile_segments(
    n: int, offset: int, tile: int, multiple: int, min_edge: int
) -> list[tuple[int, int, int, int]]:
    """Cut ``[0, n)`` at ``offset + k * tile``; returns ``(a, b, ta, tb)`` per segment: the kept
    map range ``[a, b)`` and the (possibly larger) tile range ``[ta, tb)`` fed to the U-Net
    (``ta < 0`` or ``tb > n`` reach into the padding). Tile lengths are multiples of
    ``multiple``, at most ``max(tile, ...)`` and at least ``min(tile, min_edge)``."""
    if n < 1:
        raise InputError(f"cannot tile an axis of {n} cells")
    cuts = [0] + [c for c in range(offset % tile, n, tile) if c > 0] + [n]
    out = []
    for a, b in zip(cuts, cuts[1:]):
        length = b - a
        lt = max(math.ceil(length / multiple) * multiple, min(min_edge, tile))
        lt = max(lt, length)
        if lt == length:
            out.append((a, b, a, b))
        elif a == 0 and b < n:  # first segment of several: extend into the leading padding
            out.append((a, b, b - lt, b))
        else:  # last segment, or the only one: extend into the trailing padding
            out.append((a, b, a, a + lt))
    return out


def reflect_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Reflect-pad the last two dims by ``p`` on every side, repeating the reflection when ``p``
    is not smaller than the map (torch's reflect needs ``pad < dim``)."""
    while p > 0:
        h, w = x.shape[-2:]
        step = min(p, h - 1, w - 1)
        if step <= 0:
            return F.pad(x, (p, p, p, p), mode="replicate")
        x = F.pad(x, (step, step, step, step), mode="reflect")
        p -= step
    return x


def blend_weights(a: int, b: int, start: int, stop: int, overlap: int) -> torch.Tensor:
    """1-D blending weights over the map cells ``[start, stop)`` of a tile whose kept range is
    ``[a, b)``: 1 inside ``[a + o, b - o)``, falling linearly to 0 at ``a - o`` and ``b + o``
    (``0.5`` at the cut itself), so that two neighbours sharing a cut sum to 1 over their
    ``2 o`` shared cells. ``overlap = 0``: the indicator of ``[a, b)``."""
    x = torch.arange(start, stop, dtype=torch.float32) + 0.5
    if overlap <= 0:
        return ((x > a) & (x < b)).to(torch.float32)
    up = (x - (a - overlap)) / (2.0 * overlap)
    down = ((b + overlap) - x) / (2.0 * overlap)
    return torch.minimum(up, down).clamp(0.0, 1.0)


class SpotTiledDenoiser:
    """Whole-heightmap denoiser ``(x_t, t) -> (eps, x0)`` built from ``tile_denoiser`` (e.g. a
    :class:`~pixels2peaks.diffusion.sampling.ModelDenoiser`) by 2-D SpotDiffusion tiling.

    ``shift="random"`` (default) draws a new grid offset per call from ``numpy`` ``default_rng
    (seed)``; ``"none"`` keeps the grid fixed (for comparisons). ``last_layout`` holds the offsets
    and the internal cut positions of the most recent call (used by seam tests).
    """

    def __init__(
        self,
        tile_denoiser: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
        tile_cells: int = 256,
        *,
        seed: int | np.random.Generator = 0,
        shift: str = "random",
        min_edge_cells: int = 64,
        multiple: int | None = None,
        max_batch: int = 4,
        overlap_cells: int = 0,
        checkpoint: bool = True,
        profiler: Profiler | None = None,
    ) -> None:
        self.inner = tile_denoiser
        self.alphas_cumprod = tile_denoiser.alphas_cumprod
        self.multiple = int(multiple or getattr(tile_denoiser, "downsample_factor", 1))
        self.tile = int(tile_cells)
        if self.tile < self.multiple or self.tile % self.multiple:
            raise InputError(f"tile size must be a positive multiple of {self.multiple}, got {tile_cells}")
        if shift not in ("random", "none"):
            raise InputError(f"shift must be 'random' or 'none', got {shift!r}")
        if max_batch < 1:
            raise InputError(f"max_batch must be >= 1, got {max_batch}")
        self.overlap = int(overlap_cells)
        if self.overlap < 0 or (2 * self.overlap) % self.multiple or 2 * self.overlap >= self.tile:
            raise InputError(
                f"tile overlap must be >= 0, below half the tile ({self.tile}) and 2 x overlap a multiple of "
                f"{self.multiple}, got {overlap_cells}"
            )
        self.shift = shift
        self.min_edge = max(int(min_edge_cells), self.multiple)
        self.max_batch = int(max_batch)
        self.checkpoint = bool(checkpoint)
        self.profiler = profiler
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))
        self.last_layout: dict | None = None
        self.calls = 0

    def _offsets(self) -> tuple[int, int]:
        if self.shift == "none":
            return 0, 0
        oy, ox = self.rng.integers(0, self.tile, size=2)
        return int(oy), int(ox)

    def _run(self, batch: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.checkpoint and torch.is_grad_enabled() and batch.requires_grad:
            return _checkpoint(self.inner, batch, t, use_reentrant=False)
        return self.inner(batch, t)

    def __call__(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        if x_t.ndim != 4 or x_t.shape[1] != 1:
            raise InputError(f"expected a (B, 1, H, W) tensor, got shape {tuple(x_t.shape)}")
        B, _, H, W = x_t.shape
        self.calls += 1
        with section(self.profiler, "tiling"):
            oy, ox = self._offsets()
            rows = tile_segments(H, oy, self.tile, self.multiple, self.min_edge)
            cols = tile_segments(W, ox, self.tile, self.multiple, self.min_edge)
            o = self.overlap
            pad = o + max(max(a - ta, tb - b) for segs in (rows, cols) for a, b, ta, tb in segs)
            canvas = reflect_pad(x_t, pad) if pad else x_t
            # group tiles by input shape, batch them through the inner denoiser
            groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
            for i, (_, _, ta, tb) in enumerate(rows):
                for j, (_, _, ua, ub) in enumerate(cols):
                    groups.setdefault((tb - ta + 2 * o, ub - ua + 2 * o), []).append((i, j))
            results: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
            per_chunk = max(1, self.max_batch // B)
            for members in groups.values():
                for k in range(0, len(members), per_chunk):
                    chunk = members[k : k + per_chunk]
                    tiles = [
                        canvas[..., rows[i][2] - o + pad : rows[i][3] + o + pad,
                               cols[j][2] - o + pad : cols[j][3] + o + pad]
                        for i, j in chunk
                    ]
                    eps, x0 = self._run(torch.cat(tiles, 0), t)
                    for n, (i, j) in enumerate(chunk):
                        results[(i, j)] = (eps[n * B : (n + 1) * B], x0[n * B : (n + 1) * B])
            out = self._assemble(results, rows, cols, H, W) if o else self._concat(results, rows, cols)
            self.last_layout = {
                "offsets": (oy, ox),
                "row_cuts": [a for a, _, _, _ in rows[1:]],
                "col_cuts": [c for c, _, _, _ in cols[1:]],
                "tiles": len(rows) * len(cols),
                "cells": sum((tb - ta + 2 * o) for _, _, ta, tb in rows) * sum((ub - ua + 2 * o) for _, _, ua, ub in cols),
            }
        return out[0], out[1]

    @staticmethod
    def _concat(results, rows, cols) -> list[torch.Tensor]:
        """Contiguous tiles: crop each to its kept range and concatenate (differentiable)."""
        out = []
        for which in (0, 1):
            row_parts = []
            for i, (a, b, ta, _) in enumerate(rows):
                parts = [results[(i, j)][which][..., a - ta : b - ta, c - ua : d - ua]
                         for j, (c, d, ua, _) in enumerate(cols)]
                row_parts.append(torch.cat(parts, -1) if len(parts) > 1 else parts[0])
            out.append(torch.cat(row_parts, -2) if len(row_parts) > 1 else row_parts[0])
        return out

    def _assemble(self, results, rows, cols, H: int, W: int) -> list[torch.Tensor]:
        """Overlapping tiles: the weighted sum of every tile's map cells over the sum of the
        weights (:func:`blend_weights`; differentiable)."""
        o = self.overlap
        wr = [(max(ta - o, 0), min(tb + o, H), blend_weights(a, b, max(ta - o, 0), min(tb + o, H), o))
              for a, b, ta, tb in rows]
        wc = [(max(ua - o, 0), min(ub + o, W), blend_weights(c, d, max(ua - o, 0), min(ub + o, W), o))
              for c, d, ua, ub in cols]
        ref = results[(0, 0)][0]
        norm = torch.zeros((H, W), dtype=ref.dtype, device=ref.device)
        acc = [torch.zeros(ref.shape[:-2] + (H, W), dtype=ref.dtype, device=ref.device) for _ in (0, 1)]
        for i, (_, _, ta, _) in enumerate(rows):
            r0, r1, w_r = wr[i]
            for j, (_, _, ua, _) in enumerate(cols):
                c0, c1, w_c = wc[j]
                w = (w_r[:, None] * w_c[None, :]).to(ref.device, ref.dtype)
                norm[r0:r1, c0:c1] += w
                for which in (0, 1):
                    part = results[(i, j)][which][..., r0 - (ta - o) : r1 - (ta - o), c0 - (ua - o) : c1 - (ua - o)]
                    acc[which][..., r0:r1, c0:c1] += w * part
        return [a / norm.clamp_min(1e-12) for a in acc]
