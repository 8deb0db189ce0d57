"""View bound ``Z_max`` (the paper's Algorithm 2, "Ray-trace View Bound", Sec. 5.2).

``Z_max`` is a per-cell cap on the elevation of the unseen terrain: as long as every unseen cell
stays at or below it, the visible terrain stays unoccluded and no new silhouette appears (the
view-guidance loss of Eq. 9 penalises ``ReLU(Z - Z_max)`` on unseen cells).

Rays are cast from the camera through a ``sx x sy`` grid of points in every pixel (sky pixels
included) and walk the heightmap cell by cell (exact traversal: every cell whose footprint a ray
crosses is visited, the paper's step ``delta`` is replaced by the exact cell crossings). Terrain
model: the paper's, each known cell is a flat-topped column of height ``Z_V`` (``surface =
"blocks"`` in :mod:`pixels2peaks.camera.render`); unknown (NaN) cells are empty. A ray stops at
the first column it enters strictly below the top; for every cell it crossed before, ``Z_max =
min(Z_max, lowest ray z over the cell footprint)`` (Algorithm 2, line 11).

Output conventions:

* known (finite ``Z_V``) cells keep ``Z_V``;
* unknown cells no ray crossed stay ``+inf`` ("unbounded"): outside the view frustum, beyond the
  grid border seen by the rays, or hidden behind terrain that fills the image up to its top edge.
  Files store them as NaN (GeoTIFF nodata, ``docs/formats.md``);
* values are float32 rounded **down** (toward -inf), so a float32 height ``<= Z_max`` is below
  the exact bound.

Guarantee (blocks model, for the rays cast; ``supersample=(1, 1)`` = the pixel-centre rays of
:func:`~pixels2peaks.camera.render`): with ``Z_V`` the heights of the cells seen in a blocks
render, keeping every unseen cell ``<= Z_max`` leaves every pixel's depth and hit mask unchanged,
and raising any unseen cell with finite ``Z_max`` above ``Z_max`` (by more than the float32
rounding, ~1 ulp) changes the depth or mask of at least one pixel. For the smooth (bilinear)
terrain of the photos the bound is the paper's cell-level approximation: bilinear interpolation
between an unseen cell and its neighbours can rise above a skimming ray by up to about the
height difference between neighbouring cells.

Speed: rays are walked with max-mip skipping (a node is skipped when the ray's lowest point over
it is above every known column in it and above every bound already found in it), lower image
rows first so that higher rays mostly skip; ``method="dda"`` is the plain cell-by-cell walk.
Both give the same result (tested bit for bit).

Supersampling: with ``supersample=None`` the rays are spaced at most about one cell apart
horizontally at the farthest grid corner (``sx = ceil(D_max / (f_px dx))``, capped at 16), so no
cell inside the frustum is skipped between neighbouring rays; ``sy = 1`` (cells between two rays
of one pixel column are crossed by the upper ray before it lands).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from pixels2peaks.camera import _raycast as rc
from pixels2peaks.camera.model import Camera
from pixels2peaks.camera.render import check_heights
from pixels2peaks.errors import InputError, check_cell_size

__all__ = ["view_bound", "auto_supersample"]

MAX_SUPERSAMPLE = 16


def auto_supersample(shape: tuple[int, int], dx_m: float, camera: Camera) -> tuple[int, int]:
    """``(sx, sy)`` rays per pixel so neighbouring rays are <= ~1 cell apart horizontally at the
    farthest grid corner: ``sx = ceil(D_max / (f_px dx))`` in ``[1, 16]``, ``sy = 1``.

    >>> auto_supersample((1024, 1024), 1.0, Camera(1024, 768, 60.0, (0.0, 0.0, 10.0)))
    (2, 1)
    """
    h, w = shape
    x, y, _ = camera.position_m
    corners = [(0.0, 0.0), (w * dx_m, 0.0), (0.0, h * dx_m), (w * dx_m, h * dx_m)]
    d_max = max(math.hypot(cx - x, cy - y) for cx, cy in corners)
    sx = math.ceil(d_max / (camera.focal_px * dx_m) - 1e-9)
    return int(min(max(sx, 1), MAX_SUPERSAMPLE)), 1


def _check_supersample(ss: Any) -> tuple[int, int]:
    if isinstance(ss, (int, np.integer)) and not isinstance(ss, bool):
        ss = (int(ss), int(ss))
    try:
        sx, sy = (int(v) for v in ss)
        ok = all(float(v) == int(v) for v in ss)
    except (TypeError, ValueError):
        raise InputError(f"supersample must be an int or (sx, sy), got {ss!r}") from None
    if not ok or not (1 <= sx <= 64 and 1 <= sy <= 64):
        raise InputError(f"supersample factors must be integers in [1, 64], got {ss!r}")
    return sx, sy


def view_bound(
    z_visible: Any,
    dx_m: float,
    camera: Camera,
    *,
    supersample: int | tuple[int, int] | None = None,
    threads: int | None = None,
    method: str = "mip",
    sky: Any = None,
) -> np.ndarray:
    """Algorithm 2: the view bound ``Z_max`` of a visible heightmap.

    Args:
        z_visible: ``(H, W)`` visible heightmap ``Z_V`` in metres, NaN where unknown (unseen;
            may be all NaN, e.g. a photo of the sky).
        dx_m: cell size in metres.
        camera: the camera (heightmap frame); it must be above every known column it stands on.
        supersample: rays per pixel ``(sx, sy)`` (an int = both); ``None`` = :func:`auto_supersample`.
        threads: numba threads (default: numba's setting).
        method: ``"mip"`` (default: rays skip max-mip nodes where they can neither hit a known
            column nor lower a bound; lower rays first) or ``"dda"`` (plain cell walk, the
            reference). Both give the same result.
        sky: optional ``(camera.height, camera.width)`` bool mask of the pixels where the **photo**
            shows sky ("the photo's own rays", issue view-true item 3). Sky rays bound every cell
            they cross, as without a mask. A ray through a pixel where the photo shows terrain
            bounds the cells before its hit only if it hits a known column: one that misses
            ``Z_V`` must meet hidden terrain somewhere along it, so it must not push the cells
            on its path below it. ``None``: every ray bounds (the paper's Algorithm 2).

    Returns:
        float32 ``(H, W)``: ``Z_V`` on known cells, the bound on unknown cells, ``+inf`` where
        unbounded (see the module docstring).

    >>> zv = np.full((1, 4), np.nan); zv[0, 3] = 0.0      # a row of cells, only the east one known
    >>> cam = Camera(1, 1, 10.0, (0.0, 5.0, 10.0), yaw_deg=90.0, pitch_deg=-math.degrees(math.atan(10 / 35)))
    >>> [round(float(v), 3) for v in view_bound(zv, 10.0, cam, supersample=1)[0]]  # lands at x = 35 m
    [7.143, 4.286, 1.429, 0.0]
    """
    zv = check_heights(z_visible, "visible heightmap", allow_empty=True)
    dx = check_cell_size(dx_m)
    if not isinstance(camera, Camera):
        raise InputError(f"expected a Camera, got {type(camera).__name__}")
    h, w = zv.shape
    x, y, zc = camera.position_m
    if 0 <= x <= w * dx and 0 <= y <= h * dx:
        row = min(max(int(math.floor(h - y / dx)), 0), h - 1)
        col = min(max(int(math.floor(x / dx)), 0), w - 1)
        if np.isfinite(zv[row, col]) and zc <= zv[row, col]:
            raise InputError(
                f"camera is at or below the terrain: z = {zc:.3f} m, cell height {zv[row, col]:.3f} m"
            )
    sx, sy = auto_supersample((h, w), dx, camera) if supersample is None else _check_supersample(supersample)
    if method not in ("mip", "dda"):
        raise InputError(f"method must be 'mip' or 'dda', got {method!r}")
    need_hit = _need_hit(sky, camera)
    n_threads = numba.get_num_threads() if threads is None else max(1, int(threads))
    buf = np.full((n_threads, h * w), np.inf)
    cx, cy = camera.principal_point
    R = np.ascontiguousarray(camera.rotation)
    known = np.isfinite(zv)
    if method == "dda":
        rc.view_bound_kernel(zv.ravel(), h, w, dx, R, camera.focal_px, cx, cy, camera.position,
                             camera.height, camera.width, sx, sy, n_threads, need_hit, buf)
    else:
        zmip, offs, widths, nlev = rc.build_mip(np.where(known, zv, -np.inf))
        heights = rc.mip_heights((h, w), nlev)
        omips = np.empty((n_threads, zmip.size))
        # rebuild the per-thread bound pyramid about 64 times over the image
        rebuild = max(1, camera.height * sy // (64 * n_threads))
        rc.view_bound_mip_kernel(zv.ravel(), known.ravel(), zmip, offs, widths, heights, nlev, h, w,
                                 dx, R, camera.focal_px, cx, cy, camera.position, camera.height,
                                 camera.width, sx, sy, n_threads, rebuild, need_hit, buf, omips)
    zmax = buf.min(axis=0).reshape(h, w)
    known = np.isfinite(zv)
    zmax[known] = zv[known]
    return _round_down_f32(zmax)


def _need_hit(sky: Any, camera: Camera) -> np.ndarray:
    """Flat uint8 per pixel: 1 where the photo shows terrain (its rays bound only on a hit)."""
    n = camera.height * camera.width
    if sky is None:
        return np.zeros(n, np.uint8)
    sky = np.asarray(sky)
    if sky.shape != (camera.height, camera.width):
        raise InputError(f"sky mask is {sky.shape[1]}x{sky.shape[0]} px, the camera "
                         f"{camera.width}x{camera.height} px")
    return np.ascontiguousarray(~sky.astype(bool)).astype(np.uint8).ravel()


def _round_down_f32(a: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounded toward -inf (exact values unchanged)."""
    f = a.astype(np.float32)
    up = f.astype(np.float64) > a
    f[up] = np.nextafter(f[up], np.float32(-np.inf))
    return f
