"""Unconditional heightmaps from the terrain prior, of any size (``p2p sample``, realism evaluation).

A map no larger than one model tile (``model.cfg.sample_size``) and a multiple of the U-Net's
downsampling factor is denoised whole (:class:`~pixels2peaks.diffusion.sampling.ModelDenoiser`);
anything else with 2-D SpotDiffusion tiling (:class:`~pixels2peaks.diffusion.tiling.SpotTiledDenoiser`,
paper §5.4). Either way the DDIM walk (:func:`~pixels2peaks.diffusion.sampling.sample_ddim`,
``eta = 0``) runs in normalized heights with **one** :class:`HeightNormalization` per heightmap
(``z_ref = 0``, global slope scale), decoded to metres at the end -- so tiles share one height
scale and join without offsets.

**Fluvial polish** (``polish``, default :data:`FLUVIAL_POLISH`): Algorithm 4's loop without
super-resolution on every sample -- a stream-power incision step (``erosion_k``), the breach
projection, then a short DDIM walk from ``t`` -- three times (t = 0.05, 0.03, 0.015). It gives the
samples the channel concavity of eroded terrain that the learned weights alone do not
(docs/model-card.md, "Fluvial polish"); ``polish=None`` returns the raw prior samples.

Seeding: the initial noise of all ``n`` maps is drawn up front from ``torch.Generator(seed)``
(the same draws as :func:`pixels2peaks.diffusion.model.sample`), the tile offsets from
``numpy.random.default_rng(seed)``; results do not depend on ``batch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pixels2peaks.diffusion.polishing import PolishConfig
from pixels2peaks.errors import InputError, check_cell_size

__all__ = ["sample_heightmaps", "is_single_tile", "unconditional_polish", "FLUVIAL_POLISH"]


def unconditional_polish(erosion_k: float = 0.3) -> PolishConfig:
    """Polish of unconditional samples: Algorithm 4 at the sampled dx (no super-resolution), three
    iterations (t = 0.05, 0.03, 0.015; 2 DDIM steps each), a stream-power step of ``erosion_k``
    before each breach projection, no final projection."""
    return PolishConfig(upsample=1, ts=(0.05, 0.03, 0.015), steps=2, final_projection=False, erosion_k=erosion_k)


#: the default polish of :func:`sample_heightmaps` (k = 0.3: docs/model-card.md, "Fluvial polish")
FLUVIAL_POLISH = unconditional_polish()


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
    polish: PolishConfig | None = FLUVIAL_POLISH,
    on_step: Callable[[int, int], None] | None = None,
    sampler: str = "ddim",
) -> np.ndarray:
    """``(n, size, size)`` float64 heights in metres (zero reference level) from the prior.

    ``steps`` log-SNR-spaced DDIM steps from t = T - 1 (:func:`~pixels2peaks.diffusion.sampling.logsnr_timesteps`); ``batch`` maps per U-Net call for single-tile maps
    (tiled maps go one at a time); ``polish``: see the module doc (None or ``enabled=False``: raw
    samples; its ``upsample`` must be 1); ``on_step(done, total)`` after every denoising step;
    ``sampler``: by name (:func:`~pixels2peaks.diffusion.sampling.get_sampler`).
    """
    from pixels2peaks.diffusion.polishing import polish as polish_loop
    from pixels2peaks.diffusion.sampling import ModelDenoiser, get_sampler
    from pixels2peaks.diffusion.schedule import logsnr_timesteps, noise_to, walk_timesteps
    from pixels2peaks.diffusion.tiling import SpotTiledDenoiser

    dx = check_cell_size(dx_m)
    if n < 1 or steps < 1 or batch < 1:
        raise InputError("n, steps and batch must be >= 1")
    if size < 8:
        raise InputError(f"size must be at least 8 cells, got {size}")
    if polish is not None and not polish.enabled:
        polish = None
    if polish is not None and polish.upsample != 1:
        raise InputError("unconditional samples are polished at their own dx: polish upsample must be 1")
    walk_fn = get_sampler(sampler)
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
    if polish is not None:
        total += n * sum(len(walk_timesteps(len(model.alphas_cumprod), t, polish.steps)) for t in polish.ts)
    done = [0]

    def tick(i: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        done[0] += 1
        if on_step is not None:
            on_step(done[0], total)

    out = np.empty((n, size, size), np.float64)
    for a in range(0, n, per):
        x0 = walk_fn(denoiser, noise[a : a + per], ts, callback=tick)
        out[a : a + per] = norm.decode(x0[:, 0].cpu().numpy().astype(np.float64))
    if polish is None:
        return out
    gen = torch.Generator().manual_seed(int(seed) + 1)

    def walk(z: np.ndarray, t: float) -> np.ndarray:
        wts = walk_timesteps(len(model.alphas_cumprod), t, polish.steps)
        x = torch.from_numpy(norm.encode(z)).float()[None, None]
        x0 = walk_fn(denoiser, noise_to(x, wts[0], model.alphas_cumprod, gen), wts, callback=tick)
        return norm.decode(x0[0, 0].cpu().numpy().astype(np.float64))

    unbounded = np.full((size, size), np.inf)
    for i in range(n):
        out[i] = polish_loop(out[i], unbounded, walk, polish.ts, breach_factor=polish.breach_factor,
                             final_projection=polish.final_projection, erosion_k=polish.erosion_k)
    return out
