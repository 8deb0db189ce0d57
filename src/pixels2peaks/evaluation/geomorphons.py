"""Geomorphons: the ten landform elements of Jasiewicz & Stepinski (2013), *Geomorphons -- a
pattern recognition approach to classification and mapping of landforms*, Geomorphology 182,
147-156 (the paper's realism reference).

For each cell and each of the 8 principal directions, the line of sight up to ``radius_cells``
gives the largest elevation angle ``alpha_up`` and the smallest ``alpha_low`` (degrees). The
direction is **higher** (``+``) when the zenith angle ``90 - alpha_up`` is smaller than the
nadir angle ``90 + alpha_low`` by more than the flatness threshold ``t``, i.e. when
``alpha_up + alpha_low > t``; **lower** (``-``) when ``alpha_up + alpha_low < -t``; else level.
The counts of ``-`` and ``+`` directions select the form from the authors' lookup table (as in
GRASS ``r.geomorphon``): 8 lower is a peak, 8 higher a pit, no difference a flat.

Arrays in, arrays out: heights in metres ``(H, W)``, ``dx_m`` in metres. Directions that leave
the grid use the cells they have; a cell with no neighbour in a direction counts it as level.
"""

from __future__ import annotations

import math

import numpy as np

from pixels2peaks.errors import InputError, check_cell_size

__all__ = ["FORMS", "geomorphons", "form_histogram", "histogram_distance"]

#: the ten forms, in class-id order (0..9)
FORMS: tuple[str, ...] = ("flat", "peak", "ridge", "shoulder", "spur", "slope", "hollow", "footslope",
                          "valley", "pit")
_FL, _PK, _RI, _SH, _SP, _SL, _HL, _FS, _VL, _PT = range(10)
#: form by (number of lower directions, number of higher directions); -1: impossible (> 8)
_TABLE = np.array([
    [_FL, _FL, _FL, _FS, _FS, _VL, _VL, _VL, _PT],
    [_FL, _FL, _FS, _FS, _FS, _VL, _VL, _VL, -1],
    [_FL, _SH, _SL, _SL, _HL, _HL, _VL, -1, -1],
    [_SH, _SH, _SL, _SL, _SL, _HL, -1, -1, -1],
    [_SH, _SH, _SP, _SL, _SL, -1, -1, -1, -1],
    [_RI, _RI, _SP, _SP, -1, -1, -1, -1, -1],
    [_RI, _RI, _RI, -1, -1, -1, -1, -1, -1],
    [_RI, _RI, -1, -1, -1, -1, -1, -1, -1],
    [_PK, -1, -1, -1, -1, -1, -1, -1, -1],
], dtype=np.int8)
_DIRS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _shifted(z: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``out[i, j] = z[i + dy, j + dx]`` (NaN outside the grid)."""
    H, W = z.shape
    out = np.full((H, W), np.nan)
    ys, yd = (slice(dy, H), slice(0, H - dy)) if dy >= 0 else (slice(0, H + dy), slice(-dy, H))
    xs, xd = (slice(dx, W), slice(0, W - dx)) if dx >= 0 else (slice(0, W + dx), slice(-dx, W))
    out[yd, xd] = z[ys, xs]
    return out


def geomorphons(z: np.ndarray, dx_m: float, radius_cells: int = 10, flat_deg: float = 1.0) -> np.ndarray:
    """Geomorphon class id (0..9, :data:`FORMS`) of every cell, ``(H, W)`` int8."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 3 or not np.isfinite(z).all():
        raise InputError(f"geomorphons need a finite 2-D heightmap of at least 3x3 cells, got shape {z.shape}")
    dx = check_cell_size(dx_m)
    if radius_cells < 1 or not (math.isfinite(flat_deg) and flat_deg >= 0):
        raise InputError(f"geomorphons need radius_cells >= 1 and flat_deg >= 0, got {radius_cells}, {flat_deg}")
    n_minus = np.zeros(z.shape, np.int8)
    n_plus = np.zeros(z.shape, np.int8)
    for dy, dxx in _DIRS:
        step = dx * math.hypot(dy, dxx)
        up = np.full(z.shape, -np.inf)
        low = np.full(z.shape, np.inf)
        for k in range(1, int(radius_cells) + 1):
            other = _shifted(z, k * dy, k * dxx)
            ang = np.degrees(np.arctan((other - z) / (k * step)))
            ok = np.isfinite(ang)
            up = np.where(ok, np.maximum(up, ang), up)
            low = np.where(ok, np.minimum(low, ang), low)
        seen = np.isfinite(up)
        s = np.where(seen, np.where(seen, up, 0.0) + np.where(seen, low, 0.0), 0.0)
        n_plus += (s > flat_deg).astype(np.int8)
        n_minus += (s < -flat_deg).astype(np.int8)
    return _TABLE[n_minus, n_plus]


def form_histogram(classes: np.ndarray) -> np.ndarray:
    """Share of each of the ten forms, ``(10,)`` summing to 1."""
    c = np.asarray(classes).ravel()
    h = np.bincount(c[c >= 0], minlength=len(FORMS)).astype(np.float64)
    return h / max(h.sum(), 1.0)


def histogram_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ``0.5 sum |p - q|`` between two form histograms (0: the same
    mix of landforms; 1: no form in common)."""
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())
