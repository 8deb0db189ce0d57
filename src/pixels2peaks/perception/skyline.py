"""Sky / terrain segmentation by a per-column skyline found with dynamic programming.

Model: every image column ``c`` has one skyline row ``b_c`` (0 = no sky, ``H`` = all sky): rows
above it are sky, rows at or below it terrain (foreground included). Given per-pixel sky-vs-
terrain log-likelihood ratios ``L`` (two Gaussian mixtures over colour and texture features), the
skyline minimises

    E(b) = sum_c [ sum_{r < b_c} -L(r, c) + sum_{r >= b_c} L(r, c) - alpha min(G(b_c, c), 5) ]
           + sum_c min(lam |b_c - b_{c-1}|, tau)

(``G`` = vertical colour gradient at the boundary, normalised by its mean), solved exactly by
dynamic programming over columns with a truncated-L1 distance transform (O(H W)). The mixtures
are initialised from seeds (smooth blue-ish or bright pixels connected to the top edge; pixels
well below them) and re-fitted to the segmentation a few times (GrabCut-like iterations).

Image borders that are uniformly black (panorama crops, frames: near-black components touching the
border with median max-channel <= 3) are *void*: neutral in the energy and never terrain.

Choices are ours (the paper uses Grounding DINO + SAM); the parameters were set on synthetic
renders and the five real photos of ``../shared/data/photos`` (see docs/perception.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = [
    "SkylineOptions",
    "border_void",
    "sky_features",
    "skyline_dp",
    "gmm_fit",
    "gmm_score",
    "segment_terrain",
]


@dataclass(frozen=True)
class SkylineOptions:
    """Parameters of :func:`segment_terrain`.

    max_side_px: the image is box-downsampled so its longer side is at most this (speed).
    iterations: mixture re-fits.
    components: Gaussian components per class.
    smooth_per_row: ``lam``, cost of a one-row skyline step between neighbouring columns.
    jump_fraction: ``tau`` = this x the (downsampled) height, the cap on a step's cost.
    edge_weight: ``alpha``, reward for placing the skyline on a strong vertical gradient.
    void_max_level: max-channel level (0-255) below which border pixels may be void.
    samples: pixels per class used to fit each mixture (EM, :func:`gmm_fit`).
    seed: seed of the sampling and the mixtures' initialisation (the result is deterministic).
    seed_texture: ``(floor, factor, cap)``: a sky seed's local brightness std (0-1 scale) is at
        most ``clip(factor x the median of the top rows, floor, cap)``. Hazy far terrain fades
        to the horizon's colour but keeps some texture (renders: ~0.01 against ~0.002 in the
        sky); with one loose threshold (0.03) the seeds grew down into it and it became sky
        (docs/perception.md, "Session 14"). The factor lets a grainy or cloudy sky stay a seed.
    """

    max_side_px: int = 400
    iterations: int = 3
    components: int = 3
    smooth_per_row: float = 0.5
    jump_fraction: float = 0.15
    edge_weight: float = 1.0
    void_max_level: int = 12
    samples: int = 4000
    seed: int = 0
    seed_texture: tuple[float, float, float] = (0.012, 8.0, 0.03)


def border_void(image: np.ndarray, max_level: int = 12, median_level: int = 3) -> np.ndarray:
    """Bool ``(H, W)``: near-black components (max channel ``<= max_level``) touching the image
    border whose median max channel is ``<= median_level`` (uniform black borders, not shadows)."""
    from scipy import ndimage as ndi

    mx = np.asarray(image).max(axis=2)
    lab, _ = ndi.label(mx <= max_level)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    border = border[border > 0]
    if border.size == 0:
        return np.zeros(mx.shape, bool)
    med = np.atleast_1d(ndi.median(mx, lab, border))
    return np.isin(lab, border[med <= median_level])


def sky_features(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` features of a float RGB image in ``[0, 1]``: brightness, blue - red,
    green - (red + blue) / 2, ln(local brightness std + 0.003) over a window ~1/75 of the height."""
    from scipy.ndimage import uniform_filter

    lum = rgb.mean(axis=2)
    r = max(1, rgb.shape[0] // 150)
    mean = uniform_filter(lum, 2 * r + 1, mode="nearest")
    tex = np.sqrt(np.maximum(uniform_filter(lum * lum, 2 * r + 1, mode="nearest") - mean * mean, 0.0))
    return np.stack([lum, rgb[..., 2] - rgb[..., 0], rgb[..., 1] - 0.5 * (rgb[..., 0] + rgb[..., 2]),
                     np.log(tex + 0.003)], axis=-1)


@njit(cache=True)
def _dp(unary, lam, tau):  # pragma: no cover - compiled
    w, nb = unary.shape
    cost = unary[0].copy()
    back = np.zeros((w, nb), np.int64)
    m = np.empty(nb)
    arg = np.empty(nb, np.int64)
    for c in range(1, w):
        for b in range(nb):
            m[b] = cost[b]
            arg[b] = b
        for b in range(1, nb):
            if m[b - 1] + lam < m[b]:
                m[b] = m[b - 1] + lam
                arg[b] = arg[b - 1]
        for b in range(nb - 2, -1, -1):
            if m[b + 1] + lam < m[b]:
                m[b] = m[b + 1] + lam
                arg[b] = arg[b + 1]
        j = np.argmin(cost)
        jump = cost[j] + tau
        for b in range(nb):
            if jump < m[b]:
                m[b] = jump
                arg[b] = j
        back[c] = arg
        for b in range(nb):
            cost[b] = m[b] + unary[c, b]
    out = np.zeros(w, np.int64)
    out[w - 1] = np.argmin(cost)
    for c in range(w - 1, 0, -1):
        out[c - 1] = back[c, out[c]]
    return out


def skyline_dp(unary: np.ndarray, smooth: float, jump_cap: float) -> np.ndarray:
    """Exact minimiser of ``sum_c unary[c, b_c] + sum_c min(smooth |b_c - b_{c-1}|, jump_cap)``.

    ``unary``: ``(W, B)`` cost of each boundary ``b`` in each column. Returns ``b`` (int64, ``(W,)``).
    """
    u = np.ascontiguousarray(unary, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] < 1 or u.shape[1] < 1:
        raise ValueError(f"unary must be a non-empty (W, B) array, got {u.shape}")
    return _dp(u, float(smooth), float(jump_cap))


def gmm_fit(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 40,
            reg: float = 1e-4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian mixture by EM (full covariances + ``reg`` on the diagonal), initialised at ``k``
    random samples. Returns ``(weights (k,), means (k, D), covariances (k, D, D))``."""
    n, dim = x.shape
    k = max(1, min(k, n))
    mu = x[rng.choice(n, k, replace=False)].copy()
    cov = np.repeat((np.cov(x.T).reshape(dim, dim) + reg * np.eye(dim))[None], k, axis=0)
    w = np.full(k, 1.0 / k)
    for _ in range(iterations):
        logp = _gmm_component_logpdf(x, w, mu, cov)
        logp -= logp.max(axis=1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0) + 1e-10
        w = nk / n
        mu = (r.T @ x) / nk[:, None]
        for j in range(k):
            d = x - mu[j]
            cov[j] = (r[:, j, None] * d).T @ d / nk[j] + reg * np.eye(dim)
    return w, mu, cov


def _gmm_component_logpdf(x, w, mu, cov) -> np.ndarray:
    dim = x.shape[1]
    out = np.empty((x.shape[0], len(w)))
    for j in range(len(w)):
        c = np.linalg.cholesky(cov[j])
        z = np.linalg.solve(c, (x - mu[j]).T)
        out[:, j] = (np.log(w[j]) - 0.5 * (z * z).sum(axis=0) - np.log(np.diag(c)).sum()
                     - 0.5 * dim * np.log(2 * np.pi))
    return out


def gmm_score(x: np.ndarray, model: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Log density of each row of ``x`` under a :func:`gmm_fit` model."""
    lp = _gmm_component_logpdf(x, *model)
    m = lp.max(axis=1)
    return m + np.log(np.exp(lp - m[:, None]).sum(axis=1))


def _seeds(f: np.ndarray, void: np.ndarray, texture: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Initial sky seeds (smooth -- see ``SkylineOptions.seed_texture`` --, blue-ish or bright,
    connected to the top rows) and terrain seeds (pixels a little below each column's first
    non-seed pixel)."""
    from scipy import ndimage as ndi

    h = f.shape[0]
    tex = np.exp(f[..., 3]) - 0.003
    n_top = max(1, h // 20)
    floor, factor, cap = texture
    top_tex = tex[:n_top][~void[:n_top]]
    thr = float(np.clip(factor * np.median(top_tex), floor, cap)) if top_tex.size else cap
    cand = (tex <= thr) & ((f[..., 1] >= -0.02) | (f[..., 0] >= 0.7)) & ~void
    lab, _ = ndi.label(cand)
    top = lab[:n_top]
    sky = np.isin(lab, np.unique(top[top > 0]))
    rows = np.arange(h)[:, None]
    if sky.sum() < 50:
        sky = (rows < 0.1 * h) & ~void & (tex <= np.quantile(tex, 0.3))
    first = np.where((~sky).any(axis=0), np.argmax(~sky, axis=0), h)
    if (first >= h).all():  # every column is sky-like from top to bottom: no terrain at all
        return sky, np.zeros_like(sky)
    terrain = (rows >= first[None, :] + max(2, h // 50)) & ~void
    if terrain.sum() < 50:
        terrain = (rows > 0.6 * h) & ~void
    return sky, terrain


def segment_terrain(image: np.ndarray, options: SkylineOptions = SkylineOptions()) -> np.ndarray:
    """Bool terrain mask ``(H, W)`` of a uint8 RGB image: at or below each column's skyline and
    not void (see the module docstring)."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    img = np.asarray(image)
    h0, w0 = img.shape[:2]
    k = max(1, int(math.ceil(max(h0, w0) / options.max_side_px)))
    h, w = max(2, h0 // k), max(2, w0 // k)
    small = np.asarray(Image.fromarray(img).resize((w, h), Image.BOX), dtype=np.float64) / 255.0
    void_full = border_void(img, options.void_max_level)
    void = np.asarray(Image.fromarray(void_full.astype(np.uint8) * 255).resize((w, h), Image.BOX)) > 0
    f = sky_features(small)
    x = f.reshape(-1, f.shape[2])
    sky, terrain = _seeds(f, void, options.seed_texture)
    if not terrain.any():
        return np.zeros((h0, w0), bool)
    rng = np.random.default_rng(options.seed)
    g = np.abs(np.diff(gaussian_filter(small, (1.0, 1.0, 0.0)), axis=0)).sum(axis=2)
    edge = np.zeros((h + 1, w))
    edge[1:h] = np.minimum(g / (g.mean() + 1e-9), 5.0)
    rows = np.arange(h)[:, None]
    b = np.zeros(w, np.int64)
    for _ in range(max(1, options.iterations)):
        if sky.sum() < 2 * options.components or terrain.sum() < 2 * options.components:
            break
        models = []
        for m in (sky, terrain):
            idx = np.flatnonzero(m.ravel())
            idx = rng.choice(idx, min(idx.size, options.samples), replace=False)
            models.append(gmm_fit(x[idx], options.components, rng))
        llr = np.clip(gmm_score(x, models[0]) - gmm_score(x, models[1]), -10.0, 10.0).reshape(h, w)
        llr[void] = 0.0
        sky_cost = np.vstack([np.zeros((1, w)), np.cumsum(-llr, axis=0)])  # rows < b are sky
        ter_cum = np.vstack([np.zeros((1, w)), np.cumsum(llr, axis=0)])
        unary = sky_cost + (ter_cum[-1][None, :] - ter_cum) - options.edge_weight * edge
        b = skyline_dp(unary.T, options.smooth_per_row, options.jump_fraction * h)
        sky = (rows < b[None, :]) & ~void
        terrain = (rows >= b[None, :]) & ~void
    # skyline back to full resolution (boundary rows scale by k; columns interpolated)
    cols = (np.arange(w0) + 0.5) / k - 0.5
    bk = np.where(b >= h, h0, b * k).astype(np.float64)  # an all-sky column stays all sky
    bf = np.interp(cols, np.arange(w), bk)
    return (np.arange(h0)[:, None] >= bf[None, :]) & ~void_full
