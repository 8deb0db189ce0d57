"""View-consistency metrics of a reconstructed heightmap (paper Sec. 7.3).

* VVE, OVE and :func:`view_errors`: defined in :mod:`pixels2peaks.terrain.view_error` (the
  completion uses them too) and re-exported here.

* :func:`mask_iou` / :func:`terrain_mask_iou`: intersection over union of terrain masks (the
  silhouette agreement between the photo's terrain mask and a render of a result).

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
