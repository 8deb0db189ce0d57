"""Single image -> visible heightmap ``Z_V``, mask ``M_V`` and camera (paper §4):
:func:`estimate_visible`.

Order: segmentation (terrain mask) -> geometry (pointmap, FOV) -> priors (mean slope, elevation
range; skipped when both are given) -> :func:`pixels2peaks.perception.geometry.reconstruct`
(DBSCAN, pitch search, scale fit, projection). Backends are chosen by
:func:`pixels2peaks.perception.protocols.select` (``auto`` or a name) and every choice is
reported with its reason.

FOV: ``options.fov_x_deg`` > EXIF focal length > the geometry backend's (builtin: 60 deg).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.camera import Camera
from pixels2peaks.errors import InputError
from pixels2peaks.perception.geometry import ReconstructOptions, VisibleHeightmap, reconstruct
from pixels2peaks.perception.image import LoadedImage, load_image
from pixels2peaks.perception.protocols import Priors, select

__all__ = ["VisibleOptions", "VisibleResult", "estimate_visible", "OUTPUT_FILES"]

OUTPUT_FILES = ("visible.tif", "visible_mask.png", "camera.json", "terrain_mask.png", "perception.json")


@dataclass(frozen=True)
class VisibleOptions:
    """Options of :func:`estimate_visible`.

    geometry / segmentation / priors: backend names or ``"auto"``.
    backend_options: passed to the backends (see :mod:`pixels2peaks.perception._defaults`).
    fov_x_deg: known horizontal FOV (overrides EXIF and the backend).
    mean_slope_deg / elevation_range_m: user priors; each overrides the backend's value.
    """

    geometry: str = "auto"
    segmentation: str = "auto"
    priors: str = "auto"
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    fov_x_deg: float | None = None
    mean_slope_deg: float | None = None
    elevation_range_m: tuple[float, float] | None = None
    reconstruct: ReconstructOptions = ReconstructOptions()


@dataclass(frozen=True)
class VisibleResult:
    """``Z_V`` (float32, NaN unseen), ``M_V``, cell size, camera, priors and a report."""

    z: np.ndarray
    mask: np.ndarray
    dx_m: float
    camera: Camera
    priors: Priors
    terrain_mask: np.ndarray
    report: dict[str, Any]

    def save(self, folder: str | Path) -> Path:
        """Write :data:`OUTPUT_FILES` into ``folder`` (created; files replaced atomically)."""
        from PIL import Image

        from pixels2peaks.io import atomic_path, write_geotiff

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        write_geotiff(out / "visible.tif", self.z, dx_m=self.dx_m)
        for name, m in (("visible_mask.png", self.mask), ("terrain_mask.png", self.terrain_mask)):
            with atomic_path(out / name) as tmp:
                Image.fromarray(np.where(m, 255, 0).astype(np.uint8), "L").save(tmp, format="PNG")
        self.camera.save(out / "camera.json")
        with atomic_path(out / "perception.json") as tmp:
            tmp.write_text(json.dumps(self.report, indent=2) + "\n")
        return out


def estimate_visible(image: str | Path | np.ndarray | LoadedImage, options: VisibleOptions = VisibleOptions()) -> VisibleResult:
    """Image (path, loaded image or ``(H, W, 3)`` uint8 array) -> :class:`VisibleResult`."""
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, LoadedImage):
        rgb, opaque, exif_fov = image.rgb, image.opaque, image.fov_x_deg
    else:
        rgb = np.asarray(image)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.dtype} {rgb.shape}")
        opaque, exif_fov = np.ones(rgb.shape[:2], bool), None
    fov = options.fov_x_deg if options.fov_x_deg is not None else exif_fov
    fov_src = "user" if options.fov_x_deg is not None else ("EXIF" if exif_fov is not None else None)
    opts: dict[str, Any] = dict(options.backend_options)
    if fov is not None:
        opts["fov_x_deg"] = float(fov)
    report: dict[str, Any] = {"format": "pixels2peaks.perception/1", "image_size": list(rgb.shape[1::-1])}

    seg = select("segmentation", options.segmentation, opts)
    terrain = np.asarray(seg.backend.segment(rgb), dtype=bool) & opaque
    if terrain.shape != rgb.shape[:2]:
        raise InputError(f"segmentation backend {seg.name} returned shape {terrain.shape}")
    if not terrain.any():
        raise InputError("no terrain found in the image (the segmentation is empty)")
    opts["terrain"] = terrain

    geo = select("geometry", options.geometry, opts)
    g = geo.backend.estimate(rgb)
    fov_used = float(fov) if fov is not None else g.fov_x_deg
    points = g.points
    if fov is not None and abs(g.fov_x_deg - fov) > 1e-9:
        # re-project the backend's depths with the known FOV
        from pixels2peaks.perception.transformers_backends import pinhole_pointmap

        points = pinhole_pointmap(g.points[..., 2], fov_used)
    valid = g.valid & terrain

    pri_sel = None
    if options.mean_slope_deg is not None and options.elevation_range_m is not None:
        priors = Priors(options.mean_slope_deg, options.elevation_range_m,
                        {"mean_slope_deg": "user", "elevation_range_m": "user"})
    else:
        pri_sel = select("priors", options.priors, opts)
        p = pri_sel.backend.estimate(rgb)
        src = dict(p.sources)
        slope, rng = p.mean_slope_deg, p.elevation_range_m
        if options.mean_slope_deg is not None:
            slope, src["mean_slope_deg"] = options.mean_slope_deg, "user"
        if options.elevation_range_m is not None:
            rng, src["elevation_range_m"] = options.elevation_range_m, "user"
        priors = Priors(slope, rng, src)

    vh: VisibleHeightmap = reconstruct(points, valid, fov_used, priors.mean_slope_deg,
                                       priors.elevation_range_m, options.reconstruct)
    report.update(
        {
            "backends": {
                s.kind: {"name": s.name, "reason": s.reason}
                for s in (seg, geo, pri_sel) if s is not None
            },
            "geometry_source": g.source,
            "fov_x_deg": fov_used,
            "fov_source": fov_src or f"geometry backend ({geo.name})",
            "priors": {
                "mean_slope_deg": priors.mean_slope_deg,
                "elevation_range_m": list(priors.elevation_range_m),
                "sources": dict(priors.sources),
            },
            "pitch_deg": vh.camera.pitch_deg,
            "pitch_search": {
                "range_deg": list(options.reconstruct.pitch_range_deg),
                "step_deg": options.reconstruct.pitch_step_deg,
                "slope_at_pitch_deg": float(
                    vh.pitch.slopes_deg[np.argmin(np.abs(vh.pitch.candidates_deg - vh.pitch.pitch_deg))]
                ) if vh.pitch is not None else None,
            },
            "terrain_pixels": int(terrain.sum()),
            "points_total": vh.points_total,
            "points_kept_after_dbscan": vh.points_kept,
            "dx_m": vh.dx_m,
            "shape": list(vh.z.shape),
            "visible_cells": int(vh.mask.sum()),
        }
    )
    return VisibleResult(vh.z, vh.mask, vh.dx_m, vh.camera, priors, terrain, report)
