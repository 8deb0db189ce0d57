"""MoGe geometry backend (paper §4.1: MoGe-2 predicts the per-pixel 3D pointmap).

``MoGeGeometry.from_pretrained(repo)`` loads ``moge.model.v2.MoGeModel`` (MoGe-1's
``moge.model.v1`` when v2 is missing) from a local checkpoint file or the local Hugging Face
cache only (``hf_hub_download(..., local_files_only=True)``: nothing is downloaded), on CUDA when
present. ``estimate`` runs ``model.infer`` on the RGB image in [0, 1] (``fov_x`` passed when the
FOV is known, so MoGe only recovers the depth shift) and returns its pointmap, which is already
in our camera frame (OpenCV: x right, y down, z forward; metric for MoGe-2, affine-invariant for
MoGe-1: either is fine, the pipeline fits the scale to the elevation prior). Masked pixels
(sky, undefined geometry) come back as ``inf`` and are invalid. The FOV is MoGe's estimate from
its normalised intrinsics, ``fov_x = 2 atan(0.5 / fx)``, unless given.

Install: ``pip install 'pixels2peaks[moge]'`` (the ``moge`` package from its repository) and put
the checkpoint in the Hugging Face cache (``huggingface-cli download Ruicheng/moge-2-vitl-normal
model.pt``) or pass its path as the ``moge_model`` backend option.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.errors import InputError
from pixels2peaks.perception.protocols import GeometryResult

__all__ = ["MOGE_MODEL", "MoGeGeometry", "fov_from_intrinsics"]

#: default checkpoint (Hugging Face repo id; file ``model.pt``)
MOGE_MODEL = "Ruicheng/moge-2-vitl-normal"


def fov_from_intrinsics(intrinsics: np.ndarray) -> float:
    """Horizontal FOV (degrees) from MoGe's normalised ``(3, 3)`` intrinsics (``fx`` in image
    widths).

    >>> round(fov_from_intrinsics(np.array([[0.5, 0, 0.5], [0, 0.6, 0.5], [0, 0, 1]])), 6)
    90.0
    """
    fx = float(np.asarray(intrinsics, dtype=np.float64)[0, 0])
    if not (math.isfinite(fx) and fx > 0):
        raise InputError(f"MoGe returned a bad focal length {fx!r}")
    return math.degrees(2.0 * math.atan(0.5 / fx))


def _model_class() -> Any:
    try:
        from moge.model.v2 import MoGeModel
    except ImportError:
        from moge.model.v1 import MoGeModel
    return MoGeModel


@dataclass
class MoGeGeometry:
    """MoGe pointmap backend (see the module docstring). ``model``: a loaded ``MoGeModel`` (or any
    object with its ``infer`` method); ``resolution_level``: MoGe's 0-9 token budget."""

    model: Any
    fov_x_deg: float | None = None
    resolution_level: int = 9
    name: str = "moge"

    @classmethod
    def from_pretrained(cls, repo: str = MOGE_MODEL, fov_x_deg: float | None = None, **kw: Any) -> MoGeGeometry:
        import torch

        try:
            if Path(repo).exists():
                model = _model_class().from_pretrained(repo)
            else:
                model = _model_class().from_pretrained(repo, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loading failure is a setup problem
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"cannot load MoGe model '{repo}' from local files: {first}") from None
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model.to(device).eval(), fov_x_deg=fov_x_deg, **kw)

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> GeometryResult:
        import torch

        from pixels2peaks.perception.transformers_backends import _rgb01

        rgb = _rgb01(image)
        p = next(self.model.parameters(), None) if hasattr(self.model, "parameters") else None
        device = p.device if p is not None else torch.device("cpu")
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).to(device)
        kwargs: dict[str, Any] = {"resolution_level": int(self.resolution_level)}
        if self.fov_x_deg is not None:
            kwargs["fov_x"] = float(self.fov_x_deg)
        if "use_fp16" in inspect.signature(self.model.infer).parameters:
            kwargs["use_fp16"] = device.type == "cuda"
        out = self.model.infer(x, **kwargs)
        pts = out["points"].detach().float().cpu().numpy()
        if pts.shape != (*rgb.shape[:2], 3):
            raise InputError(f"MoGe returned points of shape {pts.shape} for a {rgb.shape[1]}x{rgb.shape[0]} image")
        valid = np.isfinite(pts).all(axis=2) & (pts[..., 2] > 0)
        if "mask" in out:
            valid &= out["mask"].detach().cpu().numpy().astype(bool)
        pts[~valid] = np.nan
        given = self.fov_x_deg is not None
        fov = float(self.fov_x_deg) if given else fov_from_intrinsics(out["intrinsics"].detach().cpu().numpy())
        src = f"moge {type(self.model).__module__.rsplit('.', 1)[-1]}, fov {fov:.1f} deg ({'given' if given else 'estimated'})"
        return GeometryResult(pts.astype(np.float32), fov, valid, source=src)
