"""Initial guesses for the occluded cells (paper §5.3, Algorithm 3) and the ablation baselines.

* :func:`procedural_init` -- Algorithm 3: coarse to fine over ``O`` octaves, add scale-dependent
  uniform (value) noise to the occluded cells, merge with the known cells, smooth by Laplacian
  diffusion, breach the occluded region with the known cells raised to an (effectively) infinite
  wall (``Z' = (1-M) Z + M inf``, keep the known cells), clamp to ``Z_max``, upsample.
* :func:`lem_init` -- our start (issue [hidden-terrain]): a landscape evolution model run to
  steady state on a coarse grid, its uplift the harmonic interpolation of the known terrain (high
  where the visible terrain is high), its heights scaled so its median local relief equals the
  visible cells', joined to the known cells by a harmonic correction and clamped to ``Z_max``.
  Ridges and dendritic valleys instead of value noise and straight breach trenches.
* :func:`laplacian_init` -- the paper's Fig. 15b baseline: harmonic (Laplacian-diffusion)
  interpolation of the known heights into the occluded cells, same pyramid, no noise, breaching or
  clamping.

Everything here works in **metres** on ``(H, W)`` float64 numpy arrays (row 0 north); the result
equals ``z_v`` on the known cells. Down-sampling ``D_{2^k}``: area mean of the known heights per
``2^k`` block (a coarse cell is known when at least half of its block is), block *minimum* of
``Z_max`` (conservative: a coarse cell must not exceed any of its fine bounds). Up-sampling
``U_2``: bilinear. The SDEdit noising to ``t_start`` happens in the caller
(:func:`pixels2peaks.diffusion.completion.complete`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pixels2peaks.diffusion.sampling import Profiler, section
from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology import breach_depressions, default_epsilon

__all__ = ["procedural_init", "lem_init", "laplacian_init", "default_octaves", "constrain", "smooth_occluded"]


def default_octaves(shape: tuple[int, int], coarsest_cells: int = 8) -> int:
    """Octaves so that the coarsest level has about ``coarsest_cells`` cells on its short side."""
    return max(0, int(math.floor(math.log2(max(min(shape) / coarsest_cells, 1.0)))))


def _block_reduce(z: np.ndarray, k: int, how: str, fill: float) -> np.ndarray:
    if k == 1:
        return z.copy()
    H, W = z.shape
    h, w = -(-H // k), -(-W // k)
    p = np.full((h * k, w * k), fill, dtype=np.float64)
    p[:H, :W] = z
    b = p.reshape(h, k, w, k)
    return b.sum(axis=(1, 3)) if how == "sum" else b.min(axis=(1, 3))


def _downsample(z_v: np.ndarray, m_v: np.ndarray, z_max: np.ndarray, k: int):
    """``D_k`` of (known heights, known mask, view bound)."""
    m = m_v.astype(np.float64)
    cnt = _block_reduce(m, k, "sum", 0.0)
    tot = _block_reduce(np.where(m_v, z_v, 0.0), k, "sum", 0.0)
    area = _block_reduce(np.ones_like(m), k, "sum", 0.0)
    zk = np.where(cnt > 0, tot / np.maximum(cnt, 1.0), np.nan)
    mk = cnt >= 0.5 * area
    zmk = _block_reduce(z_max, k, "min", np.inf)
    return zk, mk, zmk


def _upsample2(z: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(z)[None, None]
    up = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)[0, 0].numpy()
    return up[: shape[0], : shape[1]]


def smooth_occluded(z: np.ndarray, known: np.ndarray, iters: int) -> np.ndarray:
    """``iters`` Jacobi sweeps of Laplacian diffusion on the occluded cells (known cells fixed,
    zero-flux map borders): each occluded cell becomes the mean of its 4 neighbours."""
    if iters <= 0 or known.all():
        return z
    t = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))[None, None]
    keep = torch.from_numpy(known)[None, None]
    fixed = t.clone()
    for _ in range(iters):
        p = F.pad(t, (1, 1, 1, 1), mode="replicate")
        avg = 0.25 * (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:])
        t = torch.where(keep, fixed, avg)
    return t[0, 0].numpy()


def constrain(
    z: np.ndarray,
    known: np.ndarray,
    z_max: np.ndarray,
    *,
    smooth_iters: int,
    epsilon: float,
    breach: bool = True,
    profiler: Profiler | None = None,
) -> np.ndarray:
    """Algorithm 3's ``Constrain``: smooth, breach the occluded region (known cells as walls),
    clamp to ``Z_max``; known cells are returned unchanged."""
    z = smooth_occluded(z, known, smooth_iters)
    if breach and not known.all():
        finite = z[np.isfinite(z)]
        wall = float(finite.max()) + 10.0 * (float(finite.max() - finite.min()) + 1.0)
        zp = np.where(known, wall, z)
        with section(profiler, "breach"):
            zb = breach_depressions(zp, epsilon)
        z = np.where(known, z, zb)
    z = np.where(known, z, np.minimum(z, z_max))
    return z


def _check(z_v: np.ndarray, m_v: np.ndarray, z_max: np.ndarray | None):
    z_v = np.asarray(z_v, dtype=np.float64)
    m_v = np.asarray(m_v, dtype=bool)
    if z_v.ndim != 2 or z_v.shape != m_v.shape:
        raise InputError(f"heights {z_v.shape} and mask {m_v.shape} must be equal 2-D shapes")
    if not m_v.any():
        raise InputError("the mask has no known cell")
    if not np.isfinite(z_v[m_v]).all():
        raise InputError("known heights must be finite where the mask is set")
    if z_max is None:
        zm = np.full(z_v.shape, np.inf)
    else:
        zm = np.asarray(z_max, dtype=np.float64)
        if zm.shape != z_v.shape:
            raise InputError(f"z_max {zm.shape} must have the shape of the heights {z_v.shape}")
        zm = np.where(np.isnan(zm), np.inf, zm)
    return np.where(m_v, z_v, np.nan), m_v, zm


def _pyramid_init(
    z_v, m_v, z_max, *, octaves, noise_gain, smooth_iters, rng, breach, clamp, profiler, epsilon,
    final_smooth_iters=0,
) -> np.ndarray:
    z_v, m_v, zm = _check(z_v, m_v, z_max)
    if not clamp:
        zm = np.full(z_v.shape, np.inf)
    O = default_octaves(z_v.shape) if octaves is None else int(octaves)
    if O < 0:
        raise InputError(f"octaves must be >= 0, got {octaves}")
    eps = default_epsilon(z_v[m_v]) if epsilon == "auto" else float(epsilon)
    # coarsest level: harmonic fill of the occluded cells, then Constrain
    zk, mk, zmk = _downsample(z_v, m_v, zm, 2**O)
    if not mk.any():  # no coarse cell is half known: treat any partly known block as known
        mk = np.isfinite(zk)
    start = np.where(mk, zk, float(np.nanmean(zk)))
    zi = constrain(start, mk, zmk, smooth_iters=max(4 * max(zk.shape), 50), epsilon=eps, breach=breach,
                   profiler=profiler)
    for k in range(O - 1, -1, -1):
        zk, mk, zmk = _downsample(z_v, m_v, zm, 2**k)
        if noise_gain > 0:
            # scale-dependent noise: amplitude = gain * mean known slope at this level * cell size
            cell = 2 ** (k + 1)  # the noise is added before upsampling, at the coarser level
            zc, mc, _ = _downsample(z_v, m_v, zm, cell)
            gy, gx = np.gradient(np.where(mc, zc, np.nan))
            s = np.sqrt(gx**2 + gy**2)
            amp = noise_gain * float(np.nanmean(s)) if np.isfinite(s).any() else 0.0
            if not np.isfinite(amp):
                amp = 0.0
            zi = zi + rng.uniform(-amp, amp, size=zi.shape)
        up = _upsample2(zi, zk.shape)
        merged = np.where(mk, np.where(np.isfinite(zk), zk, up), up)
        zi = constrain(merged, mk, zmk, smooth_iters=smooth_iters, epsilon=eps, breach=breach, profiler=profiler)
    if final_smooth_iters > 0:
        # widen the one-cell channels the finest breach cut into valleys (addition, see docstring)
        zi = np.minimum(smooth_occluded(zi, m_v, final_smooth_iters), zm)
    return np.where(m_v, z_v, zi)


def procedural_init(
    z_v: np.ndarray,
    m_v: np.ndarray,
    z_max: np.ndarray | None = None,
    *,
    octaves: int | None = None,
    noise_gain: float = 0.5,
    smooth_iters: int = 8,
    seed: int | np.random.Generator = 0,
    epsilon: float | str = "auto",
    final_smooth_iters: int = 4,
    profiler: Profiler | None = None,
) -> np.ndarray:
    """Algorithm 3 (see module docstring). ``z_v``/``m_v``/``z_max``: ``(H, W)`` metres / bool /
    metres (``None`` or non-finite = unbounded). ``octaves`` default: coarsest level ~8 cells.
    ``noise_gain`` scales the uniform noise added per level (amplitude = gain x mean slope of the
    known cells at that level x cell size). ``final_smooth_iters``: Laplacian-diffusion sweeps
    after the finest ``Constrain`` (then clamped again): bilinear upsampling raises the floor of a
    one-coarse-cell channel, so the finest breach re-cuts every channel one cell wide and as deep
    as the coarse one (straight trenches the diffusion from ``t = 0.5`` keeps); a few sweeps turn
    them into valleys (0 = the literal Algorithm 3). Returns ``(H, W)`` float64 metres, ``= z_v``
    on known cells, ``<= z_max`` on occluded cells."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))
    return _pyramid_init(
        z_v, m_v, z_max, octaves=octaves, noise_gain=float(noise_gain), smooth_iters=int(smooth_iters),
        rng=rng, breach=True, clamp=True, profiler=profiler, epsilon=epsilon,
        final_smooth_iters=int(final_smooth_iters),
    )


def lem_init(
    z_v: np.ndarray,
    m_v: np.ndarray,
    z_max: np.ndarray | None = None,
    *,
    dx_m: float,
    coarse_cells: int = 128,
    uplift_noise: float = 0.7,
    uplift_beta: float = 3.0,
    seed: int | np.random.Generator = 0,
    lem=None,
    profiler: Profiler | None = None,
) -> np.ndarray:
    """The LEM start (see the module docstring): ``(H, W)`` float64 metres, ``= z_v`` on the
    known cells, ``<= z_max`` on the others. ``dx_m``: cell size (m); ``coarse_cells``: the
    LEM grid's longer side (cells); ``lem``: a :class:`~pixels2peaks.terrain.lem.LEMConfig`
    (default: four base-level borders, at most 1500 steps). Needs fastscapelib (extra ``lem``).

    ``uplift_noise``: the uplift pattern is multiplied by ``exp(uplift_noise * f)``, ``f`` a
    unit-std fBm with power spectrum ``k^-uplift_beta`` (:func:`~pixels2peaks.terrain.noise.fbm`).
    With a smooth uplift (0) the D8 flow routing of the coarse grid draws long straight, axis-
    parallel valleys and banded ridges, which the diffusion from ``t_start`` keeps; a varying
    uplift gives massifs, lowlands and valleys in every direction (``docs/guided-completion.md``).
    The coarse steady state is upsampled bicubically (bilinear upsampling leaves facets at the
    coarse cell pitch)."""
    from scipy.ndimage import zoom

    from pixels2peaks.terrain.attributes import median_local_relief
    from pixels2peaks.terrain.lem import LEMConfig, steady_state
    from pixels2peaks.terrain.noise import fbm

    z_v, m_v, zm = _check(z_v, m_v, z_max)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))
    H, W = z_v.shape
    with section(profiler, "lem"):
        base = laplacian_init(z_v, m_v)
        k = max(1, int(math.ceil(max(H, W) / coarse_cells)))
        pad = np.pad(base, ((0, (-H) % k), (0, (-W) % k)), mode="edge")
        zc = pad.reshape(pad.shape[0] // k, k, pad.shape[1] // k, k).mean(axis=(1, 3))
        uplift = 0.3 + (zc - zc.min()) / max(float(np.ptp(zc)), 1e-9)  # everywhere up, most where high
        if uplift_noise > 0:
            uplift = uplift * np.exp(float(uplift_noise) * fbm(uplift.shape, float(uplift_beta), rng))
        cfg = lem if lem is not None else LEMConfig(max_steps=1500)
        z_lem = steady_state(uplift, dx_m * k, cfg, rng=rng).z
        z_lem = zoom(z_lem, (pad.shape[0] / z_lem.shape[0], pad.shape[1] / z_lem.shape[1]), order=3)[:H, :W]
    r_known = median_local_relief(z_v, m_v)
    r_lem = median_local_relief(z_lem, ~m_v)  # the hidden cells' relief is what must match
    if math.isfinite(r_known) and r_lem > 0:
        z_lem = z_lem * (r_known / r_lem)
    # join: the known cells' misfit, interpolated harmonically into the others
    corr = laplacian_init(np.where(m_v, z_v - z_lem, 0.0), m_v)
    z = np.where(m_v, z_v, z_lem + corr)
    return np.where(m_v, z_v, np.minimum(z, zm))


def laplacian_init(
    z_v: np.ndarray, m_v: np.ndarray, *, octaves: int | None = None, smooth_iters: int = 16
) -> np.ndarray:
    """Harmonic interpolation of the known heights into the occluded cells (coarse to fine
    Laplacian diffusion; no noise, no breaching, no ``Z_max`` clamp). Paper Fig. 15b baseline."""
    return _pyramid_init(
        z_v, m_v, None, octaves=octaves, noise_gain=0.0, smooth_iters=int(smooth_iters),
        rng=np.random.default_rng(0), breach=False, clamp=False, profiler=None, epsilon="auto",
    )
