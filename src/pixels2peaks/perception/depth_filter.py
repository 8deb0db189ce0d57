"""Lateral bilateral filter of a log-depth map (our choice, issue [view-true]).

The depth network's output varies from one column to the next by a few per cent. Projected to
the ground, a few per cent of a 5 km distance is hundreds of metres of range, so neighbouring
columns land at different ranges with different heights: the radial "finger" streaks and the
walls between them. Terrain seen in one row of a photo at one distance is one surface, so the
filter averages ``ln d`` **along each image row**, with weights that fall with the column
distance and with the log-depth difference (a bilateral filter, Tomasi & Manduchi 1998), over
terrain pixels only:

    ln d'(r, c) = sum_k ln d(r, k) f(|c - k|) g(|ln d(r, c) - ln d(r, k)|) / sum_k f g

``f``: Gaussian of ``sigma_px`` columns; ``g``: Gaussian of ``sigma_log`` (0.1 = 10 % depth), so
an occluding contour (a nearer ridge in front of a farther one, a jump of tens of per cent) is
kept while the column-to-column wobble is averaged out.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from pixels2peaks.errors import InputError

__all__ = ["lateral_bilateral"]


@njit(cache=True, parallel=True)
def _rows(ld, ok, radius, inv2s2, inv2r2):  # pragma: no cover - numba
    h, w = ld.shape
    out = ld.copy()
    for r in prange(h):
        for c in range(w):
            if not ok[r, c]:
                continue
            num, den = 0.0, 0.0
            v = ld[r, c]
            for k in range(max(0, c - radius), min(w, c + radius + 1)):
                if not ok[r, k]:
                    continue
                dv = ld[r, k] - v
                wt = math.exp(-(k - c) * (k - c) * inv2s2 - dv * dv * inv2r2)
                num += wt * ld[r, k]
                den += wt
            out[r, c] = num / den
    return out


def lateral_bilateral(log_depth: np.ndarray, terrain: np.ndarray, sigma_px: float,
                      sigma_log: float = 0.1) -> np.ndarray:
    """Row-wise bilateral filter of ``log_depth`` (``(H, W)``, natural log of distance, any
    additive constant) over the ``terrain`` pixels (others are returned unchanged); see the
    module docstring. ``sigma_px`` in columns, ``sigma_log`` in log-depth units. Returns
    float32 ``(H, W)``."""
    ld = np.asarray(log_depth, dtype=np.float64)
    ok = np.asarray(terrain, dtype=bool)
    if ld.ndim != 2 or ok.shape != ld.shape:
        raise InputError(f"log depth and terrain mask must be (H, W) alike, got {ld.shape} and {ok.shape}")
    if not (sigma_px > 0 and sigma_log > 0 and math.isfinite(sigma_px) and math.isfinite(sigma_log)):
        raise InputError(f"filter widths must be positive, got {sigma_px!r} px and {sigma_log!r}")
    ok = ok & np.isfinite(ld)
    radius = max(1, int(math.ceil(3.0 * sigma_px)))
    out = _rows(np.ascontiguousarray(ld), np.ascontiguousarray(ok), radius,
                1.0 / (2.0 * sigma_px ** 2), 1.0 / (2.0 * sigma_log ** 2))
    return out.astype(np.float32)
