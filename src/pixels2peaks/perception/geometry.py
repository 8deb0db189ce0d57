"""Pointmap -> visible heightmap (paper §4.1-4.2): DBSCAN cleaning, pitch search (Eq. 1), scale
fit to the elevation prior, projection to ``Z_V`` / ``M_V`` and the camera pose.

Pure NumPy / scikit-learn; every step is scale-invariant in the input pointmap (its unit is
arbitrary until :func:`fit_scale`).

Frames: the input pointmap is in the camera frame (x right, y down, z forward). A candidate pitch
``theta`` maps it to a level frame with :class:`pixels2peaks.camera.Camera`'s own rotation for
``yaw = 0`` (looking north), ``pitch = theta``: ``world = R(theta) @ p``, so x east, y north,
z up and the camera at the origin. The pitch found is therefore directly the camera's
``pitch_deg`` and the final pose uses ``yaw_deg = 0``.

Choices (not fixed by the paper):

* **DBSCAN space**: ``(x/z, y/z, w s ln z)`` (``s`` = typical image-plane neighbour spacing) (image-plane coordinates and log depth), so density
  does not fall off with distance and the result does not depend on the pointmap's unit;
  ``eps = eps_scale x`` the median k-distance (``k = min_samples``) of that space.
* **Pitch-search grid**: ``dx = extent / search_cells`` (extent = larger side of the projected
  bounding box), slope = :func:`pixels2peaks.terrain.attributes.slope` over occupied cells whose
  four neighbours are occupied (central differences need them).
* **Slope gain**: a geometry backend whose pointmaps are systematically flatter (or steeper)
  than the scene declares a ``slope_gain`` ``g`` (``tan s_points ~ g tan s_true``, measured on
  renders of training DEMs); the search then matches ``atan(g tan s_prior)``
  (:func:`pointmap_slope_deg`), so the prior stays a statement about the real terrain.
* **Pitch refinement**: Eq. 1's grid argmin jumps between candidates where ``s(theta)`` is flat
  (re-saving the bundled photo as JPEG moved the pitch by 1 deg and dx by 12 %); the curve is
  smoothed and the pitch interpolated between candidates, or taken at the fitted bottom of the U
  where the prior is below the whole curve (:func:`_refined_pitch`).
* **Pitch branch**: the slope-vs-pitch curve is U-shaped, so a prior slope is matched by two
  pitches; by default only pitches at or above the curve's minimum count (the terrain rises away
  from the camera on average, as seen terrain does): ``branch="rising"``.
* **Projection rule**: ``Z_V`` = the **maximum** height of the points in a cell (the surface seen
  from above), which is :func:`pixels2peaks.camera.project_pointmap`'s rule.
* **Extent**: the bounding box of the points (and, by default, the camera's xy), origin at its
  south-west corner; default ``dx`` makes the larger side span ``target_cells`` (1024) cells.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit

from pixels2peaks.camera import Camera, project_pointmap
from pixels2peaks.errors import InputError

PitchBranch = Literal["rising", "any"]

__all__ = [
    "PitchBranch",
    "CleanOptions",
    "clean_points",
    "pitch_rotation",
    "rotate_points",
    "heightmap_max",
    "mean_slope_deg",
    "PitchSearch",
    "search_pitch",
    "pointmap_slope_deg",
    "ScaleFit",
    "fit_scale",
    "VisibleHeightmap",
    "project_visible",
    "camera_to_level",
    "ReconstructOptions",
    "reconstruct",
]


# ----------------------------------------------------------------------------------------------
# DBSCAN cleaning
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanOptions:
    """DBSCAN parameters (scene-relative).

    eps_scale: ``eps`` = this x the median distance to the ``min_samples``-th nearest neighbour
        in the DBSCAN space (the usual k-distance heuristic, measured on the data).
    min_samples: DBSCAN ``min_samples`` (including the point itself).
    log_depth_weight: weight of ``ln z`` against image-plane coordinates, in units of the
        typical image-plane spacing of neighbouring points (a depth jump by a factor 2 is then
        ``0.69 x`` this many "pixels" away; a surface at 1 deg grazing incidence with ~1 mrad
        pixels changes ``ln z`` by ~0.06 a pixel).
    min_cluster_fraction: clusters smaller than this fraction of the points are dropped too.
    max_points: DBSCAN runs on at most this many points (a strided subsample); the others
        follow their nearest subsample point if it lies within ``eps``.
    """

    eps_scale: float = 1.5
    min_samples: int = 8
    log_depth_weight: float = 20.0
    min_cluster_fraction: float = 0.005
    max_points: int = 60_000
    seed: int = 0


def _features(points: np.ndarray, w: float) -> np.ndarray:
    z = points[:, 2]
    return np.stack([points[:, 0] / z, points[:, 1] / z, w * np.log(z)], axis=1)


def clean_points(points: np.ndarray, options: CleanOptions = CleanOptions()) -> np.ndarray:
    """Boolean keep-mask of ``(N, 3)`` camera-frame points (``z > 0``) after DBSCAN.

    Noise points and clusters smaller than ``min_cluster_fraction`` are removed.
    """
    from sklearn.cluster import DBSCAN
    from sklearn.neighbors import NearestNeighbors

    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"points must have shape (N, 3), got {p.shape}")
    n = p.shape[0]
    keep = np.zeros(n, dtype=bool)
    ok = np.isfinite(p).all(axis=1) & (p[:, 2] > 0)
    idx = np.flatnonzero(ok)
    if idx.size < options.min_samples:
        return keep
    if idx.size > options.max_points:
        rng = np.random.default_rng(options.seed)
        sub = np.sort(rng.choice(idx.size, options.max_points, replace=False))
    else:
        sub = np.arange(idx.size)
    # log-depth weight in units of the typical image-plane spacing of neighbouring points
    plane = _features(p[idx], 0.0)[:, :2]
    probe = plane[sub][:: max(1, sub.size // 5000)]
    d2, _ = NearestNeighbors(n_neighbors=2).fit(plane[sub]).kneighbors(probe)
    spacing = float(np.median(d2[:, 1])) * math.sqrt(sub.size / idx.size)
    if spacing <= 0:
        spacing = float(d2[:, 1].mean()) or 1e-6
    f = _features(p[idx], options.log_depth_weight * spacing)
    fs = f[sub]
    k = min(options.min_samples, fs.shape[0] - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(fs)
    probe = fs[:: max(1, fs.shape[0] // 5000)]
    d, _ = nn.kneighbors(probe)
    base = float(np.median(d[:, k]))
    if base <= 0:  # duplicated points: fall back to the mean positive distance
        pos = d[:, k][d[:, k] > 0]
        base = float(pos.mean()) if pos.size else 1e-9
    eps = options.eps_scale * base
    labels = DBSCAN(eps=eps, min_samples=options.min_samples).fit_predict(fs)
    good = labels >= 0
    if good.any():
        counts = np.bincount(labels[good])
        big = counts >= max(1, math.ceil(options.min_cluster_fraction * fs.shape[0]))
        good &= big[np.where(good, labels, 0)]
    if sub.size == idx.size:
        keep[idx] = good
        return keep
    dist, j = nn.kneighbors(f, n_neighbors=1)  # the rest follow their nearest subsample point
    keep[idx] = good[j[:, 0]] & (dist[:, 0] <= eps)
    return keep


# ----------------------------------------------------------------------------------------------
# rotation, orthographic heightmap, slope
# ----------------------------------------------------------------------------------------------


def pitch_rotation(pitch_deg: float) -> np.ndarray:
    """``R(theta)``: camera frame -> level frame (x east, y north, z up) for yaw 0 (the
    :class:`~pixels2peaks.camera.Camera` rotation)."""
    return Camera(2, 2, 60.0, (0.0, 0.0, 0.0), yaw_deg=0.0, pitch_deg=pitch_deg).rotation


def rotate_points(points: np.ndarray, pitch_deg: float) -> np.ndarray:
    """``(N, 3)`` camera-frame points -> level frame at ``pitch_deg``."""
    return np.asarray(points, dtype=np.float64) @ pitch_rotation(pitch_deg).T


def camera_to_level(points: np.ndarray, pitch_deg: float) -> np.ndarray:
    """Alias of :func:`rotate_points` for ``(..., 3)`` arrays."""
    p = np.asarray(points, dtype=np.float64)
    return (p.reshape(-1, 3) @ pitch_rotation(pitch_deg).T).reshape(p.shape)


def heightmap_max(
    points: np.ndarray, dx: float, origin: tuple[float, float] | None = None,
    shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Orthographic max-height heightmap of level-frame ``(N, 3)`` points.

    ``origin`` = world ``(x, y)`` of the grid's south-west corner (default: the points' minimum).
    Returns ``(Z (H, W) float64 with NaN, occupied (H, W) bool, origin)``; row 0 is north.
    """
    p = np.asarray(points, dtype=np.float64)
    if origin is None:
        origin = (float(p[:, 0].min()), float(p[:, 1].min()))
    x = p[:, 0] - origin[0]
    y = p[:, 1] - origin[1]
    if shape is None:
        w = max(1, int(math.floor(float(x.max()) / dx)) + 1)
        h = max(1, int(math.floor(float(y.max()) / dx)) + 1)
    else:
        h, w = shape
    col = np.floor(x / dx).astype(np.int64)
    row = h - 1 - np.floor(y / dx).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = np.full(h * w, -np.inf)
    np.maximum.at(flat, row[inside] * w + col[inside], p[inside, 2])
    occ = np.isfinite(flat).reshape(h, w)
    return np.where(occ, flat.reshape(h, w), np.nan), occ, origin


def mean_slope_deg(z: np.ndarray, occupied: np.ndarray, dx: float) -> tuple[float, int]:
    """Mean rotation-invariant slope (degrees) over occupied cells whose 4 neighbours are
    occupied; returns ``(mean, number of cells)`` (``nan, 0`` if none)."""
    from pixels2peaks.terrain.attributes import slope

    occ = np.asarray(occupied, dtype=bool)
    inner = occ.copy()
    inner[0, :] = inner[-1, :] = False
    inner[:, 0] = inner[:, -1] = False
    inner[1:-1, 1:-1] &= occ[:-2, 1:-1] & occ[2:, 1:-1] & occ[1:-1, :-2] & occ[1:-1, 2:]
    n = int(inner.sum())
    if n == 0:
        return float("nan"), 0
    filled = np.where(occ, z, 0.0)
    s = slope(filled.astype(np.float64), dx, unit="deg")
    return float(np.mean(s[inner])), n


# ----------------------------------------------------------------------------------------------
# pitch search (Eq. 1)
# ----------------------------------------------------------------------------------------------


@njit(cache=True)
def _candidate_slopes(p, rots, cells, trim):  # pragma: no cover - compiled
    """For each rotation ``rots[i]`` and each grid size ``cells[g]``: :func:`heightmap_max` of
    the rotated points on a grid whose larger side spans ``cells[g]`` cells, then
    :func:`mean_slope_deg` (same rules, one pass). The grids span the ``[trim, 1 - trim]``
    quantiles of x and y (points outside are left out), so a few stray points do not set their
    cell size; the rotation and the extent are computed once per candidate. Returns ``(mean
    slope in degrees, number of cells)``, each ``(len(rots), len(cells))`` (``nan, 0`` if none)."""
    k = rots.shape[0]
    n = p.shape[0]
    out = np.full((k, cells.shape[0]), np.nan)
    cnt = np.zeros((k, cells.shape[0]), np.int64)
    q = np.empty((n, 3))
    for i in range(k):
        r = rots[i]
        for j in range(n):
            for a in range(3):
                q[j, a] = r[a, 0] * p[j, 0] + r[a, 1] * p[j, 1] + r[a, 2] * p[j, 2]
        if trim > 0.0:
            x0, x1 = np.quantile(q[:, 0], trim), np.quantile(q[:, 0], 1.0 - trim)
            y0, y1 = np.quantile(q[:, 1], trim), np.quantile(q[:, 1], 1.0 - trim)
        else:  # the same as the 0 / 1 quantiles, without the sort
            x0, x1 = q[:, 0].min(), q[:, 0].max()
            y0, y1 = q[:, 1].min(), q[:, 1].max()
        ext = max(x1 - x0, y1 - y0)
        if not ext > 0:
            continue
        for g in range(cells.shape[0]):
            dx = ext / cells[g]
            w = max(1, int(math.floor((x1 - x0) / dx)) + 1)
            h = max(1, int(math.floor((y1 - y0) / dx)) + 1)
            grid = np.full((h, w), -np.inf)
            for j in range(n):
                if not (x0 <= q[j, 0] <= x1 and y0 <= q[j, 1] <= y1):
                    continue
                col = int(math.floor((q[j, 0] - x0) / dx))
                row = h - 1 - int(math.floor((q[j, 1] - y0) / dx))
                if 0 <= col < w and 0 <= row < h and q[j, 2] > grid[row, col]:
                    grid[row, col] = q[j, 2]
            acc = 0.0
            m = 0
            for row in range(1, h - 1):
                for col in range(1, w - 1):
                    if (grid[row, col] > -np.inf and grid[row - 1, col] > -np.inf
                            and grid[row + 1, col] > -np.inf and grid[row, col - 1] > -np.inf
                            and grid[row, col + 1] > -np.inf):
                        gx = (grid[row, col + 1] - grid[row, col - 1]) / (2.0 * dx)
                        gy = (grid[row - 1, col] - grid[row + 1, col]) / (2.0 * dx)
                        acc += math.degrees(math.atan(math.sqrt(gx * gx + gy * gy)))
                        m += 1
            if m > 0:
                out[i, g] = acc / m
                cnt[i, g] = m
    return out, cnt


@dataclass(frozen=True)
class PitchSearch:
    """Result of :func:`search_pitch`: best pitch and the per-candidate slopes."""

    pitch_deg: float
    candidates_deg: np.ndarray
    slopes_deg: np.ndarray
    target_slope_deg: float
    step_deg: float


def search_pitch(
    points: np.ndarray,
    target_slope_deg: float,
    *,
    pitch_range_deg: tuple[float, float] = (-45.0, 45.0),
    step_deg: float = 0.5,
    search_cells: int = 256,
    min_cells: int = 16,
    max_points: int = 200_000,
    seed: int = 0,
    branch: PitchBranch = "rising",
    extent_trim: float = 0.0,
    grid_scales: tuple[float, ...] = (1.0,),
) -> PitchSearch:
    """Eq. 1: ``theta* = argmin_i |s_i - s_prior|`` over a pitch grid.

    For each candidate the ``(N, 3)`` camera-frame points are rotated by ``R(theta_i)``, projected
    orthographically to a max-height heightmap whose larger side spans ``search_cells`` cells, and
    ``s_i`` is the mean slope of the cells with four occupied neighbours. Candidates with fewer
    than ``min_cells`` such cells are skipped (``s_i = nan``). Ties go to the smallest ``|theta|``.

    Our choices against noise (both off by default here, on in :class:`ReconstructOptions`):
    ``extent_trim`` spans each grid over the ``[trim, 1 - trim]`` quantiles of x and y, so a few
    stray far points do not set the cell size; ``grid_scales`` averages ``s_i`` over grids of
    ``search_cells x g`` cells, so ``s(theta)`` does not hinge on one cell size (the mean slope of
    a sparse far-field cloud changes with the grid, and re-saving a photo as JPEG moved the pitch
    by up to 6 deg on the shared photos).
    At most ``max_points`` points (a seeded random subset) are used.

    ``s(theta)`` is U-shaped: it is smallest at the pitch that levels the cloud and grows on both
    sides, so a prior slope is usually matched twice. ``branch="rising"`` (our choice) keeps only
    candidates at or above the minimum's pitch, where the terrain rises away from the camera on
    average, as seen terrain does (slopes facing away are hidden); ``"any"`` is the plain argmin.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 3:
        raise InputError("pitch search needs at least 3 points of shape (N, 3)")
    if p.shape[0] > max_points:
        p = p[np.random.default_rng(seed).choice(p.shape[0], max_points, replace=False)]
    lo, hi = (float(v) for v in pitch_range_deg)
    if not (-90 < lo <= hi < 90) or step_deg <= 0:
        raise InputError(f"invalid pitch grid {pitch_range_deg!r} step {step_deg!r}")
    if not 0 < float(target_slope_deg) < 90:
        raise InputError(f"target slope must be in (0, 90) degrees, got {target_slope_deg!r}")
    cands = np.arange(lo, hi + 1e-9, step_deg)
    rots = np.stack([pitch_rotation(float(th)) for th in cands])
    if not 0.0 <= extent_trim < 0.5:
        raise InputError(f"extent trim must be in [0, 0.5), got {extent_trim!r}")
    if not grid_scales or min(grid_scales) <= 0:
        raise InputError(f"grid scales must be positive, got {grid_scales!r}")
    cells = np.array([max(8, int(round(search_cells * g))) for g in grid_scales], np.int64)
    sl, cnt = _candidate_slopes(np.ascontiguousarray(p), rots, cells, float(extent_trim))
    with warnings.catch_warnings():  # a candidate that no grid covers: nan, "mean of empty slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        # one curve per grid size, their mean is the search's s(theta); grids too coarse for a
        # sparse cloud drop out of a candidate's mean
        slopes = np.nanmean(np.where(cnt >= min_cells, sl, np.nan), axis=1)
    if not np.isfinite(slopes).any():
        raise InputError("pitch search failed: the point cloud covers too few heightmap cells")
    if branch not in ("rising", "any"):
        raise InputError(f"unknown pitch branch {branch!r}; choose rising or any")
    pitch = _refined_pitch(cands, slopes, float(target_slope_deg), branch)
    return PitchSearch(pitch, cands, slopes, float(target_slope_deg), float(step_deg))


def _smooth(v: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 1D curve with NaN gaps (normalised by the finite weights)."""
    from scipy.ndimage import gaussian_filter1d

    ok = np.isfinite(v)
    num = gaussian_filter1d(np.where(ok, v, 0.0), sigma, mode="nearest")
    den = gaussian_filter1d(ok.astype(float), sigma, mode="nearest")
    return np.where(ok, num / np.maximum(den, 1e-12), np.nan)


def _refined_pitch(cands: np.ndarray, slopes: np.ndarray, target: float, branch: PitchBranch) -> float:
    """Eq. 1's ``argmin |s_i - s_prior|``, made a continuous function of the points (our choice):
    the curve ``s(theta)`` is smoothed over ~1 deg; the pitch is then the linear-interpolated
    crossing of the target on the chosen branch, or, where the target lies below the whole
    curve (the argmin would be the flat bottom of the U, where noise decides), the vertex of a
    parabola fitted to the bottom. A single candidate is returned as it is."""
    if cands.size == 1:
        return float(cands[0])
    step = float(cands[1] - cands[0])
    s = _smooth(slopes, max(1.0, 0.5 / step))
    i_min = int(np.nanargmin(s))
    lo = i_min if branch == "rising" else 0
    d = s - target
    best = None
    for i in range(lo, cands.size - 1):  # crossings: sign changes of d between finite neighbours
        a, b = d[i], d[i + 1]
        if not (np.isfinite(a) and np.isfinite(b)) or a * b > 0 or (a == 0 and b == 0):
            continue
        t = 0.0 if a == b else a / (a - b)
        th = float(cands[i] + t * step)
        if best is None or abs(th) < abs(best):  # two crossings ("any"): the smaller |theta|
            best = th
        if branch == "rising":
            break
    if best is not None:
        return best
    finite = np.flatnonzero(np.isfinite(s))
    if np.nanmin(s) >= target:  # the target is below the curve: the bottom of the U
        near = finite[np.abs(finite - i_min) <= max(2, round(3.0 / step))]
        if near.size >= 3:
            c2, c1, _ = np.polyfit(cands[near], s[near], 2)
            if c2 > 0:
                return float(np.clip(-c1 / (2.0 * c2), cands[near].min(), cands[near].max()))
        return float(cands[i_min])
    j = finite[finite >= lo]  # the target is above the whole branch (a steep prior): its nearest
    return float(cands[j[np.argmin(np.abs(d[j]))]])


# ----------------------------------------------------------------------------------------------
# scale fit and projection
# ----------------------------------------------------------------------------------------------


def pointmap_slope_deg(true_slope_deg: float, slope_gain: float = 1.0) -> float:
    """Mean slope (degrees) a pointmap with slope gain ``g`` shows for terrain whose true mean
    slope is ``true_slope_deg``: ``atan(g tan s)`` (``g`` = 1: unchanged).

    >>> round(pointmap_slope_deg(45.0, 0.5), 3)
    26.565
    """
    g, s = float(slope_gain), float(true_slope_deg)
    if not (math.isfinite(g) and g > 0.0):
        raise InputError(f"slope gain must be a positive number, got {slope_gain!r}")
    if not 0.0 < s < 90.0:
        raise InputError(f"slope must be in (0, 90) degrees, got {true_slope_deg!r}")
    return math.degrees(math.atan(g * math.tan(math.radians(s))))


@dataclass(frozen=True)
class ScaleFit:
    """``level_fitted = scale * level + offset`` (offset in metres, ``(3,)``)."""

    scale: float
    offset: np.ndarray

    def apply(self, level_points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(level_points, dtype=np.float64) + self.offset


def fit_scale(
    level_points: np.ndarray,
    elevation_range_m: tuple[float, float],
    *,
    include_xy: np.ndarray | None = None,
    percentiles: tuple[float, float] = (0.0, 100.0),
) -> ScaleFit:
    """Uniform scale + translation so the points' heights span ``elevation_range_m`` exactly and
    their xy bounding box (together with ``include_xy`` points, e.g. the camera) starts at
    ``(0, 0)``. ``percentiles`` makes the height span robust (default: min/max)."""
    p = np.asarray(level_points, dtype=np.float64)
    z0, z1 = (float(v) for v in elevation_range_m)
    if not z1 > z0:
        raise InputError(f"elevation range needs z_max > z_min, got ({z0:g}, {z1:g})")
    lo, hi = np.percentile(p[:, 2], percentiles)
    if not hi > lo:
        raise InputError("the point cloud is flat at this pitch: cannot fit the elevation range")
    s = (z1 - z0) / float(hi - lo)
    xy = p[:, :2]
    if include_xy is not None:
        xy = np.concatenate([xy, np.asarray(include_xy, dtype=np.float64).reshape(-1, 2)])
    off = np.array([-s * xy[:, 0].min(), -s * xy[:, 1].min(), z0 - s * float(lo)])
    return ScaleFit(s, off)


@dataclass(frozen=True)
class VisibleHeightmap:
    """``Z_V`` (float32, NaN unseen), ``M_V`` (bool), cell size, camera pose, and diagnostics."""

    z: np.ndarray
    mask: np.ndarray
    dx_m: float
    camera: Camera
    pitch: PitchSearch | None
    scale: ScaleFit
    points_kept: int
    points_total: int


def project_visible(
    level_points: np.ndarray,
    fit: ScaleFit,
    *,
    dx_m: float | None = None,
    target_cells: int = 1024,
    max_cells: int = 8192,
    camera_xy: tuple[float, float] | None = (0.0, 0.0),
    margin_cells: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, float, ScaleFit]:
    """Scale the level-frame points with ``fit`` and rasterise them (max height per cell).

    The fitted xy bounding box ``[0, X] x [0, Y]`` (incl. ``camera_xy`` if given) is shifted by
    ``margin_cells`` cells so no point sits on the grid's outer edge; ``dx_m`` defaults to
    ``max(X, Y) / (target_cells - 2 margin_cells)`` so the larger side has ``target_cells``
    cells. Returns ``(Z_V, M_V, dx_m, fit)`` where ``fit`` includes the margin shift.
    """
    q = fit.apply(level_points)
    xs = [q[:, 0].max()]
    ys = [q[:, 1].max()]
    if camera_xy is not None:
        c = fit.apply(np.array([[camera_xy[0], camera_xy[1], 0.0]]))[0]
        xs.append(c[0])
        ys.append(c[1])
    ext_x, ext_y = max(float(max(xs)), 0.0), max(float(max(ys)), 0.0)
    if dx_m is None:
        dx_m = max(ext_x, ext_y) / max(target_cells - 2.0 * margin_cells, 1.0)
    if not (dx_m and math.isfinite(dx_m) and dx_m > 0):
        raise InputError(f"dx must be a positive number of metres, got {dx_m!r}")
    m = margin_cells * dx_m
    w = max(1, int(math.ceil((ext_x + 2 * m) / dx_m - 1e-9)))
    h = max(1, int(math.ceil((ext_y + 2 * m) / dx_m - 1e-9)))
    if max(h, w) > max_cells:
        raise InputError(
            f"--dx is too small for this scene: the heightmap would be {h} x {w} cells "
            f"(limit {max_cells} a side); use a larger --dx"
        )
    fit = ScaleFit(fit.scale, fit.offset + np.array([m, m, 0.0]))
    zv, mv = project_pointmap(q + np.array([m, m, 0.0]), (h, w), float(dx_m))
    return zv, mv, float(dx_m), fit


@dataclass(frozen=True)
class ReconstructOptions:
    """Options of :func:`reconstruct` (see the individual steps)."""

    clean: CleanOptions | None = CleanOptions()
    pitch_range_deg: tuple[float, float] = (-45.0, 45.0)
    pitch_step_deg: float = 0.5
    search_cells: int = 256
    #: pitch-search grids: quantile extent and cell-size factors (:func:`search_pitch`)
    search_extent_trim: float = 0.005
    search_grid_scales: tuple[float, ...] = (0.5, 0.595, 0.707, 0.841, 1.0, 1.189, 1.414, 1.682)
    pitch_branch: PitchBranch = "rising"
    #: the height quantiles (percent) that the scale fit maps to the elevation range (:func:`fit_scale`)
    height_percentiles: tuple[float, float] = (0.0, 100.0)
    dx_m: float | None = None
    target_cells: int = 1024
    max_cells: int = 8192
    include_camera: bool = True
    #: ``Z_V`` from the points one by one (``"points"``) or from the pointmap meshed in image
    #: space, cut at ridgelines and depth jumps over ``max_jump`` (``"mesh"``,
    #: :mod:`pixels2peaks.perception.surface`)
    surface: Literal["points", "mesh"] = "mesh"
    max_jump: float = 3.0
    #: seen cells more than this many dx above / below their 5 x 5 seen median leave ``M_V``
    #: (pits and pillars, :func:`pixels2peaks.perception.surface.drop_outliers`); ``None``: keep all
    outlier_dx: float | None = 5.0
    #: fill the depressions of ``Z_V`` enclosed by seen cells (:func:`pixels2peaks.terrain.
    #: hydrology.fill_enclosed`): they cannot drain through the completion
    fill_enclosed: bool = True

    def __post_init__(self) -> None:
        if self.surface not in ("points", "mesh"):
            raise InputError(f"surface must be 'points' or 'mesh', got {self.surface!r}")


def reconstruct(
    points: np.ndarray,
    valid: np.ndarray,
    fov_x_deg: float,
    mean_slope_deg_prior: float,
    elevation_range_m: tuple[float, float],
    options: ReconstructOptions = ReconstructOptions(),
    *,
    slope_gain: float = 1.0,
) -> VisibleHeightmap:
    """Camera-frame pointmap ``(H, W, 3)`` + mask -> :class:`VisibleHeightmap` (§4.1-4.2).

    ``mean_slope_deg_prior`` is the real terrain's mean slope; the pitch search (Eq. 1) matches
    :func:`pointmap_slope_deg` of it with the geometry's ``slope_gain``."""
    target = pointmap_slope_deg(mean_slope_deg_prior, slope_gain)
    pm = np.asarray(points, dtype=np.float64)
    if pm.ndim != 3 or pm.shape[2] != 3:
        raise InputError(f"pointmap must have shape (H, W, 3), got {pm.shape}")
    m = np.asarray(valid, dtype=bool) & np.isfinite(pm).all(axis=2) & (pm[..., 2] > 0)
    pts = pm[m]
    total = int(pts.shape[0])
    if total < 16:
        raise InputError(f"only {total} terrain point(s) in the image; nothing to reconstruct")
    if options.clean is not None:
        pts = pts[clean_points(pts, options.clean)]
    if pts.shape[0] < 16:
        raise InputError("DBSCAN removed almost every terrain point; nothing to reconstruct")
    ps = search_pitch(
        pts,
        target,
        pitch_range_deg=options.pitch_range_deg,
        step_deg=options.pitch_step_deg,
        search_cells=options.search_cells,
        branch=options.pitch_branch,
        extent_trim=options.search_extent_trim,
        grid_scales=options.search_grid_scales,
    )
    level = rotate_points(pts, ps.pitch_deg)
    cam_xy = np.zeros((1, 2)) if options.include_camera else None
    fit = fit_scale(level, elevation_range_m, include_xy=cam_xy, percentiles=options.height_percentiles)
    zv, mv, dx, fit = project_visible(
        level,
        fit,
        dx_m=options.dx_m,
        target_cells=options.target_cells,
        max_cells=options.max_cells,
        camera_xy=(0.0, 0.0) if options.include_camera else None,
    )
    pos = fit.apply(np.zeros((1, 3)))[0]
    h, w = pm.shape[:2]
    cam = Camera(w, h, fov_x_deg, tuple(float(v) for v in pos), yaw_deg=0.0,
                 pitch_deg=ps.pitch_deg, dx_m=dx)
    return VisibleHeightmap(zv, mv, dx, cam, ps, fit, int(pts.shape[0]), total)
