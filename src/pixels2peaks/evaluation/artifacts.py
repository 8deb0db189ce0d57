"""Defects of a completed heightmap that a user sees at once (issue [hidden-terrain]).

* :func:`slot_count` -- slots: cells more than ``k dx`` below the median of their ``5 x 5``
  neighbourhood (one- or two-cell-wide trenches and pits);
* :func:`seam_ratio` -- tiling seams: the mean absolute second difference across the rows and
  columns at one residue of the tile pitch, over its mean on the rows and columns of the nearby
  residues, at the worst residue. A grid of seams at a fixed pitch (whatever its offset) raises one residue; a
  seamless map gives ``~1`` (the worst of ``pitch`` noisy means; measured on real DEMs in
  ``docs/benchmarks.md``).

Arrays in, numbers out; heights in metres, ``dx`` in metres.
"""

from __future__ import annotations

import numpy as np

from pixels2peaks.errors import InputError

__all__ = ["slot_count", "slot_mask", "seam_ratio", "seam_profile"]


def slot_mask(z: np.ndarray, dx_m: float, depth_dx: float = 5.0, size: int = 5) -> np.ndarray:
    """Cells more than ``depth_dx * dx_m`` metres below the median of their ``size x size``
    neighbourhood (nearest-cell padding at the borders)."""
    from scipy.ndimage import median_filter

    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise InputError(f"slots need a 2-D heightmap, got shape {z.shape}")
    return median_filter(z, size=size, mode="nearest") - z > depth_dx * float(dx_m)


def slot_count(z: np.ndarray, dx_m: float, depth_dx: float = 5.0, size: int = 5) -> int:
    """Number of :func:`slot_mask` cells (the acceptance asks for 0 at ``depth_dx = 5``)."""
    return int(slot_mask(z, dx_m, depth_dx, size).sum())


def seam_profile(
    z: np.ndarray, pitch: int, border: int = 16, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``|z[i-1] - 2 z[i] + z[i+1]|`` across each row line ``i`` (and column line),
    averaged per residue ``i mod pitch``: two arrays of length ``pitch`` (rows, columns).
    ``border`` lines at each edge are left out (the map's own edge effects: the steep margins of a
    base-level border reach ~10 cells in); ``mask`` (bool,
    optional): only second differences whose three cells are all in it count (the generated
    cells, say: the visible ones are not tiled)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise InputError(f"seams need a 2-D heightmap, got shape {z.shape}")
    if pitch < 2 or min(z.shape) < 2 * pitch:
        raise InputError(f"seams need a map at least two tile pitches ({pitch} cells) a side, got {z.shape}")
    m = np.ones(z.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != z.shape:
        raise InputError(f"mask {m.shape} and heightmap {z.shape} differ in shape")
    out = []
    for axis in (0, 1):
        zz, mm = (z, m) if axis == 0 else (z.T, m.T)
        d2 = np.abs(zz[2:] - 2 * zz[1:-1] + zz[:-2])
        w = (mm[2:] & mm[1:-1] & mm[:-2]).astype(np.float64)
        total, count = (d2 * w).sum(axis=1), w.sum(axis=1)
        line = np.arange(1, d2.shape[0] + 1)  # row k of d2 is the second difference at line k + 1
        keep = (line >= border) & (line < d2.shape[0] + 1 - border)
        prof = []
        for r in range(pitch):
            sel = keep & (line % pitch == r)
            prof.append(total[sel].sum() / max(count[sel].sum(), 1.0))
        out.append(np.array(prof))
    return out[0], out[1]


def seam_ratio(
    z: np.ndarray, pitch: int, border: int = 16, mask: np.ndarray | None = None, window: int = 8
) -> float:
    """Tiling seams: the worst residue ``r`` of :func:`seam_profile` (rows or columns), its mean
    second difference over the mean of the other residues within ``window`` of it (circularly,
    leaving out ``r +- 1``, which a seam between two lines also raises). The acceptance asks for
    ``<= 1.2``. Comparing with the nearby residues, not all of them, keeps broad differences in
    roughness (a rugged massif along a few rows, the steep margin of the map) from counting as
    seams: a seam is one or two lines, at the same residue in every tile."""
    if not 2 <= window < pitch // 2:
        raise InputError(f"seam window must be from 2 to below half the pitch ({pitch}), got {window}")
    worst = 0.0
    for prof in seam_profile(z, pitch, border, mask):
        for r in range(pitch):
            near = [prof[(r + k) % pitch] for k in range(-window, window + 1) if abs(k) > 1]
            worst = max(worst, float(prof[r] / max(float(np.mean(near)), 1e-300)))
    return worst
