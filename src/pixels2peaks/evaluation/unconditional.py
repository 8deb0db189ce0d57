"""Unconditional heightmaps from the terrain prior, of any size (``p2p sample``, realism evaluation).

A map no larger than one model tile (``model.cfg.sample_size``) and a multiple of the U-Net's
downsampling factor is denoised whole (:class:`~pixels2peaks.diffusion.sampling.ModelDenoiser`);
anything else with 2-D SpotDiffusion tiling (:class:`~pixels2peaks.diffusion.tiling.SpotTiledDenoiser`,
paper §5.4). Either way the DDIM walk (:func:`~pixels2peaks.diffusion.sampling.sample_ddim`,
``eta = 0``) runs in normalized heights with **one** :class:`HeightNormalization` per heightmap
(``z_ref = 0``, global slope scale), decoded to metres at the end -- so tiles share one height
scale and join without offsets.

Seeding: the initial noise of all ``n`` maps is drawn up front from ``torch.Generator(seed)``
(the same draws as :func:`pixels2peaks.diffusion.model.sample`), the tile offsets from
``numpy.random.default_rng(seed)``; results do not depend on ``batch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pixels2peaks.errors import InputError, check_cell_size

__all__ = ["sample_heightmaps", "is_single_tile"]


def is_single_tile(model: Any, size: int) -> bool:
    """True if a ``size``² map is denoised as one U-Net tile (no tiling)."""
    f = int(model.cfg.downsample_factor)
    return size <= int(model.cfg.sample_size) and size % f == 0


def sample_heightmaps(
    model: Any,
    n: int,
    size: int,
    dx_m: float,
    *,
    steps: int = 50,
    seed: int = 0,
    bf16: bool = False,
    batch: int = 4,
    on_step: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``(n, size, size)`` float64 heights in metres (zero reference level) from the prior.

    ``steps`` log-SNR-spaced DDIM steps from t = T - 1 (:func:`~pixels2peaks.diffusion.sampling.logsnr_timesteps`); ``batch`` maps per U-Net call for single-tile maps
    (tiled maps go one at a time); ``on_step(done, total)`` after every denoising step.
    """
    from pixels2peaks.diffusion.sampling import ModelDenoiser, logsnr_timesteps, sample_ddim
    from pixels2peaks.diffusion.tiling import SpotTiledDenoiser

    dx = check_cell_size(dx_m)
    if n < 1 or steps < 1 or batch < 1:
        raise InputError("n, steps and batch must be >= 1")
    if size < 8:
        raise InputError(f"size must be at least 8 cells, got {size}")
    model = model.eval()
    base = ModelDenoiser(model, dx, bf16=bf16)
    single = is_single_tile(model, size)
    denoiser = base if single else SpotTiledDenoiser(base, int(model.cfg.sample_size), seed=int(seed))
    per = batch if single else 1
    ts = logsnr_timesteps(model.alphas_cumprod, 1.0, steps)
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(n, 1, size, size, generator=g)
    norm = model.cfg.normalization(dx)
    total = len(ts) * ((n + per - 1) // per)
    done = [0]

    def tick(i: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        done[0] += 1
        if on_step is not None:
            on_step(done[0], total)

    out = np.empty((n, size, size), np.float64)
    for a in range(0, n, per):
        x0 = sample_ddim(denoiser, noise[a : a + per], ts, callback=tick)
        out[a : a + per] = norm.decode(x0[:, 0].cpu().numpy().astype(np.float64))
    return out
