"""View-consistency metrics of a reconstructed heightmap (paper Sec. 7.3).

* VVE, OVE and :func:`view_errors`: defined in :mod:`pixels2peaks.terrain.view_error` (the
  completion uses them too) and re-exported here.

* :func:`mask_iou` / :func:`terrain_mask_iou`: intersection over union of terrain masks (the
  silhouette agreement between the photo's terrain mask and a render of a result).

* :func:`occluding_contours`, :func:`contour_distance`, :func:`scaled_abs_rel` (issue
  [view-true]): the occluding contours of a depth render (the skyline plus depth jumps), the
  mean symmetric distance between two contour maps, and the depth error after a least-squares
  scale.

Inputs may be NumPy arrays or torch tensors (any device); results are Python floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.view_error import as_2d as _np
from pixels2peaks.terrain.view_error import occluded_view_error, view_errors, visible_view_error

__all__ = [
    "visible_view_error",
    "occluded_view_error",
    "mask_iou",
    "terrain_mask_iou",
    "view_errors",
    "vve",
    "ove",
    "occluding_contours",
    "contour_distance",
    "scaled_abs_rel",
]


def mask_iou(a: Any, b: Any) -> float:
    """Intersection over union of two boolean masks of the same shape (1.0 if both are empty).

    >>> mask_iou(np.array([[1, 1, 0]]), np.array([[1, 0, 0]]))
    0.5
    """
    ma = _np(a, "mask") > 0.5
    mb = _np(b, "mask") > 0.5
    if ma.shape != mb.shape:
        raise InputError(f"masks have different shapes {ma.shape} and {mb.shape}")
    union = int(np.count_nonzero(ma | mb))
    if union == 0:
        return 1.0
    return float(np.count_nonzero(ma & mb) / union)


def terrain_mask_iou(photo_mask: Any, z: Any, dx_m: float, camera: Any, surface: str = "bilinear") -> float:
    """IoU between a photo's terrain mask (``(h, w)``, True/white = terrain) and the terrain
    mask of heightmap ``z`` rendered from ``camera`` (:func:`pixels2peaks.camera.render`)."""
    from pixels2peaks.camera import render

    zz = _np(z, "Z")
    res = render(zz, dx_m, camera, surface=surface)
    pm = _np(photo_mask, "photo terrain mask")
    if pm.shape != res.hit.shape:
        raise InputError(f"photo mask has shape {pm.shape}, camera renders {res.hit.shape}")
    return mask_iou(pm, res.hit)


#: short names (paper's abbreviations)
vve = visible_view_error
ove = occluded_view_error


def occluding_contours(depth: Any, hit: Any, jump: float = 0.25) -> np.ndarray:
    """Occluding contours of a depth render, ``(h, w)`` bool: terrain pixels next to sky (the
    skyline and holes), and the nearer pixel of every 4-neighbour pair whose depths differ by
    more than ``jump`` of the nearer one (a ridge in front of a farther slope). ``depth``:
    metres along the ray (any value on sky); ``hit``: terrain pixels."""
    d = _np(depth, "depth").astype(np.float64)
    m = _np(hit, "hit mask") > 0.5
    if d.shape != m.shape:
        raise InputError(f"depth {d.shape} and hit mask {m.shape} differ in shape")
    d = np.where(m & np.isfinite(d), d, 0.0)  # sky depths (inf) take no part
    out = np.zeros(m.shape, bool)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        ma, mb = m[tuple(a)], m[tuple(b)]
        da, db = d[tuple(a)], d[tuple(b)]
        sky_edge = ma != mb
        out[tuple(a)] |= sky_edge & ma
        out[tuple(b)] |= sky_edge & mb
        both = ma & mb
        near = np.minimum(da, db)
        big = both & (np.abs(da - db) > jump * np.maximum(near, 1e-9))
        out[tuple(a)] |= big & (da <= db)
        out[tuple(b)] |= big & (db < da)
    return out


def contour_distance(a: Any, b: Any) -> float:
    """Mean symmetric distance in pixels between two contour maps: the mean, over the pixels of
    each map, of the distance to the nearest pixel of the other, averaged over both directions.
    ``inf`` when exactly one map is empty, 0 when both are."""
    from scipy.ndimage import distance_transform_edt

    ma, mb = _np(a, "contours") > 0.5, _np(b, "contours") > 0.5
    if ma.shape != mb.shape:
        raise InputError(f"contour maps have different shapes {ma.shape} and {mb.shape}")
    if not ma.any() and not mb.any():
        return 0.0
    if not ma.any() or not mb.any():
        return float("inf")
    to_b = distance_transform_edt(~mb)[ma].mean()
    to_a = distance_transform_edt(~ma)[mb].mean()
    return float(0.5 * (to_a + to_b))


def scaled_abs_rel(pred: Any, true: Any, mask: Any) -> float:
    """AbsRel ``mean |s p - t| / t`` over ``mask`` after the least-squares scale
    ``s = sum p t / sum p^2`` (the depth of a reconstruction up to its unknown scale). NaN when
    the mask is empty."""
    p, t = _np(pred, "depth").astype(np.float64), _np(true, "depth").astype(np.float64)
    m = (_np(mask, "mask") > 0.5) & np.isfinite(p) & np.isfinite(t) & (t > 0) & (p > 0)
    if not m.any():
        return float("nan")
    s = float((p[m] * t[m]).sum() / (p[m] ** 2).sum())
    return float(np.mean(np.abs(s * p[m] - t[m]) / t[m]))
