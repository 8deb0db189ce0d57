"""Depression statistics from the exact depression fill.

* :func:`depression_depth`: ``filled - z`` per cell (metres, NaN on nodata), the fill being the
  exact (epsilon = 0) Priority-Flood fill (Barnes et al. 2014), computed from the depression
  routing (Cordonnier et al. 2019), see :mod:`~pixels2peaks.terrain.hydrology.fill`.
* :func:`mean_depression_depth` (MDD): mean over all valid cells (zeros included) of the depth,
  metres -- the hydrological-consistency score of the paper's evaluation.
* :func:`depression_fraction`: fraction of valid cells with depth > 0 (dimensionless).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from pixels2peaks.terrain.hydrology.routing import _prepare, _route_prepared

__all__ = ["depression_depth", "mean_depression_depth", "depression_fraction"]


@njit(cache=True)
def _depth_stats(z, label, level):  # pragma: no cover - numba
    """(sum of depths in float64, number of valid cells, number of cells with depth > 0)."""
    s = 0.0
    nv = 0
    npos = 0
    for i in range(z.size):
        lab = label[i]
        if lab < 0:
            continue
        nv += 1
        if lab > 0:
            d = np.float64(level[lab]) - np.float64(z[i])
            if d > 0.0:
                s += d
                npos += 1
    return s, nv, npos


@njit(cache=True)
def _depth_map(z, label, level, out):  # pragma: no cover - numba
    for i in range(z.size):
        lab = label[i]
        if lab < 0:
            out[i] = np.nan
        elif lab > 0 and level[lab] > z[i]:
            out[i] = np.float64(level[lab]) - np.float64(z[i])
        else:
            out[i] = 0.0


def _stats(z: Any, valid: Any) -> tuple[float, int, int]:
    zz, has_nodata = _prepare(z, valid)
    rt = _route_prepared(zz, has_nodata, carve=False, reuse=True)
    return _depth_stats(zz.ravel(), rt.basin, rt.level)


def depression_depth(z: Any, valid: Any = None) -> np.ndarray:
    """Depth of every cell below its spill level: ``filled - z`` in metres, ``(H, W)``
    float64, NaN on nodata (NaN in ``z`` or ``valid == False``).

    >>> float(depression_depth(np.array([[5., 5, 5], [5, 1, 5], [5, 4, 5]]))[1, 1])
    3.0
    """
    zz, has_nodata = _prepare(z, valid)
    rt = _route_prepared(zz, has_nodata, carve=False, reuse=True)
    out = np.empty(zz.shape, np.float64)
    _depth_map(zz.ravel(), rt.basin, rt.level, out.ravel())
    return out


def mean_depression_depth(z: Any, valid: Any = None) -> float:
    """Mean depression depth (MDD) in metres: the mean over valid cells (zeros included) of
    ``filled - z``, accumulated in float64.

    >>> mean_depression_depth(np.array([[5., 5, 5], [5, 1, 5], [5, 4, 5]]))  # 3 m over 9 cells
    0.3333333333333333
    """
    s, nv, _ = _stats(z, valid)
    return s / nv


def depression_fraction(z: Any, valid: Any = None) -> float:
    """Fraction (0..1) of valid cells that lie in a depression (depth > 0).

    >>> depression_fraction(np.array([[5., 5, 5], [5, 1, 5], [5, 4, 5]]))
    0.1111111111111111
    """
    _, nv, npos = _stats(z, valid)
    return npos / nv
