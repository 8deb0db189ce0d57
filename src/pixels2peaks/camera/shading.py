"""Photo-like shading of a heightfield render: sky gradient with sun glow, terrain coloured by
slope and altitude (grass, forest, rock, snow), sun light with cast shadows and sky light,
aerial perspective (haze growing with distance), filmic tone curve.

All colour maths is in linear RGB and encoded to sRGB at the end (after a soft highlight
roll-off). Shading normals are the central-difference gradients at the cell centres interpolated
bilinearly (no patch facets), perturbed by band-limited noise. The terrain texture (vegetation
patches, drier sunny slopes, rock strata, snow line jitter) is a deterministic function of the
world position and ``Shading.seed``, so different views of the same DEM agree. Noise octaves
finer than ~2 pixels fade out with distance (no sparkle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from pixels2peaks.camera.model import Camera
from pixels2peaks.camera.render import Heightfield, RenderResult
from pixels2peaks.errors import InputError

__all__ = ["Shading", "shade", "render_image", "sun_direction"]


@dataclass(frozen=True)
class Shading:
    """Appearance parameters (angles in degrees, distances in metres).

    Attributes:
        sun_azimuth_deg: compass azimuth of the sun (0 = north, 90 = east).
        sun_elevation_deg: sun height above the horizon, in ``(0, 90]``.
        haze_m: distance at which 63 % of the terrain colour is replaced by haze
            (``exp(-d / haze_m)`` transmittance); ``None`` = automatic from the scene (2.5x the
            90th percentile hit distance, clipped to 6-40 km).
        shadows: cast sun shadows (one shadow ray per pixel).
        snow: amount of snow in ``[0, 1]`` (0 = none); the snow line sits in the top quarter
            or so of the DEM's relief, never below ~2600 m (no snow on low DEMs).
        exposure: linear exposure multiplier before the tone curve.
        clouds: cloud cover in ``[0, 1]`` (0 = clear sky).
        seed: seed of the procedural textures and clouds.
    """

    sun_azimuth_deg: float = 215.0
    sun_elevation_deg: float = 32.0
    haze_m: float | None = None
    shadows: bool = True
    snow: float = 1.0
    exposure: float = 1.4
    clouds: float = 0.35
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sun_azimuth_deg", "sun_elevation_deg", "snow", "exposure", "clouds"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise InputError(f"shading {name} must be finite, got {v!r}")
        if not 0.0 < self.sun_elevation_deg <= 90.0:
            raise InputError(f"sun_elevation_deg must be in (0, 90], got {self.sun_elevation_deg}")
        if self.haze_m is not None and not (math.isfinite(self.haze_m) and self.haze_m > 0):
            raise InputError(f"haze_m must be a positive distance in metres, got {self.haze_m!r}")
        if self.exposure <= 0:
            raise InputError(f"exposure must be > 0, got {self.exposure}")


def sun_direction(shading: Shading) -> np.ndarray:
    """Unit world vector pointing towards the sun."""
    az, el = math.radians(shading.sun_azimuth_deg), math.radians(shading.sun_elevation_deg)
    return np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])


# ----------------------------------------------------------------------------------------------
# small colour helpers
# ----------------------------------------------------------------------------------------------

_SKY_ZENITH = np.array([0.16, 0.32, 0.70])
_SKY_HORIZON = np.array([0.62, 0.72, 0.86])
_HAZE = np.array([0.50, 0.58, 0.70])
_SUN = np.array([1.00, 0.94, 0.84]) * 3.2
_SKY_LIGHT = np.array([0.30, 0.38, 0.52]) * 0.7

_GRASS = np.array([0.095, 0.125, 0.050])
_DRY = np.array([0.22, 0.19, 0.12])
_FOREST = np.array([0.040, 0.060, 0.032])
_ROCK = np.array([0.21, 0.19, 0.17])
_ROCK_DARK = np.array([0.11, 0.10, 0.09])
_SNOW = np.array([0.62, 0.65, 0.70])


def _smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@njit(cache=True, inline="always")
def _lattice(ix, iy, seed):
    k = (ix * 374761393 + iy * 668265263 + seed * 2654435761) & 0xFFFFFFFF
    k = ((k ^ (k >> 13)) * 1274126177) & 0xFFFFFFFF
    return (k & 0xFFFF) / 65535.0


@njit(cache=True, inline="always")
def _vnoise(x, y, scale, seed):
    gx = x / scale
    gy = y / scale
    fx0 = math.floor(gx)
    fy0 = math.floor(gy)
    ix = np.int64(fx0)
    iy = np.int64(fy0)
    fx = gx - fx0
    fy = gy - fy0
    fx = fx * fx * (3.0 - 2.0 * fx)
    fy = fy * fy * (3.0 - 2.0 * fy)
    v00 = _lattice(ix, iy, seed)
    v10 = _lattice(ix + 1, iy, seed)
    v01 = _lattice(ix, iy + 1, seed)
    v11 = _lattice(ix + 1, iy + 1, seed)
    return (v00 * (1 - fx) + v10 * fx) * (1 - fy) + (v01 * (1 - fx) + v11 * fx) * fy


@njit(parallel=True, cache=True)
def _fbm_kernel(x, y, scale, octaves, gain, seed, footprint, centred, out):
    use_fp = footprint.shape[0] == x.shape[0]
    for k in prange(x.shape[0]):
        acc = 0.0
        tot = 0.0
        amp = 1.0
        sc = scale
        for o in range(octaves):
            fade = 1.0
            if use_fp:
                t = min(max((sc / max(footprint[k], 1e-9) - 1.0) / 2.0, 0.0), 1.0)
                fade = t * t * (3.0 - 2.0 * t)
            nv = _vnoise(x[k], y[k], sc, seed + 17 * o)
            if centred:
                acc += amp * fade * (nv - 0.5)
            else:
                acc += amp * nv
            tot += amp
            amp *= gain
            sc *= 0.5
        out[k] = acc if centred else acc / tot


_NO_FP = np.zeros(0)


def _value_noise(x: np.ndarray, y: np.ndarray, scale_m: float, seed: int) -> np.ndarray:
    """Smooth deterministic lattice noise in ``[0, 1]`` of world coordinates (metres), lattice
    spacing ``scale_m``."""
    return _fbm(x, y, scale_m, 1, seed)


def _fbm(x: np.ndarray, y: np.ndarray, scale_m: float, octaves: int = 4, seed: int = 0) -> np.ndarray:
    """Fractal sum of :func:`_value_noise` octaves (gain 0.5), normalised to ``[0, 1]``."""
    xf, yf = np.ascontiguousarray(x, np.float64).ravel(), np.ascontiguousarray(y, np.float64).ravel()
    out = np.empty_like(xf)
    _fbm_kernel(xf, yf, float(scale_m), int(octaves), 0.5, int(seed), _NO_FP, False, out)
    return out.reshape(np.shape(x))


def _detail(x: np.ndarray, y: np.ndarray, footprint: np.ndarray, scale_m: float, octaves: int,
            seed: int) -> np.ndarray:
    """Band-limited fbm, zero-mean (gain 0.75): octaves finer than ~2 pixel
    footprints (metres per pixel at the point) fade out, so the distance does not sparkle."""
    xf, yf = np.ascontiguousarray(x, np.float64).ravel(), np.ascontiguousarray(y, np.float64).ravel()
    out = np.empty_like(xf)
    _fbm_kernel(xf, yf, float(scale_m), int(octaves), 0.75, int(seed),
                np.ascontiguousarray(footprint, np.float64).ravel(), True, out)
    return out.reshape(np.shape(x))


@njit(parallel=True, cache=True)
def _tone_kernel(rgb, exposure, out):
    for k in prange(rgb.shape[0]):
        x = max(rgb[k] * exposure, 0.0)
        x = min(x * (1.0 + x / 4.0) / (1.0 + x), 1.0)
        out[k] = 12.92 * x if x <= 0.0031308 else 1.055 * x ** (1.0 / 2.4) - 0.055


def _tone(rgb: np.ndarray, exposure: float) -> np.ndarray:
    """Tone curve ``x (1 + x/4) / (1 + x)`` (soft highlight roll-off) then sRGB encoding."""
    flat = np.ascontiguousarray(rgb, np.float64).ravel()
    out = np.empty_like(flat)
    _tone_kernel(flat, float(exposure), out)
    return out.reshape(rgb.shape)


def _sky(dirs: np.ndarray, sun: np.ndarray) -> np.ndarray:
    el = np.clip(dirs[..., 2], -1.0, 1.0)
    t = _smoothstep(0.0, 0.55, np.maximum(el, 0.0)) ** 0.6
    col = _SKY_HORIZON * (1 - t[..., None]) + _SKY_ZENITH * t[..., None]
    cos_sun = np.clip(dirs @ sun, -1.0, 1.0)
    glow = 0.35 * np.power(np.maximum(cos_sun, 0.0), 12.0) + 0.12 * np.power(np.maximum(cos_sun, 0.0), 3.0)
    return col + glow[..., None] * np.array([1.0, 0.9, 0.7])


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def _relief(hf: Heightfield) -> tuple[float, float]:
    zv = hf.z[np.isfinite(hf.z)]
    lo, hi = np.percentile(zv, [2.0, 99.5])
    return float(lo), float(max(hi, lo + 1e-6))


def smooth_normals(hf: Heightfield, points: np.ndarray) -> np.ndarray:
    """Shading normals ``(N, 3)`` at world points on the bilinear surface: the central-difference
    gradient at the cell centres, interpolated bilinearly (hides the patch facets, like Phong
    shading). Nodata cells count as the mean height for the gradients."""
    z = hf.z
    zf = np.where(np.isfinite(z), z, np.nanmean(z))
    zp = np.pad(zf, 1, mode="edge")
    gx = (zp[1:-1, 2:] - zp[1:-1, :-2]) / (2.0 * hf.dx_m)
    gy = (zp[:-2, 1:-1] - zp[2:, 1:-1]) / (2.0 * hf.dx_m)
    h, w = z.shape
    s = np.clip(points[:, 0] / hf.dx_m - 0.5, 0.0, w - 1.0)
    r = np.clip(h - points[:, 1] / hf.dx_m - 0.5, 0.0, h - 1.0)
    j0 = np.minimum(np.floor(s).astype(np.int64), max(w - 2, 0))
    i0 = np.minimum(np.floor(r).astype(np.int64), max(h - 2, 0))
    j1, i1 = np.minimum(j0 + 1, w - 1), np.minimum(i0 + 1, h - 1)
    a, b = s - j0, r - i0

    def lerp(g: np.ndarray) -> np.ndarray:
        return (g[i0, j0] * (1 - a) * (1 - b) + g[i0, j1] * a * (1 - b)
                + g[i1, j0] * (1 - a) * b + g[i1, j1] * a * b)

    hx, hy = lerp(gx), lerp(gy)
    n = np.stack([-hx, -hy, np.ones_like(hx)], axis=1)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _clouds(dirs: np.ndarray, cover: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cloud opacity and brightness for sky directions: fbm on a layer 2.5 km above the camera,
    fading towards the horizon."""
    dz = np.maximum(dirs[..., 2], 1e-3)
    x = dirs[..., 0] / dz * 2500.0
    y = dirs[..., 1] / dz * 2500.0
    dist = 2500.0 / dz
    f = _fbm(x + 1.0e5, y + 1.0e5, 6000.0, 5, seed=seed)
    th = 0.68 - 0.3 * cover
    alpha = _smoothstep(th, th + 0.18, f) * np.exp(-dist / 60000.0) * (dirs[..., 2] > 0)
    bright = 0.75 + 0.5 * _fbm(x + 3.0e5, y, 2500.0, 3, seed=seed + 5)
    return alpha * min(1.0, 2.0 * cover), bright


def shade(hf: Heightfield, result: RenderResult, shading: Shading = Shading()) -> np.ndarray:
    """sRGB float image ``(h, w, 3)`` in ``[0, 1]`` (after the tone curve) of a
    :class:`RenderResult` of ``hf``."""
    cam = result.camera
    u, v = cam.pixel_centres()
    dirs = cam.pixel_to_ray(u, v)
    sun = sun_direction(shading)
    out = _sky(dirs, sun)
    hit = result.hit
    up = ~hit & (dirs[..., 2] > 0)
    if shading.clouds > 0 and up.any():
        alpha, bright = _clouds(dirs[up], float(shading.clouds), shading.seed)
        cloud = (0.55 + 0.45 * np.clip(sun[2] + 0.3, 0, 1)) * bright[..., None] * np.array([1.0, 0.99, 0.97])
        cloud = cloud * 0.85 + 0.15 * _SKY_HORIZON
        out[up] = out[up] * (1 - alpha[..., None]) + cloud * alpha[..., None]
    if hit.any():
        p = result.pointmap[hit].astype(np.float64)
        n_geo = result.normal[hit].astype(np.float64)
        n = smooth_normals(hf, p) if hf.surface == "bilinear" else n_geo
        d = result.depth[hit].astype(np.float64)
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        dx = hf.dx_m
        fp = d / cam.focal_px  # metres per pixel at the hit
        lo, hi = _relief(hf)
        relief = hi - lo
        e = (z - lo) / relief
        sd = shading.seed
        # bump detail: perturb the shading normal with the gradient of band-limited noise
        bump_scale = max(2.0 * dx, 16.0)
        eps = 0.25 * bump_scale

        def bump(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
            return _detail(xx, yy, fp, bump_scale, 3, sd + 7)

        gx = (bump(x + eps, y) - bump(x - eps, y)) / (2 * eps)
        gy = (bump(x, y + eps) - bump(x, y - eps)) / (2 * eps)
        amp = 0.35 * bump_scale
        n = n + np.stack([-amp * gx, -amp * gy, np.zeros_like(gx)], axis=1) * n[:, 2:3]
        n = n / np.linalg.norm(n, axis=1, keepdims=True)
        slope = np.degrees(np.arccos(np.clip(n[:, 2], -1.0, 1.0)))
        # texture noise at a few scales (metres)
        big = _fbm(x, y, max(40.0 * dx, 1500.0), 4, seed=sd + 1)
        mid = _fbm(x, y, max(6.0 * dx, 200.0), 3, seed=sd + 2)
        det = _detail(x, y, fp, max(2.0 * dx, 12.0), 7, sd + 3)
        # how much a slope faces south (drier in the northern hemisphere), in [-1, 1]
        horiz = np.maximum(np.hypot(n[:, 0], n[:, 1]), 1e-6)
        south = np.clip(-n[:, 1] / horiz, -1, 1) * np.sin(np.radians(slope))
        # vegetation: forest patches on gentle-to-moderate slopes below the tree line; grass
        # greener on shaded (north) slopes and low down, drier on sunny (south) slopes
        tree_line = 0.6 + 0.2 * (big - 0.5)
        forest = (_smoothstep(0.38, 0.62, 0.5 * mid + 0.5 * big + 0.2 * det)
                  * (1 - _smoothstep(tree_line - 0.08, tree_line + 0.04, e))
                  * (1 - _smoothstep(28.0, 40.0, slope)))
        dry = np.clip(_smoothstep(0.3, 0.75, big) * 0.6 + 0.25 * south + 0.15 * det, 0.0, 1.0)
        veg = _GRASS * (1 - dry[:, None]) + _DRY * dry[:, None]
        veg = veg * (1 - forest[:, None]) + _FOREST * forest[:, None] * (1 + 0.8 * det[:, None])
        # rock on steep slopes and towards the top of the relief
        alpine = float(np.clip((relief - 1000.0) / 1500.0, 0.0, 1.0))
        rock_lo = 40.0 - 8.0 * alpine
        rock_w = np.maximum(_smoothstep(rock_lo, rock_lo + 12.0, slope + 10.0 * (mid - 0.5) + 6.0 * det),
                            alpine * _smoothstep(0.8, 0.95, e + 0.12 * (big - 0.5)))
        strata = 0.8 + 0.45 * (_value_noise(x * 0.2, z, max(dx * 0.4, 6.0), seed=sd + 4) - 0.5)
        rock = (_ROCK * (1 - mid[:, None] * 0.6) + _ROCK_DARK * mid[:, None] * 0.6) * strata[:, None]
        alb = veg * (1 - rock_w[:, None]) + rock * rock_w[:, None]
        # snow above a jittered snow line: in the top of the relief and above ~2600 m
        snow_amt = float(np.clip(shading.snow, 0.0, 1.0))
        if snow_amt > 0 and hi > 2600.0:
            line_m = max(hi - (0.22 + 0.12 * snow_amt) * relief, 2600.0 + 400.0 * (1 - snow_amt))
            jitter = (0.12 * (big - 0.5) + 0.04 * (mid - 0.5) + 0.03 * det) * min(relief, 3000.0)
            snow_w = (_smoothstep(line_m - 60.0, line_m + 60.0, z + jitter)
                      * (1 - _smoothstep(40.0, 52.0, slope + 12.0 * (mid - 0.5))))
            alb = alb * (1 - snow_w[:, None]) + _SNOW * snow_w[:, None]
        alb = alb * (1.0 + 0.6 * det[:, None])
        # lighting: sun (Lambert, shadowed) + sky (hemisphere) + a little bounce
        ndl = np.clip(n @ sun, 0.0, 1.0)
        if shading.shadows:
            eps_o = 1e-3 * dx + 1e-4 * d
            origins = p + n_geo * eps_o[:, None]
            lit = ~np.isfinite(hf.cast(origins, sun, t_min=0.0))
            ndl = ndl * lit
        sky_w = 0.5 + 0.5 * n[:, 2]
        light = ndl[:, None] * _SUN + sky_w[:, None] * _SKY_LIGHT + 0.05 * (1 - sky_w)[:, None]
        col = alb * light
        # aerial perspective
        haze_m = shading.haze_m
        if haze_m is None:
            haze_m = float(np.clip(2.5 * np.percentile(d, 90), 6000.0, 40000.0))
        trans = np.exp(-d / haze_m)[:, None]
        glow = np.power(np.maximum(dirs[hit] @ sun, 0.0), 6.0)[:, None]
        haze_col = _HAZE + 0.25 * glow * np.array([1.0, 0.9, 0.7])
        col = col * trans + haze_col * (1 - trans)
        out[hit] = col
    return _tone(out, shading.exposure)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """``[0, 1]`` float RGB -> uint8."""
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def render_image(
    hf: Heightfield,
    camera: Camera,
    shading: Shading = Shading(),
    *,
    antialias: int = 2,
) -> tuple[np.ndarray, RenderResult]:
    """Shaded uint8 RGB ``(h, w, 3)`` image of ``hf`` seen by ``camera`` plus the
    :class:`RenderResult` of the pixel-centre rays (the ground truth).

    ``antialias``: the colour image is rendered with ``antialias**2`` rays per pixel (camera
    :meth:`~Camera.scaled`) and box-filtered; ``1`` = one ray per pixel (the ground-truth rays).
    """
    if isinstance(antialias, bool) or not isinstance(antialias, (int, np.integer)) or not 1 <= antialias <= 8:
        raise InputError(f"antialias must be an integer in [1, 8], got {antialias!r}")
    result = hf.render(camera)
    k = int(antialias)
    if k == 1:
        return to_uint8(shade(hf, result, shading)), result
    big = hf.render(camera.scaled(k))
    rgb = shade(hf, big, shading)
    # average in linear light, then re-encode
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    lin = lin.reshape(camera.height, k, camera.width, k, 3).mean(axis=(1, 3))
    enc = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return to_uint8(enc), result

