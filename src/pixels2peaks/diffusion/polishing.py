"""Final polishing (paper §5.5, Algorithm 4): bicubic super-resolution, then a few iterations of
hard constraint projection + a short guided SDEdit walk.

    Z <- U_u(Z)                                    (bicubic, dx -> dx / u)
    for t in [t_1 > t_2 > ... > t_n]   (t_1 ~ 0.05, n ~ 3):
        Z <- E_k(Z)                                (optional: stream-power incision, ours)
        Z <- Z + U_k(H(D_k Z) - D_k Z)             (breach at the coarser resolution)
        Z <- min(Z, Z_max)                         (view bound)
        Z <- guided-denoise(q(Z, t), t -> 0)

Deviation from the literal Algorithm 4 (``Z <- U_k(H(D_k(Z)))``): we add the breaching *change*
upsampled instead of replacing ``Z`` by the upsampled coarse breached surface. The literal form
resamples the whole map through ``D_k`` every iteration and throws away the detail above the
coarse Nyquist frequency, which a walk from ``t <= 0.05`` cannot restore; the residual form
applies the same carving and keeps the detail (identical where breaching changes nothing).

Addition (ours, off unless ``erosion_k > 0``): before the breach, one implicit stream-power
incision step ``E_k`` (:func:`~pixels2peaks.terrain.hydrology.stream_power.stream_power_erode`),
a hard projection towards fluvially eroded terrain (channel slope falling with drainage area),
which the short walk then re-textures; measured in docs/model-card.md ("Fluvial polish").

Everything here is in metres on ``(H, W)`` float64 numpy arrays; the denoising walk is supplied
by the caller (:func:`pixels2peaks.diffusion.completion.complete`) as ``denoise(z, t) -> z``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pixels2peaks.diffusion.sampling import Profiler, section
from pixels2peaks.errors import InputError
from pixels2peaks.terrain.attributes import downsample_smooth
from pixels2peaks.terrain.hydrology import breach_depressions, default_epsilon, fill_depressions
from pixels2peaks.terrain.hydrology.stream_power import stream_power_erode

__all__ = [
    "PolishConfig",
    "polish",
    "upsample_bicubic",
    "upsample_nearest",
    "block_mean",
    "back_projected_upsample",
    "coarse_projection",
]


@dataclass(frozen=True)
class PolishConfig:
    """Polishing settings. ``ts``: decreasing start times of the iterations; ``steps``: DDIM
    steps per iteration; ``upsample``: the ``u`` of Algorithm 4 (1 = polish without
    super-resolution); ``breach_factor``: the ``k`` of ``D_k``/``U_k``; ``final_projection``:
    after the last iteration, breach once more at full resolution and clamp to ``Z_max`` (an
    addition to Algorithm 4, which ends on a denoising walk: that walk re-creates cell-scale pits,
    see ``docs/guided-completion.md``); ``erosion_k``: the dimensionless ``k`` of one
    stream-power incision step before every projection (0 = off, Algorithm 4 as printed)."""

    enabled: bool = True
    upsample: int = 2
    ts: tuple[float, ...] = (0.05, 0.03, 0.015)
    steps: int = 1
    breach_factor: int = 2
    final_projection: bool = True
    erosion_k: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", tuple(float(t) for t in self.ts))
        if not self.erosion_k >= 0.0:
            raise InputError(f"polish erosion_k must be >= 0, got {self.erosion_k}")
        if self.upsample < 1 or self.breach_factor < 1:
            raise InputError("polish upsample and breach_factor must be >= 1")
        if self.steps < 1:
            raise InputError(f"polish steps must be >= 1, got {self.steps}")
        if any(not 0.0 < t <= 1.0 for t in self.ts) or any(b >= a for a, b in zip(self.ts, self.ts[1:])):
            raise InputError(f"polish ts must be strictly decreasing times in (0, 1], got {self.ts}")


def _t(z: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))[None, None]


def upsample_bicubic(z: np.ndarray, u: int) -> np.ndarray:
    """Bicubic ``u x`` upsampling of a cell-centred grid (``align_corners=False``)."""
    if u == 1:
        return np.asarray(z, dtype=np.float64).copy()
    return F.interpolate(_t(z), scale_factor=u, mode="bicubic", align_corners=False)[0, 0].numpy()


def upsample_nearest(a: np.ndarray, u: int) -> np.ndarray:
    """Each cell becomes a ``u x u`` block (masks, view bounds)."""
    return np.repeat(np.repeat(np.asarray(a), u, axis=0), u, axis=1)


def block_mean(z: np.ndarray, u: int) -> np.ndarray:
    """Mean over ``u x u`` blocks (shape must be a multiple of ``u``)."""
    H, W = z.shape
    if H % u or W % u:
        raise InputError(f"{H}x{W} is not a multiple of {u}")
    return np.asarray(z, dtype=np.float64).reshape(H // u, u, W // u, u).mean(axis=(1, 3))


def back_projected_upsample(z: np.ndarray, u: int, iters: int = 16) -> np.ndarray:
    """Bicubic upsampling corrected by iterative back-projection (the residual shrinks ~2x per
    iteration) and a final per-block correction of what is left (~1e-5 of the relief after 16
    iterations), so every ``u x u`` block mean equals its coarse cell to rounding: the fine
    reference for known cells after polishing."""
    z = np.asarray(z, dtype=np.float64)
    up = upsample_bicubic(z, u)
    if u == 1:
        return up
    for _ in range(iters):
        up = up + upsample_bicubic(z - block_mean(up, u), u)
    return up + upsample_nearest(z - block_mean(up, u), u)


def coarse_projection(
    z: np.ndarray, k: int, *, method: str = "breach", epsilon: float | str = "auto", profiler: Profiler | None = None
) -> np.ndarray:
    """``Z + U_k(H(D_k Z) - D_k Z)``: hydrological projection at ``1/k`` resolution (``H`` =
    breach or fill), the change upsampled bicubically (any size: replicate-padded to ``k``)."""
    H, W = z.shape
    ph, pw = (-H) % k, (-W) % k
    zp = np.pad(z, ((0, ph), (0, pw)), mode="edge") if (ph or pw) else z
    d = downsample_smooth(zp, k) if k > 1 else zp
    with section(profiler, "breach"):
        if method == "breach":
            b = breach_depressions(d, epsilon)
        elif method == "fill":
            b = fill_depressions(d, epsilon)
        else:
            raise InputError(f"hydrology method must be 'breach' or 'fill', got {method!r}")
    delta = upsample_bicubic(np.asarray(b, dtype=np.float64) - d, k)[:H, :W]
    return z + delta


def polish(
    z: np.ndarray,
    z_max: np.ndarray,
    denoise: Callable[[np.ndarray, float], np.ndarray],
    ts: Sequence[float],
    *,
    breach_factor: int = 2,
    method: str = "breach",
    final_projection: bool = False,
    erosion_k: float = 0.0,
    fixed: np.ndarray | None = None,
    callback: Callable[[int, np.ndarray], None] | None = None,
    profiler: Profiler | None = None,
) -> np.ndarray:
    """The iteration loop of Algorithm 4 on an already upsampled ``z`` (metres; ``z_max`` at the
    same resolution, non-finite = unbounded). ``denoise(z, t)`` noises ``z`` to ``t`` and walks
    back to 0 (guided). ``callback(i, z)`` after every iteration. ``final_projection``: end with
    a full-resolution breach (or fill) + clamp. ``erosion_k > 0``: a stream-power incision step
    (:func:`stream_power_erode`) before every projection but the final one; ``fixed`` (bool,
    same shape): cells the incision leaves unchanged (the known cells of a completion)."""
    z = np.asarray(z, dtype=np.float64)
    zm = np.where(np.isfinite(z_max), z_max, np.inf)
    eps = default_epsilon(z)
    for i, t in enumerate(ts):
        with section(profiler, "polish_projection"):
            if erosion_k > 0:
                z = stream_power_erode(z, erosion_k, fixed=fixed)
            z = coarse_projection(z, breach_factor, method=method, epsilon=eps, profiler=profiler)
            z = np.minimum(z, zm)
        z = denoise(z, float(t))
        if callback is not None:
            callback(i, z)
    if final_projection:
        with section(profiler, "polish_projection"):
            z = coarse_projection(z, 1, method=method, epsilon=eps, profiler=profiler)
            z = np.minimum(z, zm)
    return z
