"""Preview images of a reconstruction (``p2p run`` / ``p2p visible``): uint8 RGB arrays.

* :func:`triptych`: photo | render of the result from the estimated camera | overlay of the
  silhouettes (photo skyline yellow, photo ridgelines cyan, the render's skyline and occluding
  contours magenta).
* :func:`overview_image`: the paper-style pulled-back 3D view: the result seen from behind and
  above the photo's camera, visible cells grey, generated cells tinted, the photo's camera as a
  red dot.
* :func:`perception_overlay`: the photo with the reconstructed pixels tinted, its skyline and
  ridgelines; :func:`top_view`: ``Z_V`` from above with the camera and its field of view;
  :func:`visible_preview`: the two side by side.
"""

from __future__ import annotations

import math

import numpy as np

from pixels2peaks.camera import Camera, Heightfield, Shading, render_image
from pixels2peaks.camera.model import xy_to_cell
from pixels2peaks.camera.shading import smooth_normals

__all__ = [
    "silhouettes",
    "photo_skyline",
    "render_view",
    "triptych",
    "overview_camera",
    "overview_image",
    "perception_overlay",
    "top_view",
    "visible_preview",
    "hstack",
    "hillshade_rgb",
    "depressions_image",
]

SKYLINE_RGB = (255, 220, 0)
RIDGE_RGB = (0, 230, 255)
RENDER_RGB = (255, 0, 200)
GREY_RGB = np.array([0.78, 0.78, 0.78])
TINT_RGB = np.array([0.93, 0.62, 0.36])
SIDE_RGB = np.array([0.42, 0.36, 0.30])
SKY_RGB = (np.array([0.62, 0.74, 0.90]), np.array([0.88, 0.92, 0.97]))  # top, horizon


def _resize(a: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an ``(h, w[, 3])`` uint8/bool array to ``size = (width, height)``."""
    from PIL import Image

    if a.shape[1::-1][:2] == size:
        return a
    if a.dtype == bool:
        return np.asarray(Image.fromarray(a.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127
    return np.asarray(Image.fromarray(a).resize(size, Image.NEAREST if nearest else Image.LANCZOS))


def hstack(panels: list[np.ndarray], gap_px: int = 4, background: int = 24) -> np.ndarray:
    """Panels side by side (heights padded to the tallest), ``gap_px`` apart."""
    h = max(p.shape[0] for p in panels)
    cols = []
    for i, p in enumerate(panels):
        pad = np.full((h, p.shape[1], 3), background, np.uint8)
        pad[: p.shape[0]] = p
        cols.append(pad)
        if i < len(panels) - 1:
            cols.append(np.full((h, gap_px, 3), background, np.uint8))
    return np.concatenate(cols, axis=1)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (image borders do not count)."""
    m = np.asarray(mask, bool)
    out = np.zeros_like(m)
    out[1:] |= m[1:] & ~m[:-1]
    out[:-1] |= m[:-1] & ~m[1:]
    out[:, 1:] |= m[:, 1:] & ~m[:, :-1]
    out[:, :-1] |= m[:, :-1] & ~m[:, 1:]
    return out


def photo_skyline(terrain: np.ndarray) -> np.ndarray:
    """The photo's silhouette: terrain pixels bordering sky."""
    return _boundary(terrain)


def silhouettes(hit: np.ndarray, depth: np.ndarray, jump: float = 1.25) -> np.ndarray:
    """Silhouettes of a render: its skyline plus occluding contours, the nearer pixel of a
    vertical or horizontal neighbour pair whose depths differ by more than ``jump`` x."""
    m = np.asarray(hit, bool)
    d = np.where(m, np.asarray(depth, np.float64), np.inf)
    out = _boundary(m)
    for axis in (0, 1):
        a = np.moveaxis(d, axis, 0)
        o = np.moveaxis(out, axis, 0)
        near, far = np.minimum(a[1:], a[:-1]), np.maximum(a[1:], a[:-1])
        edge = np.isfinite(far) & (far > jump * near)
        o[1:] |= edge & (a[1:] <= a[:-1])
        o[:-1] |= edge & (a[:-1] < a[1:])
    return out


def _thicken(edges: np.ndarray, px: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(edges, iterations=px) if px > 0 else edges


def _safe_camera(hf: Heightfield, camera: Camera) -> Camera:
    """The camera, lifted just above the surface if the result rises over its position."""
    x, y, zc = camera.position_m
    ground = float(hf.height_at(x, y))
    if math.isfinite(ground) and zc <= ground:
        relief = float(np.nanmax(hf.z) - np.nanmin(hf.z))
        return camera.replace(position_m=(x, y, ground + max(1.0, 1e-3 * relief)))
    return camera


def render_view(z: np.ndarray, dx_m: float, camera: Camera, width_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shaded render of heightmap ``z`` from ``camera`` at ``width_px`` pixels across (same
    field of view): ``(rgb uint8, hit, depth)``."""
    hf = Heightfield(np.asarray(z, np.float64), dx_m)
    w = max(8, min(int(width_px), camera.width))
    cam = _safe_camera(hf, camera).replace(width=w, height=max(8, round(camera.height * w / camera.width)))
    rgb, res = render_image(hf, cam, Shading(clouds=0.0), antialias=1)
    return rgb, res.hit, res.depth


def triptych(
    photo: np.ndarray, terrain: np.ndarray, z: np.ndarray, dx_m: float, camera: Camera, width_px: int = 512,
    ridgelines: np.ndarray | None = None,
) -> np.ndarray:
    """Photo | render of ``z`` from ``camera`` | silhouettes over the dimmed photo (yellow: the
    photo's skyline, cyan: the photo's internal ridgelines when given, bool ``(H, W)``;
    magenta: the render's skyline and occluding contours), so a kept view shows the photo's
    lines on the render's."""
    rgb, hit, depth = render_view(z, dx_m, camera, width_px)
    size = (rgb.shape[1], rgb.shape[0])
    ph = _resize(np.asarray(photo, np.uint8), size)
    sky = _resize(np.asarray(terrain, bool), size)
    k = max(1, round(size[0] / 400))
    down = max(1, math.ceil(np.asarray(terrain).shape[0] / size[1]))
    over = (0.45 * ph + 0.25 * 255).astype(np.uint8)
    over[_thicken(silhouettes(hit, depth), k - 1)] = RENDER_RGB
    if ridgelines is not None:
        lines = _resize(_thicken(np.asarray(ridgelines, bool), down - 1), size, nearest=True)
        over[_thicken(lines, k - 1)] = RIDGE_RGB
    over[_thicken(photo_skyline(sky), k - 1)] = SKYLINE_RGB
    return hstack([ph, rgb, over])


def overview_camera(shape: tuple[int, int], dx_m: float, z: np.ndarray, yaw_deg: float = 0.0,
                    elevation_deg: float = 35.0, fov_x_deg: float = 50.0,
                    size: tuple[int, int] = (960, 540)) -> Camera:
    """A camera behind and above the grid, looking along ``yaw_deg`` down at the grid's centre
    from ``elevation_deg``, far enough for the whole grid to fit."""
    h, w = shape
    zc = float(np.nanmedian(z))
    cx, cy = 0.5 * w * dx_m, 0.5 * h * dx_m
    radius = 0.5 * math.hypot(w * dx_m, h * dx_m)
    relief = float(np.nanmax(z) - np.nanmin(z))
    cam = Camera(size[0], size[1], fov_x_deg, (0.0, 0.0, 0.0))
    half = math.radians(min(cam.fov_x_deg, cam.fov_y_deg)) / 2.0
    dist = 0.8 * math.hypot(radius, 0.5 * relief) / math.sin(half)
    e, a = math.radians(elevation_deg), math.radians(yaw_deg)
    pos = (cx - dist * math.cos(e) * math.sin(a), cy - dist * math.cos(e) * math.cos(a), zc + dist * math.sin(e))
    return cam.replace(position_m=pos, yaw_deg=yaw_deg, pitch_deg=-elevation_deg, dx_m=dx_m)


def overview_image(
    z: np.ndarray, dx_m: float, known: np.ndarray, camera: Camera | None = None,
    size: tuple[int, int] = (960, 540),
) -> np.ndarray:
    """Pulled-back 3D view of ``z`` (the paper's figures): visible (``known``) cells grey,
    generated cells tinted, Lambert shading (sun from the north-west), sky gradient and light
    haze; ``camera`` (the photo's) sets the viewing direction and is drawn as a red dot."""
    zz = np.asarray(z, np.float64)
    hf = Heightfield(zz, dx_m)
    yaw = camera.yaw_deg if camera is not None else 0.0
    view = overview_camera(zz.shape, dx_m, zz, yaw_deg=yaw, size=size)
    res = hf.render(view)
    u, v = view.pixel_centres()
    dirs = view.pixel_to_ray(u, v)
    t = np.clip(dirs[..., 2] * 3.0 + 0.2, 0.0, 1.0)[..., None]
    img = SKY_RGB[1] * (1 - t) + SKY_RGB[0] * t
    relief = float(np.nanmax(zz) - np.nanmin(zz))
    hit = res.hit.copy()
    if hit.any():  # the grid's sides: a block cut off at a base below the lowest cell
        pts = res.pointmap[hit].astype(np.float64)
        tol = 1e-3 * dx_m
        x_m, y_m = zz.shape[1] * dx_m, zz.shape[0] * dx_m
        border = ((pts[:, 0] <= tol) | (pts[:, 0] >= x_m - tol) | (pts[:, 1] <= tol) | (pts[:, 1] >= y_m - tol))
        ground = hf.height_at(np.clip(pts[:, 0], 2 * tol, x_m - 2 * tol), np.clip(pts[:, 1], 2 * tol, y_m - 2 * tol))
        below = border & (pts[:, 2] < ground - 1e-3 * relief - 1e-6)
        side = np.zeros_like(hit)
        side[hit] = below
        cut = np.zeros_like(hit)
        cut[hit] = below & (pts[:, 2] < float(np.nanmin(zz)) - 0.15 * relief)
        hit &= ~side
        img[side & ~cut] = SIDE_RGB
    if hit.any():
        pts = res.pointmap[hit].astype(np.float64)
        n = smooth_normals(hf, pts)
        az, el = math.radians(315.0), math.radians(40.0)
        sun = np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])
        lam = 0.3 + 0.7 * np.clip(n @ sun, 0.0, 1.0)
        row, col = xy_to_cell(pts[:, 0], pts[:, 1], zz.shape[0], dx_m)
        row = np.clip(row, 0, zz.shape[0] - 1)
        col = np.clip(col, 0, zz.shape[1] - 1)
        base = np.where(np.asarray(known, bool)[row, col][:, None], GREY_RGB, TINT_RGB)
        d = res.depth[hit].astype(np.float64)
        haze = (1.0 - np.exp(-(d - d.min()) / max(3.0 * (d.max() - d.min()), 1e-9)))[:, None]
        img[hit] = (base * lam[:, None]) * (1 - 0.5 * haze) + SKY_RGB[1] * 0.5 * haze
    out = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    if camera is not None:
        uv, zc = view.world_to_pixel(np.asarray(camera.position_m, np.float64))
        if zc > 0:
            _dot(out, float(uv[0]), float(uv[1]), max(3, size[0] // 160), (230, 30, 30))
    return out


def _dot(img: np.ndarray, u: float, v: float, r: int, colour: tuple[int, int, int]) -> None:
    h, w = img.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    img[(xx + 0.5 - u) ** 2 + (yy + 0.5 - v) ** 2 <= r * r] = colour


def _line(img: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], colour: tuple[int, int, int]) -> None:
    n = int(max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1]))) + 1
    u = np.linspace(p0[0], p1[0], n).astype(int)
    v = np.linspace(p0[1], p1[1], n).astype(int)
    ok = (u >= 0) & (u < img.shape[1]) & (v >= 0) & (v < img.shape[0])
    img[v[ok], u[ok]] = colour


def perception_overlay(
    photo: np.ndarray, terrain: np.ndarray, pointmap: np.ndarray, ridgelines: np.ndarray | None = None,
    height_px: int = 384,
) -> np.ndarray:
    """The photo with terrain pixels tinted (green: reconstructed point, red: terrain without a
    point, e.g. DBSCAN noise), the skyline (yellow) and, when given, the internal ridgelines
    (bool ``(H, W)``, magenta), ``height_px`` high."""
    ph = np.asarray(photo, np.uint8)
    has_point = np.isfinite(np.asarray(pointmap)).all(axis=2)
    out = ph.astype(np.float64)
    out[has_point] = 0.6 * out[has_point] + 0.4 * np.array([60, 200, 90])
    lost = np.asarray(terrain, bool) & ~has_point
    out[lost] = 0.5 * out[lost] + 0.5 * np.array([230, 40, 40])
    size = (max(1, round(ph.shape[1] * height_px / ph.shape[0])), height_px)
    out = _resize(out.astype(np.uint8), size).copy()
    k = max(1, round(size[0] / 400))
    down = max(1, math.ceil(ph.shape[0] / height_px))  # thicken first so a shrink keeps 1-px lines
    for lines, colour in ((ridgelines, RENDER_RGB), (photo_skyline(np.asarray(terrain, bool)), SKYLINE_RGB)):
        if lines is not None:
            thin = _resize(_thicken(np.asarray(lines, bool), down - 1), size, nearest=True)
            out[_thicken(thin, k - 1)] = colour
    return out


def top_view(z_v: np.ndarray, dx_m: float, camera: Camera, height_px: int = 384) -> np.ndarray:
    """Top view of ``Z_V`` (hillshade over height colours, north up, unseen cells dark) with the
    camera (red dot) and its horizontal field of view, ``height_px`` high."""
    from pixels2peaks.terrain.attributes import hillshade

    zv = np.asarray(z_v, np.float64)
    seen = np.isfinite(zv)
    lo, hi = (float(zv[seen].min()), float(zv[seen].max())) if seen.any() else (0.0, 1.0)
    filled = np.where(seen, zv, lo)
    shade = 0.35 + 0.65 * np.asarray(hillshade(filled, dx_m))
    f = ((filled - lo) / max(hi - lo, 1e-9))[..., None]
    colour = np.array([0.35, 0.55, 0.35]) * (1 - f) + np.array([0.95, 0.93, 0.9]) * f
    top = np.where(seen[..., None], colour * shade[..., None], 0.12)
    top = (np.clip(top, 0, 1) * 255).astype(np.uint8)
    h, w = zv.shape
    s = height_px / h
    top = _resize(top, (max(1, round(w * s)), height_px), nearest=True).copy()
    x, y, _ = camera.position_m
    cu, cv = x / dx_m * s, (h - y / dx_m) * s
    reach = 0.6 * max(h, w) * s
    for off in (-0.5 * camera.fov_x_deg, 0.5 * camera.fov_x_deg):
        a = math.radians(camera.yaw_deg + off)
        _line(top, (cu, cv), (cu + reach * math.sin(a), cv - reach * math.cos(a)), (230, 30, 30))
    _dot(top, cu, cv, 4, (230, 30, 30))
    return top


def visible_preview(
    photo: np.ndarray, terrain: np.ndarray, pointmap: np.ndarray, z_v: np.ndarray, dx_m: float,
    camera: Camera, height_px: int = 384,
) -> np.ndarray:
    """:func:`perception_overlay` (without ridgelines) | :func:`top_view`: ``p2p visible``'s
    ``preview.png``."""
    return hstack([perception_overlay(photo, terrain, pointmap, None, height_px),
                   top_view(z_v, dx_m, camera, height_px)])


def hillshade_rgb(z, known, dx_m: float, z_factor: float = 1.0):
    """``(H, W, 3)`` float RGB in [0, 1]: hillshade of ``z`` (metres, heights scaled by
    ``z_factor``), visible cells grey, synthesized cells taupe (as in the paper's figures)."""
    import numpy as np

    from pixels2peaks.terrain.attributes import hillshade

    shade = 0.2 + 0.8 * hillshade(np.asarray(z, np.float64) * float(z_factor), dx_m)
    grey, taupe = np.array([1.0, 1.0, 1.0]), np.array([1.0, 0.86, 0.72])
    return shade[..., None] * np.where(np.asarray(known, bool)[..., None], grey, taupe)


def depressions_image(z, depth, dx_m: float):
    """RGB preview: hillshade with depressions tinted blue by depth (deeper = darker blue)."""
    import numpy as np
    from PIL import Image

    from pixels2peaks.terrain.attributes import hillshade

    zf = np.where(np.isnan(z), np.nanmin(z), z)
    shade = hillshade(zf.astype(np.float64), dx_m)
    rgb = np.repeat((0.25 + 0.75 * shade)[..., None], 3, axis=2)
    d = np.nan_to_num(depth, nan=0.0)
    wet = d > 0
    if wet.any():
        frac = np.clip(d / max(float(np.percentile(d[wet], 95)), 1e-9), 0.0, 1.0)[..., None]
        light, deep = np.array([0.55, 0.75, 1.0]), np.array([0.0, 0.15, 0.55])
        tint = light * (1 - frac) + deep * frac
        rgb = np.where(wet[..., None], 0.3 * rgb + 0.7 * tint, rgb)
    rgb[np.isnan(z)] = 0.0
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
