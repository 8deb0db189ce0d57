"""Differentiable terrain attributes on batched heightmaps (torch, any device).

Inputs are ``(B, 1, H, W)`` tensors (row 0 = north, x east, y north, heights and ``dx_m`` in
metres). For convenience every operator also accepts a 2-D ``(H, W)`` tensor or NumPy array and
returns the same kind/shape (NumPy in -> NumPy out, computed in float64 for float64 input and
float32 otherwise). Use :func:`as_tensor` to batch NumPy arrays yourself.

Discretisation (the operators ``S``, ``C`` and ``D_sigma`` of the paper's Eq. 7-8):

* :func:`gradient`: central differences ``(z[c+1] - z[c-1]) / (2 dx)`` with replicate padding,
  so border cells get a one-sided half difference.
* :func:`slope`: magnitude of the central-difference gradient, ``sqrt(gx^2 + gy^2)``
  (``unit="tan"``) or ``atan`` of it in degrees. The paper cites Jain et al. 2024a for slope;
  the central-difference magnitude is exact, and thus rotation invariant, for planes. Its
  derivative is defined as 0 on exactly flat cells (no NaN gradients).
* :func:`laplacian`: 5-point stencil ``(zN + zS + zE + zW - 4 z) / dx^2`` in 1/m (the paper's
  linear approximation of mean curvature, C), replicate padding (zero-flux borders).
* :func:`downsample_smooth`: the paper's ``D_sigma``: separable Gaussian blur with
  ``sigma = factor / 2`` cells by default (replicate padding, kernel radius ``ceil(3 sigma)``),
  then ``factor x factor`` average pooling -> ``(B, 1, H // factor, W // factor)`` (trailing
  rows/columns that do not fill a block are dropped). ``factor=1`` with default sigma is the
  identity.
* :func:`hillshade`: Lambertian ``max(0, n . l)`` with the light at ``azimuth_deg`` (clockwise
  from north) and ``altitude_deg`` above the horizon; flat ground gives ``sin(altitude)``.

NaN handling: none. A NaN spreads to every output cell whose stencil touches it (and, for
``downsample_smooth``, to the whole kernel footprint). Callers pass filled heightmaps (e.g. fill
nodata by nearest valid height) and mask the outputs themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from pixels2peaks.errors import InputError, check_cell_size

__all__ = [
    "as_tensor",
    "gradient",
    "slope",
    "laplacian",
    "downsample_smooth",
    "hillshade",
    "gaussian_kernel1d",
    "local_relief",
    "median_local_relief",
]

Array = Any  # torch.Tensor | np.ndarray


def as_tensor(
    z: Array, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``(H, W)`` or ``(B, 1, H, W)`` array/tensor -> ``(B, 1, H, W)`` floating tensor.

    NumPy float64 stays float64, other NumPy dtypes become float32 (unless ``dtype`` is given).
    Tensors keep their device/dtype unless asked otherwise (integer tensors become float32).
    """
    if isinstance(z, np.ndarray):
        arr = z if z.dtype in (np.float32, np.float64) else z.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    elif isinstance(z, torch.Tensor):
        t = z
    else:
        raise InputError(f"expected a torch.Tensor or numpy array, got {type(z).__name__}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim != 4 or t.shape[1] != 1:
        raise InputError(f"heightmaps must be (H, W) or (B, 1, H, W), got shape {tuple(t.shape)}")
    if device is not None or dtype is not None:
        t = t.to(device=device if device is not None else t.device, dtype=dtype or t.dtype)
    return t


def _wrap(z: Array) -> tuple[torch.Tensor, Callable[[torch.Tensor], Array]]:
    """Batch the input and return a function restoring the caller's kind and rank."""
    is_np = isinstance(z, np.ndarray)
    two_d = getattr(z, "ndim", None) == 2
    t = as_tensor(z)

    def restore(out: torch.Tensor) -> Array:
        if two_d:
            out = out[0, 0]
        if is_np:
            return out.detach().cpu().numpy()
        return out

    return t, restore




def _grad_t(z: torch.Tensor, dx: float) -> tuple[torch.Tensor, torch.Tensor]:
    zp = F.pad(z, (1, 1, 1, 1), mode="replicate")
    gx = (zp[..., 1:-1, 2:] - zp[..., 1:-1, :-2]) / (2.0 * dx)  # east
    gy = (zp[..., :-2, 1:-1] - zp[..., 2:, 1:-1]) / (2.0 * dx)  # north (row 0 is north)
    return gx, gy


def gradient(z: Array, dx_m: float) -> tuple[Array, Array]:
    """Central-difference gradient ``(dz/dx, dz/dy)`` (x east, y north), dimensionless."""
    t, restore = _wrap(z)
    gx, gy = _grad_t(t, check_cell_size(dx_m))
    return restore(gx), restore(gy)


def _safe_norm(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    m2 = gx * gx + gy * gy
    pos = m2 > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, m2, torch.ones_like(m2))), torch.zeros_like(m2))


def slope(z: Array, dx_m: float, unit: Literal["deg", "tan"] = "deg") -> Array:
    """Slope as the central-difference gradient magnitude: ``tan`` (m/m) or degrees."""
    if unit not in ("deg", "tan"):
        raise InputError(f"slope unit must be 'deg' or 'tan', got {unit!r}")
    t, restore = _wrap(z)
    gx, gy = _grad_t(t, check_cell_size(dx_m))
    s = _safe_norm(gx, gy)
    if unit == "deg":
        s = torch.rad2deg(torch.atan(s))
    return restore(s)


def laplacian(z: Array, dx_m: float) -> Array:
    """5-point Laplacian ``(zN + zS + zE + zW - 4 z) / dx^2`` in 1/m (replicate borders)."""
    t, restore = _wrap(z)
    dx = check_cell_size(dx_m)
    zp = F.pad(t, (1, 1, 1, 1), mode="replicate")
    nbrs = zp[..., :-2, 1:-1] + zp[..., 2:, 1:-1] + zp[..., 1:-1, :-2] + zp[..., 1:-1, 2:]
    lap = (nbrs - 4.0 * t) / (dx * dx)
    return restore(lap)


def gaussian_kernel1d(sigma_cells: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius ``ceil(3 sigma)`` (at least 1)."""
    radius = max(1, math.ceil(3.0 * sigma_cells))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma_cells) ** 2)
    return k / k.sum()


def downsample_smooth(z: Array, factor: int, sigma_cells: float | None = None) -> Array:
    """The paper's ``D_sigma``: Gaussian blur (sigma = factor/2 cells by default) then
    ``factor x factor`` average pooling -> ``(B, 1, H // factor, W // factor)``."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise InputError(f"downsample factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if sigma_cells is None:
        sigma = factor / 2.0 if factor > 1 else 0.0
    else:
        try:
            sigma = float(sigma_cells)
        except (TypeError, ValueError):
            raise InputError(f"sigma_cells must be a number >= 0, got {sigma_cells!r}") from None
        if not math.isfinite(sigma) or sigma < 0:
            raise InputError(f"sigma_cells must be a number >= 0, got {sigma_cells!r}")
    t, restore = _wrap(z)
    h, w = t.shape[-2:]
    if h < factor or w < factor:
        raise InputError(f"cannot downsample a {h}x{w} grid by {factor}")
    if sigma > 0:
        k = gaussian_kernel1d(sigma, device=t.device, dtype=t.dtype)
        r = (k.numel() - 1) // 2
        t = F.pad(t, (r, r, r, r), mode="replicate")
        t = F.conv2d(t, k.view(1, 1, 1, -1))
        t = F.conv2d(t, k.view(1, 1, -1, 1))
    if factor > 1:
        t = F.avg_pool2d(t, kernel_size=factor, stride=factor)
    return restore(t)


def hillshade(z: Array, dx_m: float, azimuth_deg: float = 315.0, altitude_deg: float = 45.0) -> Array:
    """Lambertian hillshade in [0, 1]; light from ``azimuth_deg`` (clockwise from north) at
    ``altitude_deg`` above the horizon."""
    t, restore = _wrap(z)
    gx, gy = _grad_t(t, check_cell_size(dx_m))
    az, alt = math.radians(float(azimuth_deg)), math.radians(float(altitude_deg))
    lx, ly, lz = math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt)
    # unit normal of z(x, y): (-gx, -gy, 1) / sqrt(1 + gx^2 + gy^2)
    shade = (lz - lx * gx - ly * gy) / torch.sqrt(1.0 + gx * gx + gy * gy)
    return restore(shade.clamp(0.0, 1.0))


def local_relief(z: np.ndarray, window_cells: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Local relief (m): max - min of ``z`` over the ``window_cells`` square window around each
    cell, over the cells of ``mask`` only (default: all); NaN where the window holds none.
    The measure of issue [hidden-terrain] (windows 1/16 of the map side)."""
    from scipy.ndimage import maximum_filter, minimum_filter

    zz = np.asarray(z, np.float64)
    m = np.isfinite(zz) if mask is None else (np.asarray(mask, bool) & np.isfinite(zz))
    w = max(1, int(window_cells))
    hi = maximum_filter(np.where(m, zz, -np.inf), w, mode="nearest")
    lo = minimum_filter(np.where(m, zz, np.inf), w, mode="nearest")
    r = hi - lo
    return np.where(np.isfinite(r), r, np.nan)


def median_local_relief(z: np.ndarray, mask: np.ndarray | None = None, window_cells: int | None = None) -> float:
    """Median of :func:`local_relief` over the cells of ``mask`` (window default: 1/16 of the
    map's longer side, at least 3 cells); NaN when ``mask`` is empty."""
    zz = np.asarray(z, np.float64)
    m = np.ones(zz.shape, bool) if mask is None else np.asarray(mask, bool)
    w = window_cells if window_cells is not None else max(3, max(zz.shape) // 16)
    r = local_relief(zz, w, m)[m]
    r = r[np.isfinite(r)]
    return float(np.median(r)) if r.size else float("nan")
