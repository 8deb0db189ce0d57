"""Builtin learned geometry: a tiny U-Net predicting relative depth (ln of the distance along each
pixel's ray, up to an additive constant) and a sky logit from one RGB photo.

Trained here on synthetic photos of real DEMs (:mod:`pixels2peaks.training.perception_depth`);
weights ship as ``pixels2peaks/weights/perception/depth_net.safetensors`` with a JSON card
(``depth_net.json``: network config, data, training, validation metrics). Used by
:class:`LearnedGeometry` (the ``builtin`` geometry backend when the weights are present; the
classical :class:`~pixels2peaks.perception.builtin.ClassicalGeometry` otherwise).

The network sees the photo resized to ``width x height`` (aspect ratio not kept; trained with
aspect-changing crops) plus a row-coordinate channel; its outputs are resized back bilinearly.
The pointmap is ``exp(ln d) x`` the unit ray of a pinhole camera with the given horizontal FOV.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.camera.model import focal_px
from pixels2peaks.errors import InputError
from pixels2peaks.perception.protocols import GeometryResult

__all__ = [
    "DepthNetConfig",
    "DepthNet",
    "DEFAULT_WEIGHTS",
    "weights_available",
    "load_depth_net",
    "save_depth_net",
    "fill_void",
    "predict_log_depth",
    "ray_pointmap",
    "LearnedGeometry",
]

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "perception" / "depth_net"


@dataclass(frozen=True)
class DepthNetConfig:
    """Network input size (pixels) and channel widths per level (each level halves the size)."""

    width: int = 128
    height: int = 96
    channels: tuple[int, ...] = (16, 24, 48, 64, 96)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        k = 2 ** (len(self.channels) - 1)
        if self.width % k or self.height % k:
            raise InputError(f"width/height must be multiples of {k} for {len(self.channels)} levels")


def _torch_modules():
    import torch
    from torch import nn

    def conv(cin: int, cout: int):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    class Net(nn.Module):
        """U-Net: input RGB + row coordinate; output (ln d, sky logit) at half resolution,
        upsampled bilinearly. Level 0 has one conv, deeper encoder levels two, decoder levels
        one; a global-context vector (mean-pooled bottleneck, MLP) is added to the bottleneck."""

        def __init__(self, cfg: DepthNetConfig):
            super().__init__()
            ch = cfg.channels
            self.cfg = cfg
            self.down = nn.ModuleList(
                [nn.Sequential(*conv(4, ch[0]))]
                + [nn.Sequential(*conv(ch[i - 1], ch[i]), *conv(ch[i], ch[i])) for i in range(1, len(ch))]
            )
            self.ctx = nn.Sequential(nn.Linear(ch[-1], ch[-1]), nn.ReLU(inplace=True), nn.Linear(ch[-1], ch[-1]))
            self.up = nn.ModuleList(
                [nn.Sequential(*conv(ch[i + 1] + ch[i], ch[i])) for i in reversed(range(1, len(ch) - 1))]
            )
            self.head = nn.Conv2d(ch[1], 2, 1)

        def forward(self, x):
            b, _, h, w = x.shape
            rows = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device)
            x = torch.cat([(x - 0.5) / 0.25, rows.view(1, 1, h, 1).expand(b, 1, h, w)], dim=1)
            skips = []
            for i, blk in enumerate(self.down):
                if i:
                    x = nn.functional.avg_pool2d(x, 2)
                x = blk(x)
                skips.append(x)
            x = x + self.ctx(x.mean(dim=(2, 3)))[:, :, None, None]
            for blk, skip in zip(self.up, reversed(skips[1:-1])):
                x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = blk(torch.cat([x, skip], dim=1))
            out = nn.functional.interpolate(self.head(x), size=(h, w), mode="bilinear", align_corners=False)
            return out[:, :1], out[:, 1:]

    return Net


def DepthNet(cfg: DepthNetConfig = DepthNetConfig()):  # noqa: N802 - a factory named like the class
    """Build the (randomly initialised) network for ``cfg``."""
    return _torch_modules()(cfg)


def weights_available(stem: str | Path = DEFAULT_WEIGHTS) -> bool:
    s = Path(stem)
    return s.with_suffix(".safetensors").is_file() and s.with_suffix(".json").is_file()


def save_depth_net(net: Any, stem: str | Path, card: dict[str, Any]) -> Path:
    """Write ``stem.safetensors`` (fp32 state dict) and ``stem.json`` (``card``) atomically."""
    from safetensors.torch import save_file

    from pixels2peaks.io import atomic_path

    s = Path(stem)
    s.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in net.state_dict().items()}
    with atomic_path(s.with_suffix(".safetensors")) as tmp:
        save_file(state, str(tmp))
    with atomic_path(s.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=2) + "\n")
    for suffix in (".safetensors", ".json"):
        s.with_suffix(suffix).chmod(0o644)
    return s


_CACHE: dict[str, Any] = {}


def load_depth_net(stem: str | Path = DEFAULT_WEIGHTS) -> tuple[Any, dict[str, Any]]:
    """``(network in eval mode, card)``; cached per path and file modification times (a
    rewritten card, e.g. a new ``slope_gain``, is read again)."""
    s = Path(stem)
    if not weights_available(s):
        raise InputError(f"no depth network weights at {s}.safetensors / .json")
    key = (str(s.resolve()), s.with_suffix(".json").stat().st_mtime_ns, s.with_suffix(".safetensors").stat().st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    from safetensors.torch import load_file

    card = json.loads(s.with_suffix(".json").read_text())
    net = DepthNet(DepthNetConfig(**card["net"]))
    net.load_state_dict(load_file(str(s.with_suffix(".safetensors"))))
    net.eval()
    _CACHE[key] = (net, card)
    return net, card


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float ``(H, W[, C])`` -> ``size = (w, h)`` with PIL's antialiased bilinear filter."""
    from PIL import Image

    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(size, Image.BILINEAR))
    return np.stack([_resize(a[..., k], size) for k in range(a.shape[2])], axis=-1)


def fill_void(rgb: np.ndarray, void: np.ndarray) -> np.ndarray:
    """Copy of ``rgb`` (``(H, W)`` or ``(H, W, C)``) with ``void`` pixels replaced by their
    nearest non-void pixel."""
    from scipy.ndimage import distance_transform_edt

    if not void.any() or void.all():
        return rgb
    idx = distance_transform_edt(void, return_distances=False, return_indices=True)
    return rgb[idx[0], idx[1]]


UPSAMPLING = ("bilinear", "joint_bilateral")


def predict_log_depth(
    image: np.ndarray, net: Any = None, upsample: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W, 3)`` uint8 RGB -> ``(ln d, sky probability)``, both float32 ``(H, W)``; ``ln d``
    is relative (arbitrary additive constant). ``upsample``: how the network's low-resolution
    ``ln d`` reaches the photo's size: ``"bilinear"`` or ``"joint_bilateral"`` (guided by the
    photo, :func:`~pixels2peaks.perception.upsample.joint_bilateral_upsample`).

    Black image borders (:func:`~pixels2peaks.perception.skyline.border_void`) are filled with
    the nearest image content first (the network never saw them); the output is the mean of the
    predictions for the image and its mirror image."""
    import torch

    from pixels2peaks.perception.builtin import _check_rgb
    from pixels2peaks.perception.skyline import border_void

    a = np.asarray(image)
    rgb = _check_rgb(a).astype(np.float32)
    if a.dtype == np.uint8:
        rgb = fill_void(rgb, border_void(a))
    if net is None:
        net, _ = load_depth_net()
    cfg = net.cfg
    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.clip(_resize(rgb, (cfg.width, cfg.height)), 0, 1)).permute(2, 0, 1)[None]
    p = next(net.parameters())
    x = torch.cat([x, x.flip(-1)]).to(device=p.device, dtype=p.dtype)
    with torch.no_grad():
        ld, sky = net(x)
    ld = (0.5 * (ld[0, 0] + ld[1, 0].flip(-1))).float().cpu().numpy()
    sky = torch.sigmoid(0.5 * (sky[0, 0] + sky[1, 0].flip(-1))).float().cpu().numpy()
    if upsample == "joint_bilateral":
        from pixels2peaks.perception.upsample import joint_bilateral_upsample

        return joint_bilateral_upsample(ld, np.clip(rgb, 0, 1)), _resize(sky, (w, h))
    if upsample != "bilinear":
        raise InputError(f"depth upsampling must be one of {UPSAMPLING}, got {upsample!r}")
    return _resize(ld, (w, h)), _resize(sky, (w, h))


def ray_pointmap(distance: np.ndarray, fov_x_deg: float) -> np.ndarray:
    """Camera-frame pointmap ``(H, W, 3)`` (x right, y down, z forward) of points at
    ``distance`` along the pixel-centre rays of a pinhole camera (principal point at the centre)."""
    d = np.asarray(distance, dtype=np.float64)
    h, w = d.shape
    f = focal_px(w, fov_x_deg)
    u = (np.arange(w) + 0.5 - w / 2.0) / f
    v = (np.arange(h) + 0.5 - h / 2.0) / f
    uu, vv = np.meshgrid(u, v)
    n = np.sqrt(uu * uu + vv * vv + 1.0)
    return np.stack([d * uu / n, d * vv / n, d / n], axis=-1).astype(np.float32)


@dataclass
class LearnedGeometry:
    """Geometry backend of the learned network: pointmap from ``exp(ln d)`` along the rays of
    the given (or default 60 deg) horizontal FOV; ``valid`` = the terrain mask (if given);
    ``slope_gain`` from the card (``slope_gain.value``, written by
    ``python -m pixels2peaks.training.perception_depth calibrate``; 1 if absent).

    ``lateral``: ``(sigma as a fraction of the image width, sigma of ln d)`` of the row-wise
    bilateral filter of ``ln d`` over the terrain (:func:`~pixels2peaks.perception.depth_filter.
    lateral_bilateral`); ``None``: off."""

    fov_x_deg: float = 60.0
    weights: str | Path = DEFAULT_WEIGHTS
    name: str = "builtin"
    upsample: str = "joint_bilateral"
    lateral: tuple[float, float] | None = None

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> GeometryResult:
        net, card = load_depth_net(self.weights)
        ld, _ = predict_log_depth(image, net, self.upsample)
        if self.lateral is not None and terrain is not None:
            from pixels2peaks.perception.depth_filter import lateral_bilateral

            ld = lateral_bilateral(ld, terrain, self.lateral[0] * ld.shape[1], self.lateral[1])
        d = np.exp(ld - float(np.median(ld)))
        pts = ray_pointmap(d, self.fov_x_deg)
        valid = np.array(terrain, bool) if terrain is not None else np.ones(d.shape, bool)
        gain = float(card.get("slope_gain", {}).get("value", 1.0))
        return GeometryResult(pts, self.fov_x_deg, valid, source="builtin: learned depth net "
                              f"({card.get('parameters', '?')} parameters, slope gain {gain:.3g})",
                              slope_gain=gain)

