"""Synthetic photographs with ground truth (``p2p synth``): what a perception stage would have
to recover from a landscape photo, rendered from a DEM.

Outputs (:class:`SynthResult`, files described in ``docs/formats.md``): the image, per-pixel
depth / pointmap / terrain mask from the pixel-centre rays of the bilinear render, the camera,
and on a heightmap grid (the DEM's, or one of cell size ``out_dx_m`` with the same south-west
origin): ``Z_V``/``M_V`` = :func:`~pixels2peaks.camera.project_pointmap` of the float32
pointmap (so re-projecting ``pointmap.npy`` reproduces ``visible.tif`` exactly) and ``Z_max`` =
:func:`~pixels2peaks.camera.view_bound` of ``Z_V`` (Algorithm 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.camera.model import Camera
from pixels2peaks.camera.render import Heightfield, RenderResult, project_pointmap
from pixels2peaks.camera.shading import Shading, render_image
from pixels2peaks.camera.viewbound import view_bound
from pixels2peaks.errors import InputError, check_cell_size

__all__ = [
    "RandomCameraRanges",
    "SynthResult",
    "random_shading",
    "random_camera",
    "synthesize",
    "output_grid",
    "write_synth",
    "SYNTH_FILES",
]

#: files written by :func:`write_synth`
SYNTH_FILES = (
    "image.png",
    "depth.npy",
    "pointmap.npy",
    "terrain_mask.png",
    "camera.json",
    "visible.tif",
    "visible_mask.png",
    "zmax.tif",
)


@dataclass(frozen=True)
class RandomCameraRanges:
    """Sampling ranges of :func:`random_camera` (degrees / metres / pixels)."""

    width: int = 1024
    height: int = 768
    fov_x_deg: tuple[float, float] = (40.0, 80.0)
    pitch_deg: tuple[float, float] = (-15.0, 10.0)
    #: height above ground = ``U(a, b)`` metres + ``U(c, d)`` cells
    agl_m: tuple[float, float] = (2.0, 40.0)
    agl_cells: tuple[float, float] = (0.5, 3.0)
    candidates: int = 40
    margin: float = 0.08
    #: if set, the share of the grid's cells a candidate sees (estimated from a 128-pixel-wide
    #: probe render on a 4x coarser grid) should fall in this range; candidates outside it are
    #: penalised by ``seen_weight`` per unit of distance to the range. ``None``: not scored.
    seen_fraction: tuple[float, float] | None = None
    seen_weight: float = 20.0
    #: the camera clears the highest grid node within this many cells (Chebyshev radius) by 1 m;
    #: 0 = only the ground under it (a photographer standing on a slope)
    clearance_cells: int = 1
    #: penalty per unit share of the frame closer than 4 cells (0 = near foregrounds welcome)
    near_weight: float = 3.0
    #: bonus for terrain rising above eye level (share of the frame, saturating at 25 %): a
    #: camera on the ground then looks up at mountains rather than across a plain
    rise_weight: float = 0.0


def _score(res: RenderResult, dirs_z: np.ndarray, diag_m: float, dx: float, near_weight: float,
           rise_weight: float) -> float:
    """How photo-like a candidate view is: terrain filling ~60 % of the frame, some sky, no
    holes/grid edge below the horizon, looking far across the DEM, no wall right in front
    (``near_weight``), terrain rising above eye level (``rise_weight``); the weights are
    :class:`RandomCameraRanges`' (their defaults live there only)."""
    hit = res.hit
    terrain = float(hit.mean())
    void = float((~hit & (dirs_z < 0.0)).mean())
    if not hit.any():
        return -10.0
    d = res.depth[hit]
    med = float(np.median(d))
    near = float((d < 4.0 * dx).mean()) * terrain
    sky = 1.0 - terrain - void
    rise = float((hit & (dirs_z > 0.0)).mean())
    return (-8.0 * void - 2.5 * abs(terrain - 0.62) + 1.5 * min(med / (0.2 * diag_m), 1.0)
            - near_weight * near - 2.0 * max(0.08 - sky, 0.0) / 0.08 + rise_weight * min(rise / 0.25, 1.0))


def _seen_share(res: RenderResult, shape: tuple[int, int], dx: float, k: int = 4) -> float:
    """Share of the grid's cells seen by a probe render, estimated on a ``k`` times coarser grid
    (a sparse probe leaves gaps between its hits on the fine grid)."""
    h, w = max(1, shape[0] // k), max(1, shape[1] // k)
    _, seen = project_pointmap(res.pointmap, (h, w), dx * k)
    return float(seen.mean())


def _across(cam: Camera, extent_y: float, extent_x: float) -> float:
    """Shortest horizontal distance from the camera to the grid border along the view
    direction and the two edges of the field of view (metres)."""
    x, y, _ = cam.position_m
    out = math.inf
    for off in (-0.5 * cam.fov_x_deg, 0.0, 0.5 * cam.fov_x_deg):
        az = math.radians(cam.yaw_deg + off)
        dxh, dyh = math.sin(az), math.cos(az)
        t = math.inf
        if dxh > 1e-12:
            t = min(t, (extent_x - x) / dxh)
        elif dxh < -1e-12:
            t = min(t, -x / dxh)
        if dyh > 1e-12:
            t = min(t, (extent_y - y) / dyh)
        elif dyh < -1e-12:
            t = min(t, -y / dyh)
        out = min(out, max(t, 0.0))
    return out


def random_camera(
    hf: Heightfield,
    seed: int | None = 0,
    ranges: RandomCameraRanges = RandomCameraRanges(),
) -> Camera:
    """A random camera standing above the terrain inside the DEM and looking across it.

    Draws ``ranges.candidates`` cameras (uniform position over valid cells away from the border,
    height above ground, FOV, pitch, any yaw), renders each at 64 x 48 and keeps the most
    photo-like (terrain filling about 60 % of the frame with sky above, no holes or grid edge
    below the horizon, far view) and, with ``ranges.seen_fraction``, seeing about that share of
    the grid (probe 128 pixels wide). Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    h, w = hf.shape
    dx = hf.dx_m
    valid = np.isfinite(hf.z)
    m = ranges.margin
    inner = np.zeros_like(valid)
    r0, r1 = int(h * m), max(int(h * (1 - m)), int(h * m) + 1)
    c0, c1 = int(w * m), max(int(w * (1 - m)), int(w * m) + 1)
    inner[r0:r1, c0:c1] = True
    cells = np.argwhere(valid & inner)
    if len(cells) == 0:
        cells = np.argwhere(valid)
    if len(cells) == 0:
        raise InputError("the DEM holds no valid cell to stand on")
    diag = math.hypot(h * dx, w * dx)
    rad = max(int(ranges.clearance_cells), 0)
    zpad = np.pad(np.where(valid, hf.z, -np.inf), rad, mode="edge")
    best, best_score = None, -math.inf
    small = (64 if ranges.seen_fraction is None else 128, 48)
    for _ in range(max(1, int(ranges.candidates))):
        i, j = cells[rng.integers(len(cells))]
        x = (j + rng.uniform(0.2, 0.8)) * dx
        y = (h - i - rng.uniform(0.2, 0.8)) * dx
        ground = float(hf.height_at(x, y))
        local_max = float(zpad[i : i + 2 * rad + 1, j : j + 2 * rad + 1].max()) if rad else ground
        if not math.isfinite(ground):
            continue
        agl = rng.uniform(*ranges.agl_m) + rng.uniform(*ranges.agl_cells) * dx
        zc = max(ground + agl, local_max + 1.0)
        cam = Camera(
            ranges.width,
            ranges.height,
            float(rng.uniform(*ranges.fov_x_deg)),
            (x, y, zc),
            yaw_deg=float(rng.uniform(0.0, 360.0)),
            pitch_deg=float(rng.uniform(*ranges.pitch_deg)),
            dx_m=dx,
        )
        probe = cam.replace(width=small[0], height=max(1, round(small[0] * cam.height / cam.width)))
        res = hf.render(probe)
        u, v = probe.pixel_centres()
        score = _score(res, probe.pixel_to_ray(u, v)[..., 2], diag, dx, ranges.near_weight, ranges.rise_weight)
        score += 1.5 * min(_across(cam, h * dx, w * dx) / (0.35 * diag), 1.0)
        if ranges.seen_fraction is not None:
            lo, hi = ranges.seen_fraction
            f = _seen_share(res, (h, w), dx)
            score -= ranges.seen_weight * max(lo - f, f - hi, 0.0)
        if score > best_score:
            best, best_score = cam, score
    if best is None:
        raise InputError("could not place a camera above the terrain (no valid ground)")
    return best


def random_shading(seed: int | None = 0) -> Shading:
    """Random lighting for a synthetic photo: sun azimuth ``U(0, 360)``, elevation ``U(18, 50)``
    degrees, cloud cover ``U(0, 0.7)``; textures seeded by ``seed``. Deterministic."""
    rng = np.random.default_rng([0 if seed is None else int(seed), 1])
    return Shading(
        sun_azimuth_deg=float(rng.uniform(0.0, 360.0)),
        sun_elevation_deg=float(rng.uniform(18.0, 50.0)),
        clouds=float(rng.uniform(0.0, 0.7)),
        seed=0 if seed is None else int(seed),
    )


def output_grid(shape: tuple[int, int], dx_m: float, out_dx_m: float | None) -> tuple[tuple[int, int], float]:
    """Shape and cell size of the ground-truth heightmap grid: the DEM's, or cells of
    ``out_dx_m`` from the same south-west corner covering as much of the extent as whole cells
    can (at least 1 x 1).

    >>> output_grid((100, 50), 30.0, 45.0)
    ((66, 33), 45.0)
    """
    if out_dx_m is None:
        return (int(shape[0]), int(shape[1])), float(dx_m)
    d = check_cell_size(out_dx_m)
    h = max(1, int(math.floor(shape[0] * dx_m / d + 1e-9)))
    w = max(1, int(math.floor(shape[1] * dx_m / d + 1e-9)))
    return (h, w), d


@dataclass(frozen=True, eq=False)
class SynthResult:
    """A synthetic photo and its ground truth.

    Attributes:
        image: uint8 ``(h, w, 3)`` RGB.
        render: :class:`RenderResult` of the pixel-centre rays (depth inf / pointmap NaN = sky).
        camera: the camera, ``dx_m`` = the ground-truth grid's cell size.
        z_visible: float32 ``(H', W')`` ``Z_V`` (NaN = unseen).
        visible_mask: bool ``(H', W')`` ``M_V``.
        z_max: float32 ``(H', W')`` view bound (``+inf`` = unbounded).
        dx_m: cell size of the ground-truth grid.
    """

    image: np.ndarray
    render: RenderResult
    camera: Camera
    z_visible: np.ndarray
    visible_mask: np.ndarray
    z_max: np.ndarray
    dx_m: float


def synthesize(
    z: Any,
    dx_m: float,
    camera: Camera,
    *,
    out_dx_m: float | None = None,
    shading: Shading = Shading(),
    antialias: int = 2,
    supersample: int | tuple[int, int] | None = None,
) -> SynthResult:
    """Render a synthetic photo of heightmap ``z`` (metres, NaN = hole) and its ground truth."""
    hf = z if isinstance(z, Heightfield) else Heightfield(z, dx_m)
    image, res = render_image(hf, camera, shading, antialias=antialias)
    shape, d = output_grid(hf.shape, hf.dx_m, out_dx_m)
    zv, mv = project_pointmap(res.pointmap, shape, d)
    cam = camera.replace(dx_m=d)
    try:
        zmax = view_bound(zv, d, cam, supersample=supersample)
    except InputError as exc:
        raise InputError(f"{exc} (in the ground-truth grid: raise the camera)") from None
    return SynthResult(image=image, render=res, camera=cam, z_visible=zv, visible_mask=mv,
                       z_max=zmax, dx_m=d)


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------


def _georef(dem: Any, shape: tuple[int, int], d: float) -> tuple[Any, Any]:
    """(crs, transform) of the ground-truth grid, derived from the DEM's georeference."""
    crs = getattr(dem, "crs", None)
    tr = getattr(dem, "transform", None)
    if dem is None or tr is None:
        return crs, None
    dem_shape = dem.z.shape
    if tuple(shape) == tuple(dem_shape) and math.isclose(d, dem.dx_m, rel_tol=1e-12):
        return crs, tr
    from rasterio.transform import Affine

    aff = tr if isinstance(tr, Affine) else Affine(*tuple(tr)[:6])
    if aff.b != 0 or aff.d != 0:
        return None, None
    k = d / dem.dx_m
    bottom = aff.f + aff.e * dem_shape[0]
    a2, e2 = aff.a * k, aff.e * k
    return crs, Affine(a2, 0.0, aff.c, 0.0, e2, bottom - e2 * shape[0])


def write_synth(outdir: str | Path, result: SynthResult, dem: Any = None, *, overwrite: bool = False) -> Path:
    """Write :data:`SYNTH_FILES` into ``outdir`` atomically: everything is written to a temporary
    sibling folder first, then renamed (new/empty ``outdir``) or moved file by file (existing
    folder with ``overwrite``); on error nothing is left behind. ``dem``: the source
    :class:`~pixels2peaks.io.Dem` (its CRS/transform georeference the GeoTIFFs)."""
    from PIL import Image

    from pixels2peaks.io.write import staged_folder, write_geotiff, write_mask_png

    with staged_folder(outdir, overwrite) as tmp:
        Image.fromarray(result.image, mode="RGB").save(tmp / "image.png", format="PNG")
        np.save(tmp / "depth.npy", result.render.depth.astype(np.float32), allow_pickle=False)
        np.save(tmp / "pointmap.npy", result.render.pointmap.astype(np.float32), allow_pickle=False)
        write_mask_png(tmp / "terrain_mask.png", result.render.hit)
        (tmp / "camera.json").write_text(result.camera.to_json())
        crs, tr = _georef(dem, result.z_visible.shape, result.dx_m)
        write_geotiff(tmp / "visible.tif", result.z_visible, dx_m=result.dx_m, crs=crs, transform=tr)
        write_mask_png(tmp / "visible_mask.png", result.visible_mask)
        zmax = np.where(np.isfinite(result.z_max), result.z_max, np.nan).astype(np.float32)
        write_geotiff(tmp / "zmax.tif", zmax, dx_m=result.dx_m, crs=crs, transform=tr)
    return Path(outdir)
