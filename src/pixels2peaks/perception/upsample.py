"""Joint bilateral upsampling (Kopf, Cohen, Lischinski & Uyttendaele 2007, *Joint bilateral
upsampling*, ACM TOG 26(3)): a low-resolution map (the depth network's ``ln d``) brought to the
photo's resolution with weights that fall with the distance in the low-resolution grid and with
the colour difference in the photo, so its edges follow the photo's edges (the ridgelines)
instead of the bilinear ramps between low-resolution cells.

    D(p) = sum_q D_low(q) f(|p_low - q|) g(|I(p) - I_low(q)|) / sum_q f g

``f``, ``g``: Gaussians of widths ``sigma_space`` (low-resolution cells) and ``sigma_range``
(colour, in [0, 1] units); ``q`` over the ``(2 radius + 1)^2`` low-resolution cells around
``p``; ``I_low``: the photo area-averaged to the low grid.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from pixels2peaks.errors import InputError

__all__ = ["joint_bilateral_upsample"]


@njit(cache=True, parallel=True)
def _jbu(low, guide_low, guide, radius, inv2s2, inv2r2):  # pragma: no cover - numba
    H, W, C = guide.shape
    h, w = low.shape
    out = np.empty((H, W), np.float32)
    sy, sx = h / H, w / W
    for i in prange(H):
        y = (i + 0.5) * sy - 0.5
        cy = int(math.floor(y + 0.5))
        for j in range(W):
            x = (j + 0.5) * sx - 0.5
            cx = int(math.floor(x + 0.5))
            num, den = 0.0, 0.0
            for qy in range(max(cy - radius, 0), min(cy + radius + 1, h)):
                for qx in range(max(cx - radius, 0), min(cx + radius + 1, w)):
                    ds = (qy - y) ** 2 + (qx - x) ** 2
                    dr = 0.0
                    for c in range(C):
                        e = guide[i, j, c] - guide_low[qy, qx, c]
                        dr += e * e
                    wgt = math.exp(-ds * inv2s2 - dr * inv2r2)
                    num += wgt * low[qy, qx]
                    den += wgt
            out[i, j] = num / den if den > 0 else low[min(max(cy, 0), h - 1), min(max(cx, 0), w - 1)]
    return out


def joint_bilateral_upsample(
    low: np.ndarray, guide: np.ndarray, *, sigma_space: float = 1.0, sigma_range: float = 0.1, radius: int = 2
) -> np.ndarray:
    """``low`` ``(h, w)`` -> ``(H, W)`` float32 guided by ``guide`` ``(H, W, C)`` in [0, 1]
    (module docstring)."""
    from PIL import Image

    lo = np.asarray(low, np.float32)
    g = np.asarray(guide, np.float32)
    if g.ndim == 2:
        g = g[..., None]
    if lo.ndim != 2 or g.ndim != 3 or not np.isfinite(lo).all():
        raise InputError(f"joint bilateral upsampling needs a finite 2-D map and an (H, W, C) guide, got "
                         f"{lo.shape} and {np.asarray(guide).shape}")
    if not (sigma_space > 0 and sigma_range > 0 and radius >= 1):
        raise InputError("joint bilateral upsampling needs sigma_space, sigma_range > 0 and radius >= 1")
    h, w = lo.shape
    g_low = np.stack([np.asarray(Image.fromarray(g[..., c], "F").resize((w, h), Image.BOX)) for c in range(g.shape[2])],
                     axis=-1).astype(np.float32)
    return _jbu(lo, g_low, g, int(radius), 0.5 / sigma_space**2, 0.5 / sigma_range**2)
