"""``Z_V`` as a continuous surface (issue [view-true]): the pointmap meshed in image space and
rasterised from above, instead of one cell per point.

A point-per-cell projection (:func:`pixels2peaks.camera.project_pointmap`) leaves far terrain as
radial streaks: neighbouring image rows land farther and farther apart along each ray, and
neighbouring columns fan out, so the cells between them stay empty. Here every 2 x 2 block of
pixels with four points gives two triangles (a surface patch the photo shows), a triangle is
rasterised onto the grid (cell centres inside its top-down footprint get its plane's height), and
the maximum over triangles and points is kept, as ``project_pointmap`` keeps the maximum over
points. A triangle is not drawn across an occlusion: where one of its pixels lies on a detected
ridgeline (:func:`pixels2peaks.perception.contours.ridgelines`, where a nearer ridge hides a
farther face) or where its distances from the camera differ by more than ``max_jump``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pixels2peaks.camera import project_pointmap
from pixels2peaks.errors import InputError

__all__ = ["mesh_heightmap", "drop_outliers", "DEFAULT_MAX_JUMP"]

#: a triangle whose farthest vertex is more than this factor farther than its nearest is an
#: occlusion, not a surface (a grazing slope gives ~1.1-1.5 between neighbouring rows)
DEFAULT_MAX_JUMP = 3.0


@njit(cache=True)
def _raster_triangle(out, h, w, dx, ax, ay, az, bx, by, bz, cx, cy, cz):  # pragma: no cover - compiled
    # cell coordinates: u = x / dx (columns), v = h - y / dx (rows, north up)
    ua, va = ax / dx, h - ay / dx
    ub, vb = bx / dx, h - by / dx
    uc, vc = cx / dx, h - cy / dx
    det = (vb - vc) * (ua - uc) + (uc - ub) * (va - vc)
    if abs(det) < 1e-12:
        return
    c0 = max(0, int(math.floor(min(ua, ub, uc) - 0.5)))
    c1 = min(w - 1, int(math.ceil(max(ua, ub, uc) - 0.5)))
    r0 = max(0, int(math.floor(min(va, vb, vc) - 0.5)))
    r1 = min(h - 1, int(math.ceil(max(va, vb, vc) - 0.5)))
    for r in range(r0, r1 + 1):
        pv = r + 0.5
        for c in range(c0, c1 + 1):
            pu = c + 0.5
            l0 = ((vb - vc) * (pu - uc) + (uc - ub) * (pv - vc)) / det
            l1 = ((vc - va) * (pu - uc) + (ua - uc) * (pv - vc)) / det
            l2 = 1.0 - l0 - l1
            if l0 < -1e-9 or l1 < -1e-9 or l2 < -1e-9:
                continue
            z = l0 * az + l1 * bz + l2 * cz
            if z > out[r, c]:
                out[r, c] = z


@njit(cache=True)
def _raster_mesh(p, ok, cut, cam, h, w, dx, max_jump, out):  # pragma: no cover - compiled
    H, W = ok.shape
    d = np.full((H, W), np.nan)
    for i in range(H):
        for j in range(W):
            if ok[i, j]:
                d[i, j] = math.sqrt((p[i, j, 0] - cam[0]) ** 2 + (p[i, j, 1] - cam[1]) ** 2
                                    + (p[i, j, 2] - cam[2]) ** 2)
    for i in range(H - 1):
        for j in range(W - 1):
            for t in range(2):
                if t == 0:
                    i0, j0, i1, j1, i2, j2 = i, j, i, j + 1, i + 1, j
                else:
                    i0, j0, i1, j1, i2, j2 = i, j + 1, i + 1, j + 1, i + 1, j
                if not (ok[i0, j0] and ok[i1, j1] and ok[i2, j2]):
                    continue
                if cut[i0, j0] or cut[i1, j1] or cut[i2, j2]:
                    continue
                dmin = min(d[i0, j0], d[i1, j1], d[i2, j2])
                dmax = max(d[i0, j0], d[i1, j1], d[i2, j2])
                if dmax > max_jump * dmin:
                    continue
                _raster_triangle(out, h, w, dx,
                                 p[i0, j0, 0], p[i0, j0, 1], p[i0, j0, 2],
                                 p[i1, j1, 0], p[i1, j1, 1], p[i1, j1, 2],
                                 p[i2, j2, 0], p[i2, j2, 1], p[i2, j2, 2])


def mesh_heightmap(
    pointmap: np.ndarray, shape: tuple[int, int], dx_m: float, camera_position_m: tuple[float, float, float],
    occlusions: np.ndarray | None = None, max_jump: float = DEFAULT_MAX_JUMP,
) -> tuple[np.ndarray, np.ndarray]:
    """``(Z_V float32 NaN unseen, M_V bool)`` on an ``shape`` grid of ``dx_m`` cells from a world
    pointmap ``(H, W, 3)`` (metres, the grid's frame, NaN = no point): every point (as
    :func:`~pixels2peaks.camera.project_pointmap`) plus every image-space triangle that is not cut
    by ``occlusions`` (bool ``(H, W)``: pixels on occluding contours) and whose camera distances
    stay within a factor ``max_jump`` (see the module doc). Maximum height per cell."""
    p = np.asarray(pointmap, np.float64)
    if p.ndim != 3 or p.shape[2] != 3:
        raise InputError(f"pointmap must have shape (H, W, 3), got {p.shape}")
    if not max_jump > 1.0:
        raise InputError(f"max_jump must be > 1, got {max_jump}")
    h, w = int(shape[0]), int(shape[1])
    zv, mv = project_pointmap(p.astype(np.float32), (h, w), dx_m)
    ok = np.isfinite(p).all(axis=2)
    cut = np.zeros(ok.shape, bool) if occlusions is None else np.asarray(occlusions, bool)
    if cut.shape != ok.shape:
        raise InputError(f"occlusions must have the pointmap's shape {ok.shape}, got {cut.shape}")
    out = np.where(mv, zv.astype(np.float64), -np.inf)
    pf = np.where(ok[..., None], p, 0.0).astype(np.float32).astype(np.float64)  # the points' own values
    _raster_mesh(pf, ok, cut, np.asarray(camera_position_m, np.float64), h, w, float(dx_m), float(max_jump), out)
    seen = np.isfinite(out)
    return np.where(seen, out, np.nan).astype(np.float32), seen


@njit(cache=True)
def _window_median(z, m, r):  # pragma: no cover - compiled
    h, w = z.shape
    out = np.full((h, w), np.nan)
    buf = np.empty((2 * r + 1) ** 2)
    for i in range(h):
        for j in range(w):
            if not m[i, j]:
                continue
            n = 0
            for a in range(max(0, i - r), min(h, i + r + 1)):
                for b in range(max(0, j - r), min(w, j + r + 1)):
                    if m[a, b]:
                        buf[n] = z[a, b]
                        n += 1
            v = np.sort(buf[:n])
            out[i, j] = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return out


def drop_outliers(z: np.ndarray, mask: np.ndarray, dx_m: float, max_dev_dx: float = 5.0,
                  window_cells: int = 5) -> np.ndarray:
    """``M_V`` without its pits and pillars: seen cells more than ``max_dev_dx`` cells' worth of
    height (``max_dev_dx x dx_m`` metres) above or below the median of the seen cells in their
    ``window_cells`` square window. Such a cell is steeper than ``atan(2 max_dev_dx /
    (window_cells - 1))`` (68 deg by default) against its neighbourhood: a stray point or a
    depth jump, not a face. The completion fills the cells dropped. Returns the new mask
    (bool); ``z`` is unchanged."""
    m = np.asarray(mask, bool)
    zz = np.where(m, np.asarray(z, np.float64), 0.0)
    med = _window_median(zz, m, int(window_cells) // 2)
    bad = m & (np.abs(zz - med) > float(max_dev_dx) * float(dx_m))
    return m & ~bad

