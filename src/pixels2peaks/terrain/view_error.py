"""View-consistency errors of a heightmap against the view (paper Sec. 7.3).

* **VVE** (Visible View Error): mean over *all* heightmap cells of ``M_V * |Z - Z_V|`` (metres).
* **OVE** (Occluded View Error): mean over *all* cells of ``(1 - M_V) * max(Z - Z_max, 0)``
  (metres).

Both average over the whole grid, as the paper writes ("the average over the heightfield"), so
they shrink when few cells are visible/occluded; multiply by ``H W / sum(M_V)`` (resp. the unseen
count) for a per-visible-cell (per-unseen-cell) mean.

``Z_max`` cells that are not finite (``+inf`` in memory or NaN as stored in ``zmax.tif``) are
unbounded and contribute 0. ``Z`` must be finite wherever a term is evaluated. Inputs may be
NumPy arrays or torch tensors (any device); results are Python floats.

The one definition, used by the completion (its reports and guidance checks) and re-exported by
:mod:`pixels2peaks.evaluation.view_metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pixels2peaks.errors import InputError

__all__ = ["visible_view_error", "occluded_view_error", "view_errors", "as_2d"]


def as_2d(a: Any, what: str, dtype=np.float64) -> np.ndarray:
    """An ``(H, W)`` float array from a NumPy array or torch tensor (``(1, 1, H, W)`` allowed)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.ndim == 4 and arr.shape[:2] == (1, 1):
        arr = arr[0, 0]
    if arr.ndim != 2:
        raise InputError(f"{what} must be a 2-D (H, W) array, got shape {arr.shape}")
    return arr.astype(dtype)


def _mask(m: Any, z_visible: np.ndarray | None, shape: tuple[int, ...], what: str = "visible mask") -> np.ndarray:
    if m is None:
        if z_visible is None:
            raise InputError(f"{what} is required")
        return np.isfinite(z_visible)
    mask = as_2d(m, what, dtype=np.float64)
    if mask.shape != shape:
        raise InputError(f"{what} has shape {mask.shape}, expected {shape}")
    return mask > 0.5


def visible_view_error(z: Any, z_visible: Any, visible_mask: Any = None) -> float:
    """VVE in metres: ``mean over all cells of M_V * |Z - Z_V|``.

    ``visible_mask`` defaults to ``isfinite(z_visible)``.

    >>> z = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> zv = np.array([[1.5, np.nan], [3.0, np.nan]])
    >>> visible_view_error(z, zv)      # (0.5 + 0) / 4 cells
    0.125
    """
    zz = as_2d(z, "Z")
    zv = as_2d(z_visible, "Z_V")
    if zv.shape != zz.shape:
        raise InputError(f"Z_V has shape {zv.shape}, Z has {zz.shape}")
    m = _mask(visible_mask, zv, zz.shape)
    if not np.isfinite(zv[m]).all():
        raise InputError("Z_V must be finite wherever M_V = 1")
    if not np.isfinite(zz[m]).all():
        raise InputError("Z must be finite wherever M_V = 1")
    err = np.zeros_like(zz)
    err[m] = np.abs(zz[m] - zv[m])
    return float(err.mean())


def occluded_view_error(z: Any, z_max: Any, visible_mask: Any) -> float:
    """OVE in metres: ``mean over all cells of (1 - M_V) * max(Z - Z_max, 0)``; non-finite
    ``Z_max`` = unbounded (``z_max=None``: no bound at all, 0.0).

    >>> z = np.array([[5.0, 2.0], [3.0, 4.0]])
    >>> zmax = np.array([[np.nan, 1.0], [np.inf, 9.0]])
    >>> occluded_view_error(z, zmax, np.array([[1, 0], [0, 0]]))   # (1 + 0 + 0) / 4
    0.25
    """
    zz = as_2d(z, "Z")
    if z_max is None:
        return 0.0
    zm = as_2d(z_max, "Z_max")
    if zm.shape != zz.shape:
        raise InputError(f"Z_max has shape {zm.shape}, Z has {zz.shape}")
    m = _mask(visible_mask, None, zz.shape)
    occ = ~m & np.isfinite(zm)
    if not np.isfinite(zz[occ]).all():
        raise InputError("Z must be finite wherever M_V = 0 and Z_max is finite")
    err = np.zeros_like(zz)
    err[occ] = np.maximum(zz[occ] - zm[occ], 0.0)
    return float(err.mean())


def view_errors(z: Any, z_visible: Any, z_max: Any, visible_mask: Any = None) -> dict[str, float]:
    """``{"vve_m": ..., "ove_m": ...}`` of heightmap ``z`` (see the module docstring)."""
    zv = as_2d(z_visible, "Z_V")
    m = _mask(visible_mask, zv, zv.shape)
    return {
        "vve_m": visible_view_error(z, zv, m),
        "ove_m": occluded_view_error(z, z_max, m),
    }
