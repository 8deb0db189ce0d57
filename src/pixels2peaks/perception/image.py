"""Loading input photos with clear errors: :func:`load_image` -> :class:`LoadedImage`.

* EXIF orientation is applied (the photo as displayed).
* Modes: RGB as is; grayscale (``L``, ``1``), palette (``P``), CMYK, YCbCr, LAB -> RGB;
  16-bit grayscale (``I;16*``, ``I``) -> 8 bit (``v / 257``); an alpha channel (``RGBA``,
  ``LA``, ``PA``, palette transparency) is dropped from the colours and returned as ``opaque``
  (alpha >= 128): transparent pixels are never terrain. Float images (``F``) are refused.
* Size: both sides >= 64 px and at most 50 megapixels (checked before decoding).
* Not an image / truncated / unreadable -> :class:`~pixels2peaks.errors.InputError`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixels2peaks.errors import InputError

__all__ = ["LoadedImage", "load_image", "MIN_SIDE_PX", "MAX_PIXELS"]

MIN_SIDE_PX = 64
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class LoadedImage:
    """rgb: ``(H, W, 3)`` uint8; opaque: bool ``(H, W)``; fov_x_deg: from EXIF or ``None``."""

    rgb: np.ndarray
    opaque: np.ndarray
    fov_x_deg: float | None
    path: str
    mode: str


def load_image(path: str | Path) -> LoadedImage:
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise InputError(f"image not found: '{p}'")
    if p.is_dir():
        raise InputError(f"'{p}' is a folder, not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)
        except UnidentifiedImageError:
            raise InputError(f"'{p}' is not an image Pillow can read") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(f"'{p}' is too large (more than {MAX_PIXELS // 1_000_000} megapixels)") from None
        except OSError as exc:
            raise InputError(f"cannot read image '{p}': {exc}") from None
        with im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise InputError(
                    f"'{p}' has {w} x {h} = {w * h / 1e6:.1f} megapixels; the limit is "
                    f"{MAX_PIXELS // 1_000_000} (downscale it first)"
                )
            if min(w, h) < MIN_SIDE_PX:
                raise InputError(f"'{p}' is {w} x {h} px; both sides must be at least {MIN_SIDE_PX} px")
            try:
                im.load()
                fov = _exif_fov(im)
                im = ImageOps.exif_transpose(im)
            except (OSError, SyntaxError, ValueError) as exc:
                raise InputError(f"cannot decode image '{p}' (truncated or corrupt?): {exc}") from None
            mode = im.mode
            rgb, opaque = _to_rgb(im, p)
    return LoadedImage(rgb, opaque, fov, str(p), mode)


def _exif_fov(im) -> float | None:
    try:
        from pixels2peaks.camera import fov_x_from_exif

        return fov_x_from_exif(im)
    except Exception:  # malformed EXIF never stops a run
        return None


def _to_rgb(im, p: Path) -> tuple[np.ndarray, np.ndarray]:
    mode = im.mode
    h, w = im.size[1], im.size[0]
    opaque = np.ones((h, w), bool)
    if mode == "F":
        raise InputError(f"'{p}' is a floating-point image; expected an 8/16-bit photo")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        a = np.asarray(im.getchannel("A"))
        opaque = a >= 128
        im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8).copy(), opaque
    if mode.startswith("I"):
        a = np.asarray(im).astype(np.float64)
        if mode == "I" and a.size and a.max() > 65535:
            a = a / a.max() * 65535.0
        g = np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2), opaque
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy(), opaque
