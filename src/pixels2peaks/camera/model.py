"""Pinhole camera over a heightmap: intrinsics, pose, pixel <-> ray <-> world, ``camera.json``.

Frames (see ``docs/conventions.md`` and ``docs/formats.md``):

* **World** = heightmap frame: x east, y north, z up, metres. The origin is the heightmap's
  south-west corner at height 0: cell ``(row, col)`` of an ``(H, W)`` grid with cell size ``dx``
  covers ``x in [col dx, (col+1) dx]``, ``y in [(H-row-1) dx, (H-row) dx]`` and has its centre at
  ``x = (col + 0.5) dx``, ``y = (H - row - 0.5) dx`` (:func:`cell_centre_xy`, :func:`xy_to_cell`).
* **Camera** (OpenCV convention): x right, y down, z forward (the optical axis).
* **Pixels**: ``u`` = column coordinate (to the right), ``v`` = row coordinate (down); pixel
  ``(row j, col i)`` covers ``[i, i+1] x [j, j+1]`` and its centre is ``(i + 0.5, j + 0.5)``.
  The principal point is the image centre ``(W/2, H/2)``; pixels are square, so
  ``f_px = (W / 2) / tan(fov_x / 2)`` for both axes.

Pose: ``position_m`` ``[x, y, z]`` in the world frame, ``yaw_deg`` = compass azimuth of the
optical axis (0 = looking north, 90 = east, clockwise seen from above), ``pitch_deg`` = elevation
of the optical axis above the horizon (positive looks up, strictly inside ``(-90, 90)``),
roll = 0 (the image's horizontal axis stays horizontal, as the paper assumes).

Every conversion accepts NumPy arrays or torch tensors (any device, no host copies) with the
coordinate axis last, and returns the same kind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.errors import InputError, check_finite

__all__ = [
    "Camera",
    "CAMERA_FORMAT",
    "FULL_FRAME_DIAGONAL_MM",
    "cell_centre_xy",
    "xy_to_cell",
    "fov_x_from_focal_35mm",
    "focal_35mm_from_exif",
    "fov_x_from_exif",
    "focal_px",
]

def focal_px(width_px: float, fov_x_deg: float) -> float:
    """Pinhole focal length in pixels of an image ``width_px`` wide with horizontal field of view
    ``fov_x_deg``: ``f = (W / 2) / tan(fov / 2)`` (principal point at the centre). The one home of
    this arithmetic (cameras, perception backends).

    >>> round(focal_px(800, 90.0), 9)
    400.0
    """
    return (float(width_px) / 2.0) / math.tan(math.radians(float(fov_x_deg)) / 2.0)


#: value of the ``format`` key written to ``camera.json``
CAMERA_FORMAT = "pixels2peaks.camera/1"
#: diagonal of a 36 x 24 mm frame, the reference of "35 mm equivalent" focal lengths
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


# ----------------------------------------------------------------------------------------------
# heightmap frame
# ----------------------------------------------------------------------------------------------


def cell_centre_xy(row: Any, col: Any, height: int, dx_m: float) -> tuple[Any, Any]:
    """World ``(x, y)`` in metres of the centre of cell ``(row, col)`` of an ``(height, W)`` grid.

    >>> cell_centre_xy(0, 0, 4, 10.0)
    (5.0, 35.0)
    """
    return (col + 0.5) * dx_m, (height - row - 0.5) * dx_m


def xy_to_cell(x: Any, y: Any, height: int, dx_m: float) -> tuple[Any, Any]:
    """Integer ``(row, col)`` of the cell whose footprint contains world ``(x, y)`` (NumPy).

    ``col = floor(x / dx)``, ``row = floor(height - y / dx)``; points on a shared edge go to the
    cell east / south of it. Not clipped: rows/cols outside ``[0, H) x [0, W)`` are off-grid.

    >>> xy_to_cell(5.0, 35.0, 4, 10.0)
    (0, 0)
    """
    col = np.floor(np.asarray(x, dtype=np.float64) / dx_m).astype(np.int64)
    row = np.floor(height - np.asarray(y, dtype=np.float64) / dx_m).astype(np.int64)
    if col.ndim == 0:
        return int(row), int(col)
    return row, col


# ----------------------------------------------------------------------------------------------
# EXIF
# ----------------------------------------------------------------------------------------------


def fov_x_from_focal_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Horizontal field of view (degrees) of a ``width x height`` image from its 35 mm equivalent
    focal length (mm).

    "35 mm equivalent" is taken over the **diagonal** (CIPA DC-008, EXIF
    ``FocalLengthIn35mmFilm``): the image diagonal spans the angle a 36 x 24 mm frame's diagonal
    (43.27 mm) spans at that focal length; ``fov_x`` follows from the aspect ratio. For a 3:2
    landscape image this is ``2 atan(36 / (2 f))``.

    >>> round(fov_x_from_focal_35mm(36.0, 3000, 2000), 4)
    53.1301
    """
    f = check_finite(focal_35mm, "35 mm equivalent focal length")
    if f <= 0:
        raise InputError(f"35 mm equivalent focal length must be > 0 mm, got {focal_35mm!r}")
    w, h = _positive_int(width, "width"), _positive_int(height, "height")
    tan_half_diag = (FULL_FRAME_DIAGONAL_MM / 2.0) / f
    return math.degrees(2.0 * math.atan(tan_half_diag * w / math.hypot(w, h)))


_EXIF_IFD = 0x8769
_TAG_ORIENTATION = 0x0112
_TAG_FOCAL = 0x920A
_TAG_FOCAL_35 = 0xA405
_TAG_FP_XRES = 0xA20E
_TAG_FP_UNIT = 0xA210
_TAG_PIX_X = 0xA002
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}


def _rational(v: Any) -> float | None:
    try:
        out = float(v[0]) / float(v[1]) if isinstance(v, tuple) else float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return out if math.isfinite(out) and out > 0 else None


def _open_image(image: Any):
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image, False
    try:
        return Image.open(image), True
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(f"cannot read image '{image}': {exc}") from None


def focal_35mm_from_exif(image: Any) -> float | None:
    """35 mm equivalent focal length (mm) from an image's EXIF, or ``None`` if it has none.

    Uses ``FocalLengthIn35mmFilm``; otherwise ``FocalLength`` with the focal-plane resolution
    (sensor width = pixel width / ``FocalPlaneXResolution``), converted over the diagonal.
    ``image``: a path or a PIL image.
    """
    im, close = _open_image(image)
    try:
        exif = im.getexif()
        sub = exif.get_ifd(_EXIF_IFD) if exif else {}
        f35 = _rational(sub.get(_TAG_FOCAL_35, exif.get(_TAG_FOCAL_35) if exif else None))
        if f35 is not None:
            return f35
        focal = _rational(sub.get(_TAG_FOCAL))
        xres = _rational(sub.get(_TAG_FP_XRES))
        unit = _UNIT_MM.get(int(sub.get(_TAG_FP_UNIT, 2) or 2))
        if focal is None or xres is None or unit is None:
            return None
        pix_w = _rational(sub.get(_TAG_PIX_X)) or float(im.size[0])
        sensor_w = pix_w / xres * unit
        sensor_h = sensor_w * im.size[1] / im.size[0]
        return focal * FULL_FRAME_DIAGONAL_MM / math.hypot(sensor_w, sensor_h)
    finally:
        if close:
            im.close()


def fov_x_from_exif(image: Any) -> float | None:
    """Horizontal FOV (degrees) of an image as displayed (EXIF orientation applied) from its
    EXIF focal length (:func:`focal_35mm_from_exif`), or ``None`` without usable EXIF."""
    im, close = _open_image(image)
    try:
        f35 = focal_35mm_from_exif(im)
        if f35 is None:
            return None
        w, h = im.size
        if int(im.getexif().get(_TAG_ORIENTATION, 1) or 1) in (5, 6, 7, 8):
            w, h = h, w
        return fov_x_from_focal_35mm(f35, w, h)
    finally:
        if close:
            im.close()


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------




def _positive_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        if isinstance(v, float) and v.is_integer() and v >= 1:
            return int(v)
        raise InputError(f"{what} must be a positive integer number of pixels, got {v!r}")
    return int(v)


def _xp(a: Any):
    """Array namespace of ``a``: ``torch`` for tensors, ``numpy`` otherwise."""
    torch = sys.modules.get("torch")  # never import torch just to find out
    if torch is not None and isinstance(a, torch.Tensor):
        return torch
    return np


def _asarray(a: Any):
    xp = _xp(a)
    if xp is np:
        return np.asarray(a, dtype=np.float64)
    return a if a.is_floating_point() else a.float()


# ----------------------------------------------------------------------------------------------
# the camera
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """Pinhole camera with square pixels, principal point at the image centre and zero roll.

    Attributes:
        width, height: image size in pixels.
        fov_x_deg: horizontal field of view in degrees, in ``(0, 180)``.
        position_m: camera centre ``(x, y, z)`` in the heightmap frame (metres).
        yaw_deg: compass azimuth of the optical axis (0 = north, 90 = east).
        pitch_deg: elevation of the optical axis, positive up, in ``(-90, 90)``.
        dx_m: cell size (metres) of the heightmap grid this camera is paired with, or ``None``
            (informational: positions are metric, see ``docs/formats.md``).

    >>> cam = Camera(640, 480, 90.0, (0.0, 0.0, 10.0), yaw_deg=90.0)
    >>> [round(float(c), 6) + 0.0 for c in cam.forward]   # looking east
    [1.0, 0.0, 0.0]
    >>> round(cam.focal_px, 9)
    320.0
    """

    width: int
    height: int
    fov_x_deg: float
    position_m: tuple[float, float, float]
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    dx_m: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", _positive_int(self.width, "camera width"))
        object.__setattr__(self, "height", _positive_int(self.height, "camera height"))
        fov = check_finite(self.fov_x_deg, "fov_x_deg")
        if not 0.0 < fov < 180.0:
            raise InputError(f"fov_x_deg must be in (0, 180) degrees, got {self.fov_x_deg!r}")
        object.__setattr__(self, "fov_x_deg", fov)
        try:
            pos = tuple(self.position_m)
        except TypeError:
            raise InputError(f"position_m must be [x, y, z] metres, got {self.position_m!r}") from None
        if len(pos) != 3:
            raise InputError(f"position_m must be [x, y, z] metres, got {self.position_m!r}")
        object.__setattr__(self, "position_m", tuple(check_finite(p, "position_m") for p in pos))
        object.__setattr__(self, "yaw_deg", check_finite(self.yaw_deg, "yaw_deg"))
        pitch = check_finite(self.pitch_deg, "pitch_deg")
        if not -90.0 < pitch < 90.0:
            raise InputError(
                f"pitch_deg must be strictly between -90 and 90 degrees, got {self.pitch_deg!r}"
            )
        object.__setattr__(self, "pitch_deg", pitch)
        if self.dx_m is not None:
            dx = check_finite(self.dx_m, "dx_m")
            if dx <= 0:
                raise InputError(f"dx_m must be a positive number of metres, got {self.dx_m!r}")
            object.__setattr__(self, "dx_m", dx)

    # -- intrinsics ------------------------------------------------------------------------------

    @property
    def focal_px(self) -> float:
        """Focal length in pixels (both axes)."""
        return focal_px(self.width, self.fov_x_deg)

    @property
    def fov_y_deg(self) -> float:
        """Vertical field of view in degrees."""
        return math.degrees(2.0 * math.atan((self.height / 2.0) / self.focal_px))

    @property
    def principal_point(self) -> tuple[float, float]:
        """``(cx, cy)`` in pixels: the image centre."""
        return self.width / 2.0, self.height / 2.0

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsic matrix (OpenCV convention)."""
        f = self.focal_px
        cx, cy = self.principal_point
        return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])

    # -- extrinsics ------------------------------------------------------------------------------

    @property
    def forward(self) -> np.ndarray:
        """Unit optical axis in the world frame."""
        ya, pi = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        return np.array([math.sin(ya) * math.cos(pi), math.cos(ya) * math.cos(pi), math.sin(pi)])

    @property
    def right(self) -> np.ndarray:
        """Unit image-right axis in the world frame (horizontal: roll = 0)."""
        ya = math.radians(self.yaw_deg)
        return np.array([math.cos(ya), -math.sin(ya), 0.0])

    @property
    def up(self) -> np.ndarray:
        """Unit image-up axis in the world frame (``right x forward``)."""
        ya, pi = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        return np.array([-math.sin(ya) * math.sin(pi), -math.cos(ya) * math.sin(pi), math.cos(pi)])

    @property
    def rotation(self) -> np.ndarray:
        """3x3 ``R`` with ``world = R @ cam + position`` (columns: right, down, forward)."""
        return np.stack([self.right, -self.up, self.forward], axis=1)

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.position_m, dtype=np.float64)

    # -- conversions -----------------------------------------------------------------------------

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """``(u, v)`` float64 arrays of shape ``(height, width)``: every pixel's centre."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        return u + 0.5, v + 0.5

    def pixel_to_ray(self, u: Any, v: Any) -> Any:
        """Unit world directions ``(..., 3)`` of the rays through pixel coordinates ``(u, v)``.

        >>> cam = Camera(4, 2, 90.0, (0.0, 0.0, 0.0))
        >>> [round(float(c), 6) + 0.0 for c in cam.pixel_to_ray(2.0, 1.0)]   # centre: north
        [0.0, 1.0, 0.0]
        """
        u, v = _asarray(u), _asarray(v)
        xp = _xp(u)
        f = self.focal_px
        cx, cy = self.principal_point
        a, b = (u - cx) / f, (v - cy) / f
        R = self.rotation
        comps = [R[k, 0] * a + R[k, 1] * b + R[k, 2] for k in range(3)]
        n = xp.sqrt(comps[0] ** 2 + comps[1] ** 2 + comps[2] ** 2)
        return xp.stack([c / n for c in comps], -1)

    def pixel_to_world(self, u: Any, v: Any, depth_m: Any) -> Any:
        """World points ``(..., 3)`` at distance ``depth_m`` along the rays through ``(u, v)``
        (depth = Euclidean distance from the camera centre, not the z-buffer value)."""
        d = self.pixel_to_ray(u, v)
        depth = _asarray(depth_m)
        pos = self.position if _xp(d) is np else _like(d, self.position)
        return pos + depth[..., None] * d

    def world_to_camera(self, points: Any) -> Any:
        """Camera-frame coordinates ``(..., 3)`` (x right, y down, z forward) of world points."""
        p = _asarray(points)
        xp = _xp(p)
        c = self.position
        R = self.rotation
        rel = [p[..., k] - c[k] for k in range(3)]
        return xp.stack([R[0, j] * rel[0] + R[1, j] * rel[1] + R[2, j] * rel[2] for j in range(3)], -1)

    def world_to_pixel(self, points: Any) -> tuple[Any, Any]:
        """Project world points ``(..., 3)``: returns ``(uv (..., 2), z_cam (...))``; points with
        ``z_cam <= 0`` are behind the camera (their ``uv`` is meaningless).

        >>> cam = Camera(4, 2, 90.0, (0.0, 0.0, 0.0))
        >>> uv, z = cam.world_to_pixel(np.array([0.0, 5.0, 0.0]))
        >>> uv.tolist(), float(z)
        ([2.0, 1.0], 5.0)
        """
        pc = self.world_to_camera(points)
        xp = _xp(pc)
        f = self.focal_px
        cx, cy = self.principal_point
        z = pc[..., 2]
        return xp.stack([f * pc[..., 0] / z + cx, f * pc[..., 1] / z + cy], -1), z

    def world_to_depth(self, points: Any) -> Any:
        """Euclidean distance (metres) from the camera centre to world points ``(..., 3)``."""
        p = _asarray(points)
        xp = _xp(p)
        c = self.position
        return xp.sqrt(sum((p[..., k] - c[k]) ** 2 for k in range(3)))

    # -- variants --------------------------------------------------------------------------------

    def replace(self, **changes: Any) -> Camera:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def scaled(self, factor: int) -> Camera:
        """The same view with ``factor`` x more pixels per axis: pixel ``(i, j)`` of ``self``
        is covered by pixels ``factor*i .. factor*i + factor - 1`` of the result."""
        k = _positive_int(factor, "scale factor")
        return self.replace(width=self.width * k, height=self.height * k)

    # -- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The ``camera.json`` object (see ``docs/formats.md``)."""
        return {
            "format": CAMERA_FORMAT,
            "width": self.width,
            "height": self.height,
            "fov_x_deg": self.fov_x_deg,
            "fov_y_deg": self.fov_y_deg,
            "focal_px": self.focal_px,
            "yaw_deg": self.yaw_deg,
            "pitch_deg": self.pitch_deg,
            "roll_deg": 0.0,
            "position_m": list(self.position_m),
            "dx_m": self.dx_m,
            "frame": "heightmap: x east, y north, z up (m); cell (row, col) centre at "
            "((col + 0.5) dx_m, (H - row - 0.5) dx_m); camera axes x right, y down, z forward",
        }

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "camera") -> Camera:
        """Parse a ``camera.json`` object. Required: ``width``, ``height``, ``fov_x_deg`` (or
        ``focal_px``), ``yaw_deg``, ``pitch_deg``, ``position_m``; optional ``dx_m``,
        ``roll_deg`` (must be 0). Other keys are ignored."""
        if not isinstance(d, dict):
            raise InputError(f"{where}: expected a JSON object")
        fmt = d.get("format", CAMERA_FORMAT)
        if not (isinstance(fmt, str) and fmt.startswith("pixels2peaks.camera/")):
            raise InputError(f"{where}: unknown format {fmt!r}")
        missing = [k for k in ("width", "height", "yaw_deg", "pitch_deg", "position_m") if k not in d]
        if "fov_x_deg" not in d and "focal_px" not in d:
            missing.append("fov_x_deg")
        if missing:
            raise InputError(f"{where}: missing key(s) {', '.join(missing)}")
        roll = d.get("roll_deg", 0.0)
        if roll is not None and check_finite(roll, f"{where}: roll_deg") != 0.0:
            raise InputError(f"{where}: roll_deg must be 0 (cameras have no roll), got {roll!r}")
        w = _positive_int(d["width"], f"{where}: width")
        if "fov_x_deg" in d:
            fov = d["fov_x_deg"]
        else:
            fpx = check_finite(d["focal_px"], f"{where}: focal_px")
            if fpx <= 0:
                raise InputError(f"{where}: focal_px must be > 0")
            fov = math.degrees(2.0 * math.atan(w / 2.0 / fpx))
        try:
            return cls(
                width=w,
                height=d["height"],
                fov_x_deg=fov,
                position_m=d["position_m"],
                yaw_deg=d["yaw_deg"],
                pitch_deg=d["pitch_deg"],
                dx_m=d.get("dx_m"),
            )
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write ``camera.json`` atomically."""
        from pixels2peaks.io import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Camera:
        """Read a ``camera.json`` (InputError on a missing/invalid file)."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InputError(f"camera file not found: '{path}'") from None
        except OSError as exc:
            raise InputError(f"cannot read camera file '{path}': {exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"'{path}' is not a camera.json (not text)") from None
        try:
            d = json.loads(text)
        except ValueError as exc:
            raise InputError(f"'{path}' is not valid JSON: {exc}") from None
        return cls.from_dict(d, where=str(path))


def _like(ref: Any, arr: np.ndarray) -> Any:
    """``arr`` as a tensor on ``ref``'s device/dtype."""
    import torch

    return torch.as_tensor(arr, dtype=ref.dtype, device=ref.device)
