"""Drainage-network signatures of eroded terrain: the area exponent tau and the concavity theta.

Both are computed on the **breached** heightmap (``breach_depressions``, Algorithm 1, epsilon
"auto") with **D8 steepest-descent receivers** of the project's routing (``flow_receivers``; on
a breached grid every chain descends strictly to the grid border, so the receivers are plain D8).

* **Drainage area** ``A`` of a cell: the number of cells whose receiver chain passes through it,
  itself included (:func:`drainage_area_cells`), times ``dx^2`` for square metres. Border cells
  are outlets, so areas are truncated by the tile extent -- the same for every compared set.
* **tau** -- Rodriguez-Iturbe & Rinaldo (1997), *Fractal River Basins*, ch. 1 and 3: the
  exceedance probability of drainage area is a power law ``P(A >= a) ~ a^(1 - tau)`` with
  ``tau ~ 1.43`` (1.41-1.45, up to ~1.5) on real fluvial terrain; ``tau = 4/3`` for Scheidegger's
  random directed network. :func:`exceedance_exponent` fits ``log P`` vs ``log a`` by least
  squares at log-spaced thresholds ``a`` within ``tau_range_cells`` (in cells, so dx-free; the
  lower end skips the unchannelled hillslope cells, the upper end stays well below the tile-size
  cut-off of a 256^2 tile).
* **theta** -- Flint's law (Flint 1974; Whipple & Tucker 1999, JGR 104(B8)): channel slope
  ``S = k A^(-theta)`` with the concavity ``theta ~ 0.35-0.6`` on real rivers; ``theta ~ 0``
  on uncorrelated noise (slope independent of area). Channel cells are those with
  ``A >= channel_min_cells`` that lie **outside depressions** (depression depth 0, i.e. not
  flooded by the exact fill). ``S`` (m/m) is the drop of the **original** heights along the D8
  flow path over ``reach_cells`` receiver steps divided by the path length (a reach, not one
  cell, so that 1 m height quantisation of real DEMs does not zero the slopes of large rivers);
  cells with a non-positive drop are skipped. Why not the breached heights: a breached channel
  falls by only epsilon per cell through every carved depression, so carved reaches (frequent on
  noise) put near-zero slopes at large areas and fake a strong concavity (measured: theta ~ 2 on
  fBm that way, ~0.05 with this definition; real tiles 0.2-0.4).
  :func:`concavity` fits ``log S = log k - theta log A`` by least squares over the per-bin
  medians of ``(log A, log S)`` in log-spaced area bins (``bins_per_decade``), so every decade
  of area weighs the same, not the far more numerous small channels.

Per-tile samples (:func:`drainage_samples`) are pooled per set before fitting (one tau and one
theta per set).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pixels2peaks.errors import InputError, check_cell_size
from pixels2peaks.terrain.hydrology import depression_depth
from pixels2peaks.terrain.hydrology.accumulation import drainage_area_cells, flow_network

__all__ = [
    "DrainageConfig",
    "DrainageSamples",
    "drainage_area_cells",
    "flow_network",
    "reach_slope",
    "drainage_samples",
    "exceedance_exponent",
    "concavity",
    "log_binned_fit",
]


@dataclass(frozen=True)
class DrainageConfig:
    """Parameters of the tau / theta estimators (all areas in cells, dx-free).

    ``tau_range_cells``: ``(a_min, a_max)`` of the exceedance fit. ``channel_min_cells``: channel
    threshold of the slope-area fit. ``reach_cells``: D8 steps over which channel slope is
    measured. ``bins_per_decade``: log-spaced thresholds / bins per decade of area.
    """

    tau_range_cells: tuple[float, float] = (10.0, 1000.0)
    channel_min_cells: float = 32.0
    reach_cells: int = 4
    bins_per_decade: int = 5

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.tau_range_cells)
        object.__setattr__(self, "tau_range_cells", (lo, hi))
        if not 1.0 <= lo < hi:
            raise InputError(f"tau_range_cells must satisfy 1 <= a_min < a_max, got {self.tau_range_cells}")
        if not self.channel_min_cells >= 1:
            raise InputError(f"channel_min_cells must be >= 1, got {self.channel_min_cells}")
        if int(self.reach_cells) < 1 or int(self.bins_per_decade) < 1:
            raise InputError("reach_cells and bins_per_decade must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tau_range_cells"] = list(self.tau_range_cells)
        return d


@dataclass(frozen=True)
class DrainageSamples:
    """Per-tile raw material of the pooled fits: drainage area of every cell (cells), and the
    ``(area cells, slope m/m)`` pairs of the channel cells."""

    area_cells: np.ndarray
    channel_area_cells: np.ndarray
    channel_slope: np.ndarray


def reach_slope(z: np.ndarray, rec: np.ndarray, dx_m: float, reach_cells: int) -> np.ndarray:
    """Downstream slope (m/m) of every cell of ``z`` (metres): the height drop along its D8 flow
    path ``rec`` over ``reach_cells`` receiver steps (fewer if an outlet comes first) over the
    path length (dx or sqrt(2) dx per step); 0 at outlets."""
    dx = check_cell_size(dx_m)
    H, W = z.shape
    zf = np.asarray(z, dtype=np.float64).ravel()
    idx = np.arange(zf.size)
    j = idx.copy()
    length = np.zeros(zf.size)
    for _ in range(int(reach_cells)):
        r = rec[j]
        diag = ((j // W) != (r // W)) & ((j % W) != (r % W))
        length += np.where(r == j, 0.0, np.where(diag, math.sqrt(2.0) * dx, dx))
        j = r
    drop = zf - zf[j]
    return np.where(length > 0, drop / np.where(length > 0, length, 1.0), 0.0)


def drainage_samples(z: np.ndarray, dx_m: float, cfg: DrainageConfig = DrainageConfig()) -> DrainageSamples:
    """Drainage areas of all cells and the channel ``(A, S)`` pairs of one tile (see module doc)."""
    z = np.asarray(z, dtype=np.float64)
    _, rec = flow_network(z)
    a = drainage_area_cells(rec)
    s = reach_slope(z, rec, dx_m, cfg.reach_cells)
    dry = depression_depth(z).ravel() == 0
    ch = (a >= cfg.channel_min_cells) & (rec != np.arange(rec.size)) & dry & (s > 0)
    return DrainageSamples(a.astype(np.float32), a[ch].astype(np.float32), s[ch].astype(np.float32))


def _log_edges(lo: float, hi: float, per_decade: int) -> np.ndarray:
    n = max(2, int(math.ceil(math.log10(hi / lo) * per_decade)) + 1)
    return np.logspace(math.log10(lo), math.log10(hi), n)


def exceedance_exponent(area_cells: np.ndarray, cfg: DrainageConfig = DrainageConfig()) -> float:
    """tau of ``P(A >= a) ~ a^(1 - tau)``: least squares of ``log P(A >= a)`` on ``log a`` at
    log-spaced thresholds in ``cfg.tau_range_cells``. NaN if too few cells reach the range."""
    a = np.sort(np.asarray(area_cells, dtype=np.float64).ravel())
    if a.size == 0:
        return float("nan")
    th = _log_edges(*cfg.tau_range_cells, cfg.bins_per_decade)
    p = 1.0 - np.searchsorted(a, th, side="left") / a.size
    ok = p > 0
    if ok.sum() < 3:
        return float("nan")
    slope = np.polyfit(np.log(th[ok]), np.log(p[ok]), 1)[0]
    return float(1.0 - slope)


def log_binned_fit(x: np.ndarray, y: np.ndarray, per_decade: int, min_count: int = 3) -> tuple[float, float]:
    """``(slope, intercept)`` of ``log y = intercept + slope log x`` by least squares over the
    medians of ``(log x, log y)`` in log-spaced bins of ``x`` (bins with < ``min_count`` points
    are dropped). NaNs if fewer than 2 bins remain. Natural logs; ``x, y > 0``."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 * min_count or x.max() <= x.min():
        return float("nan"), float("nan")
    edges = _log_edges(x.min(), x.max() * (1 + 1e-9), per_decade)
    b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    lx, ly = np.log(x), np.log(y)
    cx, cy = [], []
    for k in range(edges.size - 1):
        m = b == k
        if m.sum() >= min_count:
            cx.append(np.median(lx[m]))
            cy.append(np.median(ly[m]))
    if len(cx) < 2 or np.ptp(cx) == 0:
        return float("nan"), float("nan")
    slope, icpt = np.polyfit(cx, cy, 1)
    return float(slope), float(icpt)


def concavity(area_cells: np.ndarray, slope: np.ndarray, cfg: DrainageConfig = DrainageConfig()) -> float:
    """theta of Flint's law ``S = k A^(-theta)`` over channel cells (``A >= channel_min_cells``,
    ``S > 0``), by :func:`log_binned_fit`. NaN if the channel cells span less than 2 bins."""
    a = np.asarray(area_cells, dtype=np.float64)
    s = np.asarray(slope, dtype=np.float64)
    ch = a >= cfg.channel_min_cells
    slope_ll, _ = log_binned_fit(a[ch], s[ch], cfg.bins_per_decade)
    return -slope_ll
