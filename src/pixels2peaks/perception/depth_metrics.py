"""Affine-invariant depth metrics (paper §7.1's MoGe-2 validation): least-squares scale and shift
alignment of a relative depth to the ground truth, then AbsRel and the ``delta < 1.25`` accuracy.

Alignment spaces (``Alignment``):

* ``"depth"``: ``min_{s,t} sum (s p + t - d)^2`` (the paper's wording);
* ``"relative"``: ``min_{s,t} sum ((s p + t - d) / d)^2``, the same fit weighted by ``1 / d^2``
  (the squared *relative* error, which is what AbsRel measures; far pixels no longer dominate);
* ``"disparity"``: ``min_{s,t} sum (s / p + t - 1 / d)^2``, then depth ``= 1 / (s / p + t)`` (the
  MiDaS convention for affine-invariant disparity).

Depths are any positive quantity (here the distance along the ray, metres for the ground truth).
Non-positive aligned depths count as errors (``delta`` fails, AbsRel uses ``|aligned - d| / d``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from pixels2peaks.errors import InputError

__all__ = ["Alignment", "ALIGNMENTS", "align_scale_shift", "abs_rel", "delta_accuracy", "depth_errors"]

Alignment = Literal["depth", "relative", "disparity"]
ALIGNMENTS: tuple[str, ...] = ("depth", "relative", "disparity")


def _pairs(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    d = np.asarray(gt, dtype=np.float64)
    if p.shape != d.shape:
        raise InputError(f"prediction {p.shape} and ground truth {d.shape} differ in shape")
    m = np.isfinite(p) & np.isfinite(d) & (d > 0) & (p > 0)
    if mask is not None:
        m &= np.asarray(mask, dtype=bool)
    if m.sum() < 2:
        raise InputError("fewer than 2 pixels with a positive prediction and ground truth")
    return p[m], d[m]


def align_scale_shift(pred: np.ndarray, gt: np.ndarray, space: Alignment = "depth") -> np.ndarray:
    """Aligned prediction (same shape as the 1-D inputs ``pred``, ``gt``; both positive)."""
    p = np.asarray(pred, dtype=np.float64)
    d = np.asarray(gt, dtype=np.float64)
    if space == "depth":
        a, b, wgt = p, d, np.ones_like(d)
    elif space == "relative":
        a, b, wgt = p, d, 1.0 / d
    elif space == "disparity":
        a, b, wgt = 1.0 / p, 1.0 / d, np.ones_like(d)
    else:
        raise InputError(f"unknown alignment {space!r}; choose one of {', '.join(ALIGNMENTS)}")
    A = np.stack([a, np.ones_like(a)], axis=1) * wgt[:, None]
    s, t = np.linalg.lstsq(A, b * wgt, rcond=None)[0]
    out = s * a + t
    if space == "disparity":
        with np.errstate(divide="ignore"):
            out = np.where(out > 0, 1.0 / np.where(out > 0, out, 1.0), -1.0)
    return out


def abs_rel(aligned: np.ndarray, gt: np.ndarray) -> float:
    """Mean of ``|aligned - d| / d``."""
    return float(np.mean(np.abs(aligned - gt) / gt))


def delta_accuracy(aligned: np.ndarray, gt: np.ndarray, threshold: float = 1.25) -> float:
    """Fraction of pixels with ``max(a / d, d / a) < threshold`` (non-positive ``a`` fail)."""
    ok = aligned > 0
    r = np.where(ok, np.maximum(aligned / gt, gt / np.where(ok, aligned, 1.0)), np.inf)
    return float(np.mean(r < threshold))


def depth_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                 spaces: tuple[str, ...] = ALIGNMENTS) -> dict[str, dict[str, float]]:
    """``{space: {"abs_rel", "delta_1.25"}}`` over pixels with finite positive ``pred`` and
    ``gt`` (and ``mask``), plus ``"pixels"``.

    >>> d = np.array([1.0, 2.0, 4.0, 8.0])
    >>> depth_errors(3.0 * d + 1.0, d)["depth"]["abs_rel"] < 1e-12
    True
    """
    p, d = _pairs(pred, gt, mask)
    out: dict[str, dict[str, float]] = {}
    for sp in spaces:
        a = align_scale_shift(p, d, sp)  # type: ignore[arg-type]
        out[sp] = {"abs_rel": abs_rel(a, d), "delta_1.25": delta_accuracy(a, d)}
    out["pixels"] = {"count": float(p.size)}
    return out
