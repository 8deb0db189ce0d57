"""Trees standing on the terrain of a synthetic training photo, for the depth network.

Real photos have trees (and houses) in front of the camera, at the distance of the ground they
stand on; the heightfield renders have none, so a network trained on them took near woods for
the dark forest albedo of far slopes. :func:`add_trees` paints opaque crowns (ellipsoid
impostors: a shaded, speckled ellipse per tree at its crown's distance, with a trunk) onto a
rendered photo and its ground truth, nearest last, depth-tested against the terrain and each
other. Sizes in metres; the crowns' ground truth is their surface distance along each ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pixels2peaks.camera.render import RenderResult

__all__ = ["TreeConfig", "add_trees"]


@dataclass(frozen=True)
class TreeConfig:
    """Tree stand of one photo (metres, degrees)."""

    count: tuple[int, int] = (10, 200)  # trees per photo, uniform
    groves: tuple[int, int] = (1, 6)  # trees stand in this many round groves, uniform
    grove_radius_m: tuple[float, float] = (30.0, 300.0)
    height_m: tuple[float, float] = (6.0, 28.0)
    crown_ratio: tuple[float, float] = (0.15, 0.3)  # crown radius / tree height
    crown_depth: tuple[float, float] = (0.3, 0.45)  # vertical crown semi-axis / tree height
    min_distance_m: float = 30.0
    max_distance_m: float = 3000.0
    max_slope_deg: float = 38.0
    haze_m: float = 20000.0


def add_trees(image: np.ndarray, render: RenderResult, sun: np.ndarray, rng: np.random.Generator,
              cfg: TreeConfig = TreeConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photo ``image`` (uint8 ``(h, w, 3)``, seen through ``render.camera``) with trees, and the
    ground truth with them: ``depth`` (metres along the ray, ``inf`` = sky) and ``hit`` (terrain
    or tree); the inputs are not modified.

    Tree feet are drawn among the terrain pixels ``min_distance_m``-``max_distance_m`` away on
    slopes under ``max_slope_deg`` that lie in one of a few round groves (centres drawn the same
    way), with probability proportional to ``distance**1.5`` (between uniform per pixel, which
    crowds the foreground, and uniform per ground area, which puts most trees out of sight).
    ``sun``: unit world vector towards the sun; ``rng`` draws everything."""
    camera, depth, pointmap, normal = render.camera, render.depth, render.pointmap, render.normal
    img = image.astype(np.float32) / 255.0
    dep = depth.astype(np.float64)
    hit = render.hit.copy()
    h, w = hit.shape
    ok = hit & (depth < cfg.max_distance_m) & (depth > cfg.min_distance_m)
    ok &= np.nan_to_num(normal[..., 2], nan=0.0) > math.cos(math.radians(cfg.max_slope_deg))
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return image.copy(), dep, hit
    p = depth.ravel()[idx].astype(np.float64) ** 1.5
    ground = pointmap.reshape(-1, 3)[idx, :2].astype(np.float64)
    centres = ground[rng.choice(idx.size, int(rng.integers(cfg.groves[0], cfg.groves[1] + 1)), p=p / p.sum())]
    radii = rng.uniform(*cfg.grove_radius_m, len(centres))
    inside = (np.hypot(*(ground[:, None, :] - centres[None]).transpose(2, 0, 1)) <= radii).any(axis=1)
    p = p * inside
    n = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
    feet = pointmap.reshape(-1, 3)[idx[rng.choice(idx.size, n, p=p / p.sum())]].astype(np.float64)
    tall = rng.uniform(*cfg.height_m, n)
    rad = tall * rng.uniform(*cfg.crown_ratio, n)
    half = np.maximum(tall * rng.uniform(*cfg.crown_depth, n), rad)
    centre = feet.copy()
    centre[:, 2] += tall - half
    uv, zc = camera.world_to_pixel(centre)
    dist = camera.world_to_depth(centre)
    f = camera.focal_px
    sun_c = camera.world_to_camera(camera.position + np.asarray(sun, np.float64))
    base = np.array([0.16, 0.22, 0.11]) * rng.uniform(0.6, 1.3, (n, 1)) * rng.uniform(0.85, 1.15, (n, 3))
    haze = np.array([0.72, 0.77, 0.84])
    for k in np.argsort(-dist):
        if zc[k] <= rad[k]:
            continue
        ru, rv = f * rad[k] / zc[k], f * half[k] / zc[k]
        uc, vc = uv[k]
        u0, u1 = int(max(math.floor(uc - ru), 0)), int(min(math.ceil(uc + ru), w))
        v0 = int(max(math.floor(vc - rv), 0))
        # trunk from the crown's bottom to the foot
        uf, _ = camera.world_to_pixel(feet[k])
        v1 = int(min(math.ceil(max(vc + rv, uf[1])), h))
        if u0 >= u1 or v0 >= v1:
            continue
        vv, uu = np.mgrid[v0:v1, u0:u1].astype(np.float64) + 0.5
        x, y = (uu - uc) / ru, (vv - vc) / rv
        q = x * x + y * y
        crown = q <= 1.0
        trunk = (np.abs(uu - uc) <= max(0.3, 0.04 * ru)) & (vv > vc) & (vv <= uf[1]) & ~crown
        dz = np.where(crown, dist[k] - rad[k] * np.sqrt(np.clip(1.0 - q, 0.0, 1.0)), dist[k])
        front = (crown | trunk) & (dz < dep[v0:v1, u0:u1])
        if not front.any():
            continue
        nz = -np.sqrt(np.clip(1.0 - q, 0.0, 1.0))
        lam = np.clip(x * sun_c[0] + y * sun_c[1] + nz * sun_c[2], 0.0, 1.0)
        light = 0.35 + 1.1 * lam * (0.6 + 0.4 * rng.random(q.shape))  # speckled foliage
        col = np.where(crown[..., None], base[k] * light[..., None], np.array([0.12, 0.09, 0.06]))
        col = col ** (1.0 / 2.2)  # roughly sRGB
        t = np.exp(-dz / cfg.haze_m)[..., None]
        col = col * t + haze * (1.0 - t)
        img[v0:v1, u0:u1][front] = col[front]
        dep[v0:v1, u0:u1][front] = dz[front]
        hit[v0:v1, u0:u1][front] = True
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8), dep, hit
