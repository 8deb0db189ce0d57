"""Heightfield renderer: exact ray casting of a heightmap seen by a :class:`Camera`.

Terrain models (``surface=``):

* ``"bilinear"`` (default, used for images): the continuous surface through the cell centres,
  bilinear between every 2x2 block of centres; over the outer half cell it is extended with
  constant slope zero across the edge (edge replication), so it covers exactly the grid extent
  ``[0, W dx] x [0, H dx]``. Hits are exact (quadratic solved per patch), not marched.
* ``"blocks"``: every cell is a flat-topped column of height ``z`` over its footprint: the
  terrain model of the paper's Algorithm 2 (:func:`~pixels2peaks.camera.view_bound`). A ray hits
  a column iff its lowest point over the footprint is strictly below the top.

Nodata (NaN) cells are **holes**: rays pass through them (bilinear: every patch with a NaN
corner is a hole). The terrain is a solid below its surface, so a hole is a bottomless pit whose
rim is a vertical wall: a ray that dips into a hole either leaves the grid (sky) or hits the
pit's far wall below the surrounding surface. Holes are never hit nor seen. Rays that leave the
grid extent without a hit are sky; the grid's outer border is a vertical wall in the same way
(a camera outside the grid below the edge heights sees the side of the grid).

Per-pixel outputs (:class:`RenderResult`) are for rays through pixel centres. The set of cells
**seen** from the camera, ``M_V``, is the set of cells containing at least one hit point:
``bilinear`` cells are found by rasterising the float32 pointmap with :func:`project_pointmap`
(so the pointmap reproduces ``M_V`` and ``Z_V`` exactly), ``blocks`` cells are the columns hit.

Speed: numba ``prange`` over pixels; each ray walks the grid cells it crosses, skipping max-mip
nodes that lie below the ray (Tevs et al. 2008, "Maximum mipmaps for fast, accurate, and
scalable dynamic height field rendering").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pixels2peaks.camera import _raycast as rc
from pixels2peaks.camera.model import Camera, xy_to_cell
from pixels2peaks.errors import InputError, check_cell_size

__all__ = [
    "Heightfield",
    "RenderResult",
    "render",
    "project_pointmap",
    "surface_height",
]

Surface = Literal["bilinear", "blocks"]




def check_heights(z: Any, what: str = "heightmap", *, allow_empty: bool = False) -> np.ndarray:
    """``(H, W)`` float64 copy of ``z``; NaN allowed (holes), inf rejected, all-NaN rejected
    unless ``allow_empty``."""
    try:
        arr = np.asarray(z.detach().cpu().numpy() if hasattr(z, "detach") else z)
    except Exception:  # pragma: no cover
        raise InputError(f"{what} must be a 2-D array of heights") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{what} must be a 2-D (H, W) array, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{what} has unsupported dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.isinf(arr).any():
        raise InputError(f"{what} contains infinite heights (use NaN for nodata)")
    if not allow_empty and np.isnan(arr).all():
        raise InputError(f"{what} holds no valid heights (every cell is NaN)")
    return np.ascontiguousarray(arr)


def _check_surface(surface: Any) -> str:
    if surface not in ("bilinear", "blocks"):
        raise InputError(f"surface must be 'bilinear' or 'blocks', got {surface!r}")
    return str(surface)


def surface_height(z: Any, dx_m: float, x: Any, y: Any, surface: Surface = "bilinear") -> np.ndarray:
    """Terrain height (metres) at world ``(x, y)`` under the given terrain model; NaN outside
    the grid extent or over a hole.

    >>> z = np.array([[0.0, 10.0], [0.0, 10.0]])
    >>> float(surface_height(z, 1.0, 1.0, 1.0))      # midway between the two columns
    5.0
    >>> float(surface_height(z, 1.0, 1.0, 1.0, "blocks"))  # on the edge: the east cell
    10.0
    """
    z = check_heights(z)
    dx = check_cell_size(dx_m)
    surface = _check_surface(surface)
    h, w = z.shape
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    inside = (x >= 0) & (x <= w * dx) & (y >= 0) & (y <= h * dx)
    if surface == "blocks":
        row, col = xy_to_cell(x, y, h, dx)
        row = np.clip(row, 0, h - 1)
        col = np.clip(col, 0, w - 1)
        out = z[row, col]
    else:
        s = np.clip(x / dx - 0.5, 0.0, w - 1.0)
        r = np.clip(h - y / dx - 0.5, 0.0, h - 1.0)
        j0 = np.minimum(np.floor(s).astype(np.int64), max(w - 2, 0))
        i0 = np.minimum(np.floor(r).astype(np.int64), max(h - 2, 0))
        j1 = np.minimum(j0 + 1, w - 1)
        i1 = np.minimum(i0 + 1, h - 1)
        a, b = s - j0, r - i0
        out = (z[i0, j0] * (1 - a) * (1 - b) + z[i0, j1] * a * (1 - b)
               + z[i1, j0] * (1 - a) * b + z[i1, j1] * a * b)
    return np.where(inside, out, np.nan)


@dataclass(frozen=True, eq=False)
class Heightfield:
    """A heightmap prepared for ray casting (padded heights + max-mip pyramid).

    Attributes:
        z: float64 ``(H, W)`` heights in metres, NaN = hole.
        dx_m: cell size in metres.
        surface: ``"bilinear"`` or ``"blocks"`` (see the module docstring).
    """

    z: np.ndarray
    dx_m: float
    surface: str = "bilinear"
    _leaf: np.ndarray = field(init=False, repr=False)
    _mip: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        z = check_heights(self.z)
        object.__setattr__(self, "z", z)
        object.__setattr__(self, "dx_m", check_cell_size(self.dx_m))
        object.__setattr__(self, "surface", _check_surface(self.surface))
        if self.surface == "bilinear":
            zl = np.pad(z, 1, mode="edge")
            corners = np.stack([zl[:-1, :-1], zl[:-1, 1:], zl[1:, :-1], zl[1:, 1:]])
            leaf_max = np.where(np.isnan(corners).any(axis=0), -np.inf, corners.max(axis=0))
        else:
            zl = z
            leaf_max = np.where(np.isnan(z), -np.inf, z)
        object.__setattr__(self, "_leaf", np.ascontiguousarray(zl))
        object.__setattr__(self, "_mip", rc.build_mip(leaf_max))

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.z.shape[0]), int(self.z.shape[1])

    @property
    def mode(self) -> int:
        return rc.BILINEAR if self.surface == "bilinear" else rc.BLOCKS

    def height_at(self, x: Any, y: Any) -> np.ndarray:
        """Surface height at world ``(x, y)`` (NaN outside the extent or over a hole)."""
        return surface_height(self.z, self.dx_m, x, y, self.surface)

    def check_camera(self, camera: Camera) -> None:
        """InputError if the camera centre is at or below the terrain surface."""
        x, y, zc = camera.position_m
        ground = float(self.height_at(x, y))
        if math.isfinite(ground) and zc <= ground:
            raise InputError(
                f"camera is at or below the terrain: z = {zc:.3f} m, ground at ({x:.1f}, {y:.1f})"
                f" is {ground:.3f} m"
            )

    def cast(self, origins: Any, directions: Any, t_min: float = 0.0, t_max: float = math.inf) -> np.ndarray:
        """Distance (metres) along each ray to its first hit in ``[t_min, t_max]``, inf if none.

        ``origins``, ``directions``: ``(N, 3)`` or ``(3,)`` world arrays (broadcast);
        directions are normalised here. Returns ``(N,)`` float64.
        """
        o = np.atleast_2d(np.asarray(origins, dtype=np.float64))
        d = np.atleast_2d(np.asarray(directions, dtype=np.float64))
        if o.shape[-1] != 3 or d.shape[-1] != 3 or o.ndim != 2 or d.ndim != 2:
            raise InputError("origins and directions must be (N, 3) or (3,) arrays")
        if not (np.isfinite(o).all() and np.isfinite(d).all()):
            raise InputError("ray origins and directions must be finite")
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        if (norm == 0).any():
            raise InputError("ray directions must be non-zero")
        d = np.ascontiguousarray(d / norm)
        n = max(o.shape[0], d.shape[0])
        if o.shape[0] not in (1, n) or d.shape[0] not in (1, n):
            raise InputError(f"cannot broadcast {o.shape[0]} origins with {d.shape[0]} directions")
        t = np.empty(n, dtype=np.float64)
        h, w = self.shape
        flat, offs, widths, nlev = self._mip
        rc.cast_kernel(self.mode, self._leaf, flat, offs, widths, nlev, h, w, self.dx_m,
                       np.ascontiguousarray(o), d, float(t_min), float(t_max), t)
        return t

    def render(self, camera: Camera) -> RenderResult:
        """Cast one ray through every pixel centre of ``camera`` (see :func:`render`)."""
        if not isinstance(camera, Camera):
            raise InputError(f"expected a Camera, got {type(camera).__name__}")
        self.check_camera(camera)
        h, w = self.shape
        ih, iw = camera.height, camera.width
        t = np.empty((ih, iw), dtype=np.float64)
        pts = np.empty((ih, iw, 3), dtype=np.float64)
        nrm = np.empty((ih, iw, 3), dtype=np.float64)
        leaf = np.empty((ih, iw, 2), dtype=np.int32)
        cx, cy = camera.principal_point
        flat, offs, widths, nlev = self._mip
        rc.render_kernel(self.mode, self._leaf, flat, offs, widths, nlev, h, w, self.dx_m,
                         np.ascontiguousarray(camera.rotation), camera.focal_px, cx, cy,
                         camera.position, ih, iw, t, pts, nrm, leaf)
        hit = np.isfinite(t)
        pointmap = pts.astype(np.float32)
        if self.surface == "blocks":
            seen = np.zeros((h, w), dtype=bool)
            seen[leaf[hit][:, 0], leaf[hit][:, 1]] = True
        else:
            _, seen = project_pointmap(pointmap, (h, w), self.dx_m)
        return RenderResult(
            camera=camera,
            hit=hit,
            depth=t.astype(np.float32),
            pointmap=pointmap,
            normal=nrm.astype(np.float32),
            seen=seen,
            surface=self.surface,
        )


@dataclass(frozen=True, eq=False)
class RenderResult:
    """Outputs of :func:`render` for rays through the pixel centres of ``camera``.

    Attributes:
        camera: the camera.
        hit: bool ``(h, w)``: the ray hit terrain (False = sky, incl. rays through holes and
            rays leaving the grid).
        depth: float32 ``(h, w)`` distance in metres along the ray from the camera centre to the
            hit (not the z-buffer value); ``+inf`` for sky.
        pointmap: float32 ``(h, w, 3)`` world hit points ``(x, y, z)`` in metres, NaN for sky.
        normal: float32 ``(h, w, 3)`` unit surface normals (world frame), NaN for sky.
        seen: bool ``(H, W)`` heightmap cells containing a hit point (``M_V``).
        surface: the terrain model used.
    """

    camera: Camera
    hit: np.ndarray
    depth: np.ndarray
    pointmap: np.ndarray
    normal: np.ndarray
    seen: np.ndarray
    surface: str


def render(z: Any, dx_m: float, camera: Camera, *, surface: Surface = "bilinear") -> RenderResult:
    """Ray-cast heightmap ``z`` (``(H, W)`` metres, NaN = hole) with cell size ``dx_m`` from
    ``camera``: per pixel hit/sky, depth, world point and normal; per cell ``seen``.

    Raises InputError for a bad heightmap, or a camera at or below the terrain surface.

    >>> z = np.zeros((8, 8))
    >>> cam = Camera(4, 3, 60.0, (40.0, 0.0, 10.0), yaw_deg=0.0, pitch_deg=-45.0)
    >>> res = render(z, 10.0, cam)
    >>> bool(res.hit[1, 1]), round(float(res.pointmap[1, 1, 2]), 6)
    (True, 0.0)
    """
    return Heightfield(z, dx_m, surface).render(camera)


def project_pointmap(pointmap: Any, shape: tuple[int, int], dx_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise world points onto an ``(H, W)`` grid of cell size ``dx_m``: the visible
    heightmap ``Z_V`` and mask ``M_V``.

    Each finite point ``(x, y, z)`` (float32 values, converted exactly to float64) falls in cell
    ``row = floor(H - y/dx)``, ``col = floor(x/dx)`` (points on the outer boundary of the extent
    go to the border cell; points outside the extent are ignored). ``Z_V`` of a cell is the
    **maximum** ``z`` of its points (float32, NaN where no point falls), ``M_V`` is True where at
    least one point falls. This is the definition of ``Z_V``/``M_V`` for synthetic photos, so
    projecting their ground-truth pointmap reproduces ``visible.tif`` bit for bit.

    >>> pts = np.array([[[5.0, 15.0, 2.0], [6.0, 14.0, 3.0], [np.nan, np.nan, np.nan]]], np.float32)
    >>> zv, mv = project_pointmap(pts, (2, 2), 10.0)
    >>> zv.tolist(), mv.tolist()
    ([[3.0, nan], [nan, nan]], [[True, False], [False, False]])
    """
    h, w = (int(shape[0]), int(shape[1]))
    dx = check_cell_size(dx_m)
    pts = np.asarray(pointmap)
    if pts.shape[-1] != 3:
        raise InputError(f"pointmap must have shape (..., 3), got {pts.shape}")
    pts = pts.reshape(-1, 3).astype(np.float32).astype(np.float64)
    ok = np.isfinite(pts).all(axis=1)
    x, y, zz = pts[ok, 0], pts[ok, 1], pts[ok, 2]
    inside = (x >= 0) & (x <= w * dx) & (y >= 0) & (y <= h * dx)
    x, y, zz = x[inside], y[inside], zz[inside]
    row, col = xy_to_cell(x, y, h, dx)
    row = np.clip(row, 0, h - 1)
    col = np.clip(col, 0, w - 1)
    flat = np.full(h * w, -np.inf)
    np.maximum.at(flat, row * w + col, zz)
    seen = np.isfinite(flat).reshape(h, w)
    zv = np.where(seen, flat.reshape(h, w), np.nan).astype(np.float32)
    return zv, seen
