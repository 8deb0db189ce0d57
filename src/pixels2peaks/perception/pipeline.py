"""Single image -> visible heightmap ``Z_V``, mask ``M_V``, camera and view bound ``Z_max``
(paper §4): :func:`estimate_visible`.

Stages (each cached by :class:`pixels2peaks.cache.StageCache` under a key of the image's content
hash, the settings it depends on and its upstream keys; see :data:`STAGES`):

1. ``segmentation`` (terrain mask) 2. ``geometry`` (camera-frame pointmap, FOV) 3. ``priors``
(mean slope, elevation range; skipped when both are given) 4. ``cleaning`` (DBSCAN, §4.1)
5. ``projection`` (pitch search Eq. 1, scale fit, projection §4.2:
:func:`pixels2peaks.perception.geometry.reconstruct`) 6. ``zmax`` (view bound, Algorithm 2).

Backends are chosen by :func:`pixels2peaks.perception.protocols.select` (``auto`` or a name)
and every choice is reported with its reason. FOV: ``options.fov_x_deg`` > EXIF focal length >
the geometry backend's (builtin: 60 deg).

``Z_V`` / ``M_V`` are defined as in ``p2p synth``: the projection of the world pointmap
(:func:`pixels2peaks.camera.project_pointmap`), so re-projecting ``pointmap.npy`` reproduces
``visible.tif`` bit for bit. ``extent="square"`` pads the grid to a square (the scene centred),
as ``p2p run`` does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pixels2peaks.cache import (
    StageCache,
    StageOutcome,
    StageReporter,
    array_digest,
    bytes_digest,
    code_fingerprint,
    file_digest,
)
from pixels2peaks.camera import Camera, project_pointmap, view_bound
from pixels2peaks.camera.synth import SYNTH_FILES
from pixels2peaks.errors import InputError
from pixels2peaks.perception.depth_net import DEFAULT_WEIGHTS
from pixels2peaks.perception.geometry import (
    ReconstructOptions,
    camera_to_level,
    clean_points,
    reconstruct,
)
from pixels2peaks.perception.image import LoadedImage, load_image
from pixels2peaks.perception.protocols import Priors, choose, registered, require_available, select

__all__ = [
    "VisibleOptions",
    "VisibleResult",
    "estimate_visible",
    "square_extent",
    "OUTPUT_FILES",
    "STAGES",
]

#: files of ``p2p visible``: the ``p2p synth`` set (same formats) + priors, report, preview
OUTPUT_FILES = SYNTH_FILES + ("priors.json", "perception.json", "preview.png")
STAGES = ("segmentation", "geometry", "priors", "cleaning", "projection", "zmax")
Extent = Literal["points", "square"]

#: backend options each stage depends on (the rest, e.g. timeouts, do not change results)
_STAGE_OPTIONS = {
    "segmentation": ("dino_model", "sam_model", "sky_seed_texture"),
    "geometry": ("moge_model", "depth_model", "depth_weights", "depth_upsample", "depth_lateral", "contour_cue", "fov_x_deg"),
    "priors": ("vlm_url", "vlm_model", "vlm_samples", "gemma_model", "fov_x_deg"),
}
#: modules every backend stage depends on; each backend adds its own (``BackendSpec.modules``)
_BACKEND_CODE = ("pixels2peaks.perception.image", "pixels2peaks.perception._defaults",
                 "pixels2peaks.perception.protocols")
#: modules whose source code computes each later stage (a change invalidates its cache entries)
_STAGE_CODE = {
    "cleaning": ("pixels2peaks.perception.geometry",),
    "projection": ("pixels2peaks.perception.geometry", "pixels2peaks.perception.pipeline",
                   "pixels2peaks.camera.render", "pixels2peaks.perception.surface",
                   "pixels2peaks.perception.contours", "pixels2peaks.terrain.hydrology.fill",
                   "pixels2peaks.terrain.hydrology.routing"),
    "zmax": ("pixels2peaks.camera.viewbound", "pixels2peaks.camera._raycast"),
}
#: data files a stage's results depend on besides code (the depth net's card holds its slope gain)
_STAGE_DATA = {"geometry": (DEFAULT_WEIGHTS.with_suffix(".json"),)}
#: Z_max rays: at most this many pixels across (a wider photo gets a scaled-down camera)
ZMAX_MAX_WIDTH_PX = 2048


@dataclass(frozen=True)
class VisibleOptions:
    """Options of :func:`estimate_visible`.

    geometry / segmentation / priors: backend names or ``"auto"``.
    backend_options: passed to the backends (see :mod:`pixels2peaks.perception._defaults`).
    fov_x_deg: known horizontal FOV (overrides EXIF and the backend).
    mean_slope_deg / elevation_range_m: user priors; each overrides the backend's value.
    extent: ``"points"`` (the bounding box of points and camera) or ``"square"`` (padded to a
        square with the scene centred).
    zmax_rays: ``"photo"`` (default): the view bound is cast with the photo's own sky mask, so
        a ray through a terrain pixel that misses ``Z_V`` bounds nothing
        (:func:`~pixels2peaks.camera.view_bound`'s ``sky``); ``"all"``: every ray bounds (the
        paper's Algorithm 2 on ``Z_V`` alone).
    """

    geometry: str = "auto"
    segmentation: str = "auto"
    priors: str = "auto"
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    fov_x_deg: float | None = None
    mean_slope_deg: float | None = None
    elevation_range_m: tuple[float, float] | None = None
    reconstruct: ReconstructOptions = ReconstructOptions()
    extent: Extent = "points"
    zmax_rays: Literal["photo", "all"] = "photo"

    def __post_init__(self) -> None:
        if self.extent not in ("points", "square"):
            raise InputError(f"extent must be 'points' or 'square', got {self.extent!r}")
        if self.zmax_rays not in ("photo", "all"):
            raise InputError(f"zmax_rays must be 'photo' or 'all', got {self.zmax_rays!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (for reports and cache keys); the VLM API key is left out."""
        d = dataclasses.asdict(self)
        d["backend_options"] = {k: v for k, v in self.backend_options.items() if k != "vlm_api_key"}
        return d


@dataclass(frozen=True)
class VisibleResult:
    """``Z_V`` (float32, NaN unseen), ``M_V``, cell size, camera, priors and a report.

    pointmap: world ``(x, y, z)`` per image pixel (float32 ``(h, w, 3)``, NaN where no point:
    sky, invalid geometry, DBSCAN noise); z_max: view bound (float32, ``+inf`` = unbounded);
    image: the RGB photo; stages: :class:`~pixels2peaks.cache.StageOutcome` per stage run.
    Written to a folder by :func:`pixels2peaks.pipeline.outputs.write_visible` (the pipeline
    layer, with the previews).
    """

    z: np.ndarray
    mask: np.ndarray
    dx_m: float
    camera: Camera
    priors: Priors
    terrain_mask: np.ndarray
    report: dict[str, Any]
    pointmap: np.ndarray | None = None
    z_max: np.ndarray | None = None
    image: np.ndarray | None = None
    stages: Mapping[str, StageOutcome] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# input
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    rgb: np.ndarray
    opaque: np.ndarray
    exif_fov: float | None
    digest: str
    name: str


def _load_bytes(data: bytes, name: str) -> LoadedImage:
    """Decode image bytes (e.g. stdin) with :func:`load_image`'s checks and messages."""
    if not data:
        raise InputError(f"no image data in {name}")
    with tempfile.TemporaryDirectory(prefix="p2p-image-") as d:
        p = Path(d) / "image"
        p.write_bytes(data)
        try:
            li = load_image(p)
        except InputError as exc:
            raise InputError(str(exc).replace(f"'{p}'", name).replace(str(p), name)) from None
    return dataclasses.replace(li, path=name)


def _source(image: str | Path | bytes | np.ndarray | LoadedImage) -> _Source:
    if isinstance(image, (bytes, bytearray)):
        li = _load_bytes(bytes(image), "<stdin>")
        digest = bytes_digest(bytes(image))
    elif isinstance(image, (str, Path)):
        li = load_image(image)
        digest = file_digest(image)
    elif isinstance(image, LoadedImage):
        li = image
        digest = array_digest(np.concatenate([li.rgb.reshape(-1), li.opaque.reshape(-1).astype(np.uint8)]))
    else:
        rgb = np.asarray(image)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.dtype} {rgb.shape}")
        return _Source(rgb, np.ones(rgb.shape[:2], bool), None, array_digest(rgb), "<array>")
    return _Source(li.rgb, li.opaque, li.fov_x_deg, digest, li.path)


# ----------------------------------------------------------------------------------------------
# stages (each returns a dict of arrays and JSON-able values: what the cache stores)
# ----------------------------------------------------------------------------------------------


def _backend_settings(kind: str, name: str, opts: Mapping[str, Any]) -> dict[str, Any]:
    """What a backend stage (``kind`` = segmentation / geometry / priors) depends on: the
    requested backend, for ``auto`` which backends are available (that decides the choice), the
    relevant options and the code of the backend that will run (its ``BackendSpec.modules``)."""
    spec, _ = choose(kind, name, opts)
    s: dict[str, Any] = {
        "backend": name,
        "options": {k: opts[k] for k in _STAGE_OPTIONS[kind] if opts.get(k) is not None},
        "code": code_fingerprint(*_BACKEND_CODE, *spec.modules),
        "code_modules": list(spec.modules),
    }
    data = [hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in _STAGE_DATA.get(kind, ()) if p.is_file()]
    if data:
        s["data"] = data
    if name == "auto":
        s["available"] = [spec.name for spec in registered(kind) if spec.available(opts)[0]]
    return s


def _segmentation(src: _Source, name: str, opts: Mapping[str, Any]) -> dict[str, Any]:
    sel = select("segmentation", name, opts)
    terrain = np.asarray(sel.backend.segment(src.rgb), dtype=bool) & src.opaque
    if terrain.shape != src.rgb.shape[:2]:
        raise InputError(f"segmentation backend {sel.name} returned shape {terrain.shape}")
    if not terrain.any():
        raise InputError("no terrain found in the image (the segmentation is empty)")
    return {"terrain": terrain, "backend": sel.name, "reason": sel.reason}


def _geometry(src: _Source, name: str, opts: Mapping[str, Any], fov: float | None,
              terrain: np.ndarray) -> dict[str, Any]:
    sel = select("geometry", name, opts)
    g = sel.backend.estimate(src.rgb, terrain)
    fov_used = float(fov) if fov is not None else g.fov_x_deg
    points = g.points
    if fov is not None and abs(g.fov_x_deg - fov) > 1e-9:
        # re-project the backend's depths with the known FOV
        from pixels2peaks.perception.transformers_backends import pinhole_pointmap

        points = pinhole_pointmap(g.points[..., 2], fov_used)
    return {"points": np.asarray(points, np.float32), "valid": g.valid, "fov_x_deg": fov_used,
            "source": g.source, "slope_gain": g.slope_gain, "backend": sel.name, "reason": sel.reason}


def _priors(src: _Source, name: str, opts: Mapping[str, Any], terrain: np.ndarray) -> dict[str, Any]:
    sel = select("priors", name, opts)
    p = sel.backend.estimate(src.rgb, terrain)
    return {"mean_slope_deg": p.mean_slope_deg, "elevation_range_m": list(p.elevation_range_m),
            "sources": dict(p.sources), "backend": sel.name, "reason": sel.reason}


def _cleaning(points: np.ndarray, valid: np.ndarray, options: ReconstructOptions) -> dict[str, Any]:
    """DBSCAN (§4.1) on the valid terrain points -> the pixels kept."""
    ok = valid & np.isfinite(points).all(axis=2) & (points[..., 2] > 0)
    total = int(ok.sum())
    if total < 16:
        raise InputError(f"only {total} terrain point(s) in the image; nothing to reconstruct")
    keep = ok.copy()
    if options.clean is not None:
        keep[ok] = clean_points(points[ok], options.clean)
    if keep.sum() < 16:
        raise InputError("DBSCAN removed almost every terrain point; nothing to reconstruct")
    return {"keep": keep, "points_total": total, "points_kept": int(keep.sum())}


def square_extent(
    pointmap: np.ndarray, camera: Camera, shape: tuple[int, int], dx_m: float
) -> tuple[np.ndarray, Camera, tuple[int, int]]:
    """Pad an ``(H, W)`` grid to ``n x n`` (``n = max(H, W)``) with the content centred: world
    points and the camera move by whole cells east/north. Returns ``(pointmap, camera, shape)``."""
    h, w = shape
    n = max(h, w)
    shift = np.array([(n - w) // 2 * dx_m, (n - h) // 2 * dx_m, 0.0])
    pos = np.asarray(camera.position_m, np.float64) + shift
    return (np.asarray(pointmap, np.float64) + shift, camera.replace(position_m=tuple(float(v) for v in pos)),
            (n, n))


def _projection(points: np.ndarray, keep: np.ndarray, fov_x_deg: float, priors: Priors,
                options: ReconstructOptions, extent: Extent, slope_gain: float,
                rgb: np.ndarray, terrain: np.ndarray) -> dict[str, Any]:
    """Pitch search (Eq. 1, the slope prior corrected by the geometry's ``slope_gain``), scale
    fit and projection (§4.2) of the kept points: one cell per point, or the pointmap meshed
    and cut at the photo's ridgelines (``options.surface``)."""
    vh = reconstruct(points, keep, fov_x_deg, priors.mean_slope_deg, priors.elevation_range_m,
                     dataclasses.replace(options, clean=None), slope_gain=slope_gain)
    cam, shape, dx = vh.camera, vh.z.shape, vh.dx_m
    world = vh.scale.apply(camera_to_level(points, cam.pitch_deg).reshape(-1, 3)).reshape(points.shape)
    world[~keep] = np.nan
    if extent == "square":
        world, cam, shape = square_extent(world, cam, shape, dx)
    pm = world.astype(np.float32)
    if options.surface == "mesh":
        from pixels2peaks.perception.contours import ridgelines
        from pixels2peaks.perception.surface import mesh_heightmap

        zv, mv = mesh_heightmap(pm, shape, dx, cam.position_m, ridgelines(rgb, terrain), options.max_jump)
    else:
        zv, mv = project_pointmap(pm, shape, dx)
    if options.outlier_dx is not None:
        from pixels2peaks.perception.surface import drop_outliers

        mv = drop_outliers(zv, mv, dx, options.outlier_dx)
        zv = np.where(mv, zv, np.nan).astype(np.float32)
    if options.fill_enclosed:
        from pixels2peaks.terrain.hydrology import fill_enclosed

        zv = fill_enclosed(zv, mv)
    ps = vh.pitch
    return {
        "pointmap": pm, "z": zv, "mask": mv, "dx_m": dx, "camera": cam.to_dict(),
        "scale": vh.scale.scale,
        "target_slope_deg": ps.target_slope_deg if ps is not None else None,
        "slope_at_pitch_deg": float(ps.slopes_deg[np.argmin(np.abs(ps.candidates_deg - ps.pitch_deg))])
        if ps is not None else None,
    }


def _bound_camera(camera: Camera) -> Camera:
    """The camera for Z_max rays: the photo's, scaled down to at most ZMAX_MAX_WIDTH_PX wide."""
    if camera.width <= ZMAX_MAX_WIDTH_PX:
        return camera
    k = ZMAX_MAX_WIDTH_PX / camera.width
    return camera.replace(width=ZMAX_MAX_WIDTH_PX, height=max(1, round(camera.height * k)))


def sky_at(terrain: np.ndarray, camera: Camera) -> np.ndarray:
    """The photo's sky at the camera's pixel size: a pixel is sky when at least half of the photo
    pixels it covers are (``terrain``: the photo's ``(H, W)`` terrain mask)."""
    from PIL import Image

    sky = Image.fromarray(np.where(terrain, 0, 255).astype(np.uint8))
    if sky.size != (camera.width, camera.height):
        sky = sky.resize((camera.width, camera.height), Image.BOX)
    return np.asarray(sky) >= 128


def _zmax(z: np.ndarray, dx_m: float, camera: Camera, terrain: np.ndarray, rays: str) -> dict[str, Any]:
    """Algorithm 2: Z_max of the visible heightmap seen from the camera; with ``rays="photo"``
    cast with the photo's own sky mask (issue view-true item 3)."""
    cam = _bound_camera(camera)
    sky = sky_at(terrain, cam) if rays == "photo" else None
    return {"z_max": view_bound(z, dx_m, cam, sky=sky)}


# ----------------------------------------------------------------------------------------------
# the pipeline
# ----------------------------------------------------------------------------------------------


def _resolved_priors(options: VisibleOptions, pri: dict[str, Any] | None) -> Priors:
    if pri is None:
        return Priors(options.mean_slope_deg, options.elevation_range_m,
                      {"mean_slope_deg": "user", "elevation_range_m": "user"})
    src = dict(pri["sources"])
    slope, rng = pri["mean_slope_deg"], tuple(pri["elevation_range_m"])
    if options.mean_slope_deg is not None:
        slope, src["mean_slope_deg"] = options.mean_slope_deg, "user"
    if options.elevation_range_m is not None:
        rng, src["elevation_range_m"] = options.elevation_range_m, "user"
    return Priors(slope, rng, src)


def estimate_visible(
    image: str | Path | bytes | np.ndarray | LoadedImage,
    options: VisibleOptions = VisibleOptions(),
    *,
    cache: StageCache = StageCache(),
    reporter: StageReporter | None = None,
) -> VisibleResult:
    """Image (path, encoded bytes, loaded image or ``(H, W, 3)`` uint8 array) ->
    :class:`VisibleResult`. ``cache``: stage cache (default: off); ``reporter``: stage events."""
    src = _source(image)
    fov = options.fov_x_deg if options.fov_x_deg is not None else src.exif_fov
    fov_src = "user" if options.fov_x_deg is not None else ("EXIF" if src.exif_fov is not None else None)
    opts: dict[str, Any] = dict(options.backend_options)
    if fov is not None:
        opts["fov_x_deg"] = float(fov)
    # an explicitly requested backend that is missing fails now, not after the stages before it
    wanted = [("segmentation", options.segmentation), ("geometry", options.geometry)]
    if options.mean_slope_deg is None or options.elevation_range_m is None:
        wanted.append(("priors", options.priors))
    for kind, name in wanted:
        if name != "auto":
            require_available(kind, name, opts)
    stages: dict[str, StageOutcome] = {}

    def run(stage: str, settings: Mapping[str, Any], upstream: list[str], compute: Callable[[], Mapping[str, Any]]):
        out = cache.run(stage, settings, upstream, compute, reporter)
        stages[stage] = out
        return out.value

    seg = run("segmentation", _backend_settings("segmentation", options.segmentation, opts),
              [src.digest], lambda: _segmentation(src, options.segmentation, opts))
    terrain = seg["terrain"]
    seg_up = [src.digest, stages["segmentation"].key]
    geo = run("geometry", _backend_settings("geometry", options.geometry, opts), seg_up,
              lambda: _geometry(src, options.geometry, opts, fov, terrain))
    pri = None
    if options.mean_slope_deg is None or options.elevation_range_m is None:
        pri = run("priors", _backend_settings("priors", options.priors, opts), seg_up,
                  lambda: _priors(src, options.priors, opts, terrain))
    priors = _resolved_priors(options, pri)
    ro = options.reconstruct
    valid = geo["valid"] & terrain
    gain = geo["slope_gain"]
    cln = run("cleaning", {"clean": ro.clean, "code": code_fingerprint(*_STAGE_CODE["cleaning"])},
              [stages["geometry"].key, stages["segmentation"].key],
              lambda: _cleaning(geo["points"], valid, ro))
    proj = run(
        "projection",
        {"reconstruct": dataclasses.replace(ro, clean=None), "extent": options.extent,
         "mean_slope_deg": priors.mean_slope_deg, "elevation_range_m": list(priors.elevation_range_m),
         "slope_gain": gain, "code": code_fingerprint(*_STAGE_CODE["projection"])},
        [stages["geometry"].key, stages["cleaning"].key],
        lambda: _projection(geo["points"], cln["keep"], geo["fov_x_deg"], priors, ro, options.extent,
                            gain, src.rgb, terrain),
    )
    camera = Camera.from_dict(proj["camera"])
    zmx = run("zmax", {"max_width_px": ZMAX_MAX_WIDTH_PX, "rays": options.zmax_rays,
                       "code": code_fingerprint(*_STAGE_CODE["zmax"])},
              [stages["projection"].key, stages["segmentation"].key],
              lambda: _zmax(proj["z"], proj["dx_m"], camera, terrain, options.zmax_rays))

    backends = {"segmentation": seg, "geometry": geo} | ({"priors": pri} if pri is not None else {})
    report: dict[str, Any] = {
        "format": "pixels2peaks.perception/1",
        "image": src.name,
        "image_sha256": src.digest,
        "image_size": list(src.rgb.shape[1::-1]),
        "backends": {k: {"name": v["backend"], "reason": v["reason"]} for k, v in backends.items()},
        "geometry_source": geo["source"],
        "fov_x_deg": geo["fov_x_deg"],
        "fov_source": fov_src or f"geometry backend ({geo['backend']})",
        "priors": {
            "mean_slope_deg": priors.mean_slope_deg,
            "elevation_range_m": list(priors.elevation_range_m),
            "sources": dict(priors.sources),
        },
        "pitch_deg": camera.pitch_deg,
        "pitch_search": {
            "range_deg": list(ro.pitch_range_deg),
            "step_deg": ro.pitch_step_deg,
            "slope_gain": gain,
            "target_slope_deg": proj["target_slope_deg"],
            "slope_at_pitch_deg": proj["slope_at_pitch_deg"],
        },
        "terrain_pixels": int(terrain.sum()),
        "points_total": cln["points_total"],
        "points_kept_after_dbscan": cln["points_kept"],
        "dx_m": proj["dx_m"],
        "shape": list(proj["z"].shape),
        "extent": options.extent,
        "visible_cells": int(proj["mask"].sum()),
        "bounded_cells": int((np.isfinite(zmx["z_max"]) & ~proj["mask"]).sum()),
        "stages": {k: v.record() for k, v in stages.items()},
    }
    return VisibleResult(
        z=proj["z"], mask=proj["mask"], dx_m=float(proj["dx_m"]), camera=camera, priors=priors,
        terrain_mask=terrain, report=report, pointmap=proj["pointmap"], z_max=zmx["z_max"],
        image=src.rgb, stages=stages,
    )

