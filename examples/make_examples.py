"""Make the bundled example images from ``examples/alps_globe_256.tif`` (public-domain GLOBE data),
so they are licence-clean and reproducible:

* ``alps_photo.jpg``: a synthetic photo (768 x 512) of the highest 86 km x 86 km of the DEM,
  bicubically upsampled 4x to 225 m cells with seeded fractal detail (+-120 m, high-pass), seen
  from a valley (``p2p synth``'s random camera, seed 3) with its 35 mm focal length in EXIF.
* ``alps_photo_camera.json``: the true camera of that photo (world frame of the upsampled DEM).
* ``alps_painting.jpg``: a painterly version of the photo (median + mode filters, stronger
  colours, posterized): paintings go in as photos.

Run: ``.venv/bin/python examples/make_examples.py`` (about 10 s; rewrites the three files).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZE_PX = (768, 512)
CAMERA_SEED = 3


def example_dem() -> tuple[np.ndarray, float]:
    """The 384 x 384 DEM at 225 m the photo is rendered from (metres)."""
    import torch
    import torch.nn.functional as F
    from scipy.ndimage import gaussian_filter, uniform_filter

    from pixels2peaks.io import read_dem
    from pixels2peaks.training.synthetic import fractal

    dem = read_dem(HERE / "alps_globe_256.tif")
    z = dem.z.astype(np.float64)
    m = uniform_filter(z, 64)[48:-48, 48:-48]
    i, j = (int(v) + 48 for v in np.unravel_index(np.argmax(m), m.shape))
    crop = z[i - 48 : i + 48, j - 48 : j + 48]
    up = F.interpolate(torch.from_numpy(crop)[None, None], scale_factor=4, mode="bicubic",
                       align_corners=False)[0, 0].numpy()
    det = fractal(384, 7, 1.0, beta=2.6).astype(np.float64)
    hp = det - gaussian_filter(det, 6)
    return up + 120.0 * hp / hp.std(), dem.dx_m / 4


def painterly(rgb: np.ndarray) -> np.ndarray:
    """A painting-like version of an RGB image (brush-like flat patches, saturated colours)."""
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps

    im = Image.fromarray(rgb).filter(ImageFilter.MedianFilter(5)).filter(ImageFilter.ModeFilter(7))
    im = ImageEnhance.Color(im).enhance(1.5)
    im = ImageEnhance.Contrast(im).enhance(1.15)
    return np.asarray(ImageOps.posterize(im, 5).filter(ImageFilter.SMOOTH))


def main() -> None:
    from PIL import Image

    from pixels2peaks.camera import Heightfield, RandomCameraRanges, random_camera, random_shading, render_image
    from pixels2peaks.camera.model import FULL_FRAME_DIAGONAL_MM, fov_x_from_focal_35mm

    z, dx = example_dem()
    hf = Heightfield(z, dx)
    w, h = SIZE_PX
    ranges = RandomCameraRanges(width=w, height=h, fov_x_deg=(45, 65), pitch_deg=(-6, 6), agl_cells=(0.5, 2))
    cam = random_camera(hf, CAMERA_SEED, ranges)
    # a whole-millimetre 35 mm focal length, so EXIF holds the exact field of view
    tan_half = math.tan(math.radians(cam.fov_x_deg) / 2) * math.hypot(w, h) / w
    f35 = round(FULL_FRAME_DIAGONAL_MM / 2 / tan_half)
    cam = cam.replace(fov_x_deg=fov_x_from_focal_35mm(f35, w, h))
    rgb, _ = render_image(hf, cam, random_shading(CAMERA_SEED), antialias=2)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x010F] = "pixels2peaks (synthetic render)"  # Make
    exif.get_ifd(0x8769)[0xA405] = f35  # FocalLengthIn35mmFilm
    im.save(HERE / "alps_photo.jpg", quality=92, exif=exif)
    cam.save(HERE / "alps_photo_camera.json")
    Image.fromarray(painterly(rgb)).save(HERE / "alps_painting.jpg", quality=92)
    print(f"alps_photo.jpg: {w} x {h} px, {f35} mm (35 mm eq.), fov {cam.fov_x_deg:.2f} deg, "
          f"camera {tuple(round(v) for v in cam.position_m)} m, pitch {cam.pitch_deg:+.2f} deg")


if __name__ == "__main__":
    main()
