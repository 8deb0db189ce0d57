"""Offline defaults for the three perception backends (no download, no network).

* :class:`SkySegmentation`: per-column skyline by dynamic programming over sky / terrain
  colour-texture likelihoods (:mod:`pixels2peaks.perception.skyline`); everything at or below the
  skyline is terrain (foreground included), uniformly black image borders are not.
  :func:`sky_mask` / :func:`horizon_rows` are the older threshold heuristics (sky = bright,
  low-texture, blue-ish pixels connected to the top edge), kept as simple helpers.
* :class:`ClassicalGeometry`: a depth prior combining (a) a ground plane seen from a level
  camera at unit height (depth grows towards the eye-level row, capped at 1 deg below it) and
  (b) atmospheric haze from the dark channel prior (He et al. 2009; depth ~ -ln transmission).
  Their geometric mean, made non-decreasing upwards in each column, is back-projected with the
  given (or default 60 deg) horizontal FOV. Units are arbitrary; the scale fit fixes them.
* :class:`DefaultPriors`: mean slope 25 deg; elevation range ``[z_min, z_min + relief]`` with
  ``relief = clip(D tan(angular height of the terrain), 200 m, 3000 m)`` for a typical viewing
  distance ``D = 5 km``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pixels2peaks.camera.model import focal_px
from pixels2peaks.errors import InputError
from pixels2peaks.perception.protocols import GeometryResult, Priors
from pixels2peaks.perception.skyline import SkylineOptions, segment_terrain

__all__ = [
    "SkySegmentation",
    "ClassicalGeometry",
    "DefaultPriors",
    "sky_mask",
    "horizon_rows",
    "dark_channel",
]


def _check_rgb(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 2 or a.shape[1] < 2:
        raise InputError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    a = a.astype(np.float64)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise InputError("float images must have values in [0, 1]")
    return a


def _box(a: np.ndarray, r: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    return uniform_filter(a, size=2 * r + 1, mode="nearest")


# ----------------------------------------------------------------------------------------------
# segmentation
# ----------------------------------------------------------------------------------------------


def sky_mask(
    image: np.ndarray,
    *,
    min_brightness: float = 0.45,
    max_texture: float = 0.04,
    blue_margin: float = -0.02,
    overcast_brightness: float = 0.75,
) -> np.ndarray:
    """Bool ``(H, W)`` sky candidates connected to the top edge.

    A pixel is a candidate when its brightness (mean of RGB) is ``>= min_brightness``, its local
    texture (std of brightness over a window ~1 % of the image height) is ``<= max_texture`` and
    it is blue-ish (``b - r >= blue_margin``) or bright grey (brightness ``>=
    overcast_brightness``, for overcast skies).
    """
    from scipy.ndimage import label

    rgb = _check_rgb(image)
    h = rgb.shape[0]
    lum = rgb.mean(axis=2)
    r = max(1, h // 100)
    mean = _box(lum, r)
    tex = np.sqrt(np.maximum(_box(lum * lum, r) - mean * mean, 0.0))
    blue = (rgb[..., 2] - rgb[..., 0]) >= blue_margin
    cand = (lum >= min_brightness) & (tex <= max_texture) & (blue | (lum >= overcast_brightness))
    lab, _ = label(cand)
    top = np.unique(lab[0][lab[0] > 0])
    return np.isin(lab, top) & cand


def horizon_rows(sky: np.ndarray) -> np.ndarray:
    """Per column, the first row (from the top) that is not sky: the column's horizon."""
    s = np.asarray(sky, dtype=bool)
    not_sky = ~s
    first = np.argmax(not_sky, axis=0)
    return np.where(not_sky.any(axis=0), first, s.shape[0]).astype(np.int64)


@dataclass
class SkySegmentation:
    """Terrain = every pixel at or below its column's skyline, found by dynamic programming over
    sky / terrain colour-texture likelihoods (:func:`pixels2peaks.perception.skyline.segment_terrain`);
    uniformly black image borders are never terrain."""

    options: SkylineOptions = SkylineOptions()
    name: str = "builtin"

    def segment(self, image: np.ndarray) -> np.ndarray:
        a = np.asarray(image)
        if a.dtype != np.uint8:
            a = (np.clip(_check_rgb(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        else:
            _check_rgb(a)
        return segment_terrain(a, self.options)


# ----------------------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------------------


def dark_channel(image: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Dark channel: min over RGB and a ``(2 radius + 1)^2`` window (He et al. 2009)."""
    from scipy.ndimage import minimum_filter

    rgb = _check_rgb(image)
    r = radius if radius is not None else max(1, rgb.shape[0] // 80)
    return minimum_filter(rgb.min(axis=2), size=2 * r + 1, mode="nearest")


@dataclass
class ClassicalGeometry:
    """Ground-plane + haze depth prior (see the module docstring).

    fov_x_deg: horizontal FOV used for back-projection (e.g. from EXIF).
    terrain: optional bool mask; the atmospheric light is taken from the brightest dark-channel
        pixels outside it (the sky), or of the whole image without one.
    min_angle_deg: the ground-plane depth is capped at ``1 / tan(min_angle_deg)``.
    """

    fov_x_deg: float = 60.0
    min_angle_deg: float = 1.0
    haze_omega: float = 0.95
    name: str = "builtin"

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> GeometryResult:
        rgb = _check_rgb(image)
        h, w = rgb.shape[:2]
        f = focal_px(w, self.fov_x_deg)
        v = np.arange(h, dtype=np.float64) + 0.5 - h / 2.0  # rows below the eye level are > 0
        below = np.maximum(v, f * math.tan(math.radians(self.min_angle_deg)))
        z_ground = np.broadcast_to((f / below)[:, None], (h, w))  # camera height 1
        dc = dark_channel(rgb)
        sky = ~np.asarray(terrain, bool) if terrain is not None else np.ones((h, w), bool)
        pool = dc[sky] if sky.any() else dc.ravel()
        thr = np.quantile(pool, 0.999)
        a_light = max(float(rgb.reshape(-1, 3)[(dc >= thr).ravel() & sky.ravel()].mean())
                      if (sky & (dc >= thr)).any() else float(rgb.max()), 1e-3)
        t = np.clip(1.0 - self.haze_omega * np.minimum(dc / a_light, 1.0), 0.05, 1.0)
        haze = -np.log(t)  # proportional to distance (unknown scattering coefficient)
        terr = np.asarray(terrain, bool) if terrain is not None else np.ones((h, w), bool)
        zg_med = float(np.median(z_ground[terr])) if terr.any() else 1.0
        hz_med = float(np.median(haze[terr])) if terr.any() else 1.0
        z_haze = np.maximum(haze, 1e-3) * (zg_med / max(hz_med, 1e-3))
        z = np.sqrt(z_ground * z_haze)
        z = np.maximum.accumulate(z[::-1], axis=0)[::-1]  # non-decreasing upwards per column
        u = np.arange(w, dtype=np.float64) + 0.5 - w / 2.0
        pts = np.stack(
            [z * u[None, :] / f, z * v[:, None] / f, z], axis=-1
        ).astype(np.float32)
        return GeometryResult(pts, self.fov_x_deg, terr.copy(), source="builtin: ground plane + haze")


# ----------------------------------------------------------------------------------------------
# priors
# ----------------------------------------------------------------------------------------------


@dataclass
class DefaultPriors:
    """Builtin priors (see the module docstring).

    fov_x_deg: horizontal FOV, to convert pixels to angles.
    """

    mean_slope_deg: float = 25.0
    z_min_m: float = 1000.0
    distance_m: float = 5000.0
    relief_bounds_m: tuple[float, float] = (200.0, 3000.0)
    fov_x_deg: float = 60.0
    name: str = "builtin"

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> Priors:
        a = np.asarray(image)
        if a.ndim < 2:
            raise InputError(f"expected an image, got shape {a.shape}")
        h, w = a.shape[:2]
        f = focal_px(w, self.fov_x_deg)
        terr = None if terrain is None else np.asarray(terrain, bool)
        if terr is not None and terr.any():
            rows = np.flatnonzero(terr.any(axis=1))
            top, bottom = rows[0], rows[-1] + 1
        else:
            top, bottom = 0, h
        ang = math.atan((h / 2.0 - top) / f) - math.atan((h / 2.0 - bottom) / f)
        lo, hi = self.relief_bounds_m
        relief = float(np.clip(self.distance_m * math.tan(min(ang, math.radians(80))), lo, hi))
        return Priors(
            self.mean_slope_deg,
            (self.z_min_m, self.z_min_m + relief),
            {
                "mean_slope_deg": f"builtin default {self.mean_slope_deg:g} deg",
                "elevation_range_m": (
                    f"builtin: z_min {self.z_min_m:g} m, relief = {self.distance_m:g} m x "
                    f"tan({math.degrees(ang):.1f} deg angular height), clipped to [{lo:g}, {hi:g}] m"
                ),
            },
        )
