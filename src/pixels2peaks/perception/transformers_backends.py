"""Learned backends through Hugging Face ``transformers`` (loaded with ``local_files_only=True``:
never downloads; a missing model is an :class:`~pixels2peaks.errors.InputError`).

* :class:`DepthAnythingGeometry`: Depth Anything V2 (``AutoModelForDepthEstimation``) ->
  camera-frame pointmap. *Relative* checkpoints predict affine-invariant inverse depth
  (disparity); it is normalised to ``[0, 1]`` over the image and converted to depth as
  ``1 / (d + disparity_shift)`` (an assumption: far terrain at ~``1 / shift`` x the nearest
  depth; the scale is fixed later by the elevation prior). *Metric* checkpoints
  (``depth_estimation_type == "metric"``) predict depth in metres, used as is. The depth is the
  z-buffer value (distance along the optical axis), back-projected with the given FOV
  (default 60 deg: Depth Anything does not estimate intrinsics).
* :class:`GroundedSamSegmentation`: Grounding DINO boxes for the prompt "all mountains." (the
  paper's prompt) -> SAM masks for those boxes (best of SAM's 3 by predicted IoU) -> union =
  terrain mask. No box above ``box_threshold`` -> empty mask.

Pre-processing is done here (resize, ImageNet normalisation) so no processor files are needed;
it follows the checkpoints' published processor settings (Depth Anything: shorter side 518,
multiple of 14; SAM: longer side ``image_size``, zero padding to a square).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pixels2peaks.camera.model import focal_px
from pixels2peaks.errors import InputError
from pixels2peaks.perception.protocols import GeometryResult

__all__ = ["DepthAnythingGeometry", "GroundedSamSegmentation", "pinhole_pointmap"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _rgb01(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def _to_tensor(rgb01: np.ndarray, size_hw: tuple[int, int], pad_to: int | None = None):
    """Resize (bicubic, antialiased), normalise, optionally zero-pad to a square; (1, 3, h, w)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(rgb01.transpose(2, 0, 1)))[None]
    t = F.interpolate(t, size=size_hw, mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    t = (t.clamp(0, 1) - mean) / std
    if pad_to is not None:
        t = F.pad(t, (0, pad_to - size_hw[1], 0, pad_to - size_hw[0]))
    return t


def pinhole_pointmap(z: np.ndarray, fov_x_deg: float) -> np.ndarray:
    """z-buffer depth ``(H, W)`` -> camera-frame points ``(H, W, 3)`` (x right, y down)."""
    h, w = z.shape
    f = focal_px(w, fov_x_deg)
    u = (np.arange(w) + 0.5 - w / 2.0) / f
    v = (np.arange(h) + 0.5 - h / 2.0) / f
    return np.stack([z * u[None, :], z * v[:, None], z], axis=-1).astype(np.float32)


def _load(cls: Any, repo: str, what: str):
    try:
        return cls.from_pretrained(repo, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot load {what} '{repo}' from local files: {first}") from None


@dataclass
class DepthAnythingGeometry:
    """Depth Anything V2 geometry backend (see the module docstring)."""

    model: Any
    fov_x_deg: float | None = None
    input_size: int = 518
    max_side: int = 1540
    disparity_shift: float = 0.05
    name: str = "depth_anything"

    @classmethod
    def from_pretrained(cls, repo: str, fov_x_deg: float | None = None, **kw: Any) -> DepthAnythingGeometry:
        from transformers import AutoModelForDepthEstimation

        model = _load(AutoModelForDepthEstimation, repo, "Depth Anything model")
        return cls(model.eval(), fov_x_deg=fov_x_deg, **kw)

    @property
    def metric(self) -> bool:
        return getattr(self.model.config, "depth_estimation_type", "relative") == "metric"

    def _size(self, h: int, w: int) -> tuple[int, int]:
        p = int(getattr(self.model.config, "patch_size", 14))
        s = self.input_size / min(h, w)
        s = min(s, self.max_side / max(h, w))
        return max(p, int(round(h * s / p)) * p), max(p, int(round(w * s / p)) * p)

    def depth(self, image: np.ndarray) -> np.ndarray:
        """z-buffer depth ``(H, W)`` float32 (metres for metric models, relative otherwise)."""
        import torch
        import torch.nn.functional as F

        rgb = _rgb01(image)
        h, w = rgb.shape[:2]
        x = _to_tensor(rgb, self._size(h, w))
        with torch.inference_mode():
            pred = self.model(pixel_values=x).predicted_depth  # (1, h', w')
        pred = F.interpolate(pred[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        pred = pred.numpy().astype(np.float64)
        if self.metric:
            return pred.astype(np.float32)
        lo, hi = np.nanmin(pred), np.nanmax(pred)
        d = (pred - lo) / (hi - lo) if hi > lo else np.ones_like(pred)
        return (1.0 / (d + self.disparity_shift)).astype(np.float32)

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> GeometryResult:
        z = self.depth(image)
        fov = float(self.fov_x_deg or 60.0)
        pts = pinhole_pointmap(z, fov)
        valid = np.isfinite(z) & (z > 0)
        src = f"depth_anything ({'metric' if self.metric else 'relative'}), fov {fov:g} deg"
        return GeometryResult(pts, fov, valid, source=src)


@dataclass
class GroundedSamSegmentation:
    """Grounding DINO + SAM terrain segmentation (see the module docstring).

    dino / tokenizer / sam: the loaded models (``GroundingDinoForObjectDetection``, its
    tokenizer, ``SamModel``). ``dino_short_side`` / ``dino_max_side``: Grounding DINO input size
    (the processor's 800 / 1333 by default).
    """

    dino: Any
    tokenizer: Any
    sam: Any
    prompt: str = "all mountains."
    box_threshold: float = 0.35
    max_boxes: int = 16
    dino_short_side: int = 800
    dino_max_side: int = 1333
    name: str = "grounded_sam"

    @classmethod
    def from_pretrained(cls, dino_repo: str, sam_repo: str, **kw: Any) -> GroundedSamSegmentation:
        from transformers import AutoTokenizer, GroundingDinoForObjectDetection, SamModel

        dino = _load(GroundingDinoForObjectDetection, dino_repo, "Grounding DINO model")
        tok = _load(AutoTokenizer, dino_repo, "Grounding DINO tokenizer")
        sam = _load(SamModel, sam_repo, "SAM model")
        return cls(dino.eval(), tok, sam.eval(), **kw)

    def boxes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (N, 4) xyxy pixels, scores (N,))`` above ``box_threshold``, best first."""
        import torch

        rgb = _rgb01(image)
        h, w = rgb.shape[:2]
        s = min(self.dino_short_side / min(h, w), self.dino_max_side / max(h, w))
        size = (max(1, round(h * s)), max(1, round(w * s)))
        x = _to_tensor(rgb, size)
        enc = self.tokenizer([self.prompt], return_tensors="pt")
        with torch.inference_mode():
            out = self.dino(pixel_values=x, **{k: v for k, v in enc.items()
                                              if k in ("input_ids", "attention_mask", "token_type_ids")})
        scores = torch.sigmoid(out.logits[0]).amax(-1).numpy()  # (Q,)
        cxcywh = out.pred_boxes[0].numpy().astype(np.float64)
        keep = np.flatnonzero(scores > self.box_threshold)
        keep = keep[np.argsort(-scores[keep])][: self.max_boxes]
        cx, cy, bw, bh = (cxcywh[keep, i] for i in range(4))
        xyxy = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).reshape(-1, 4)
        return xyxy, scores[keep]

    def masks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """SAM masks ``(N, H, W)`` bool for ``xyxy`` pixel boxes (best of 3 by predicted IoU)."""
        import torch
        import torch.nn.functional as F

        rgb = _rgb01(image)
        h, w = rgb.shape[:2]
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if b.shape[0] == 0:
            return np.zeros((0, h, w), bool)
        side = int(self.sam.config.vision_config.image_size)
        s = side / max(h, w)
        rh, rw = max(1, round(h * s)), max(1, round(w * s))
        x = _to_tensor(rgb, (rh, rw), pad_to=side)
        tb = torch.tensor(b * s, dtype=torch.float32)[None]
        with torch.inference_mode():
            out = self.sam(pixel_values=x, input_boxes=tb, multimask_output=True)
        logits = out.pred_masks[0]  # (N, 3, h', w')
        best = out.iou_scores[0].argmax(-1)  # (N,)
        m = logits[torch.arange(logits.shape[0]), best][:, None].float()
        m = F.interpolate(m, size=(side, side), mode="bilinear", align_corners=False)[:, :, :rh, :rw]
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        return (m > 0).numpy()

    def segment(self, image: np.ndarray) -> np.ndarray:
        boxes, _ = self.boxes(image)
        ms = self.masks(image, boxes)
        h, w = np.asarray(image).shape[:2]
        return ms.any(axis=0) if ms.shape[0] else np.zeros((h, w), bool)
