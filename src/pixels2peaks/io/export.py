"""Export a heightmap to artists' tools (issue #7): Unreal, Unity, raw 16-bit, EXR, OBJ/GLB, Blender.

One small writer per target behind :func:`export_heightmap`; ``docs/formats.md`` ("Exports")
gives the import steps in each tool. Every export is written into a hidden temporary folder next
to ``out`` and moved into place only when complete (a full disk leaves nothing behind).

Frames. Our world frame is the heightmap frame (``docs/conventions.md``): x east, y north,
z up, metres; cell ``(row, col)`` has its centre at ``((col + 0.5) dx, (H - row - 0.5) dx)``.
Every export samples the heights **at the cell centres** (a grid of ``H x W`` vertices), so a
mesh spans ``(W - 1) dx x (H - 1) dx`` metres from the centre of the south-west cell
``(dx/2, dx/2)`` to that of the north-east cell, and a ``camera.json`` position is valid as is.

* ``unreal``: 16-bit grayscale PNG, row 0 = north, codes ``0..65535`` spanning ``[lo, hi]``
  (the data range unless ``z_range_m``), plus the sidecar ``<stem>.json`` (``scale``, ``offset``,
  ``dx_m`` as for :func:`pixels2peaks.io.write_png16`, so :func:`read_dem` reads it back, and an
  ``unreal`` object with the Landscape import settings). Unreal's Landscape decodes a code ``k``
  to ``location_z + (k - 32768) / 128 * scale_z`` centimetres (scale 100 spans +-256 m, Landscape
  Technical Guide: https://dev.epicgames.com/documentation/en-us/unreal-engine/landscape-technical-guide),
  hence ``scale_z = 12800 (hi - lo) / 65535`` (the guide's ``range_cm / 512`` up to 1 part in
  65536), ``scale_x = scale_y = 100 dx`` and ``location_z = 100 lo + 256 scale_z`` centimetres.
  Unreal is left-handed, Z up: X = east, Y = **south**, so image rows map to +Y unchanged.
* ``unity``: 16-bit little-endian ``.raw`` ("Byte Order: Windows"), square ``N x N`` with
  ``N = 2^n + 1`` in ``[33, 4097]`` (:func:`unity_resolution`: ``"up"`` = the smallest such
  ``N >= max(H, W)``, no loss of resolution; ``"down"`` = the largest ``N <= max(H, W)``),
  resampled bicubically (vertex-aligned: the corner samples stay the corner cell centres; results
  clipped to the input range), rows **south first** (Unity's terrain row 0 is z = 0, so "Flip
  Vertically" stays off), codes ``0..65535`` = ``0..terrain height``. The sidecar
  ``<stem>.json`` holds the Terrain settings in metres (width = ``(W - 1) dx``, length =
  ``(H - 1) dx``, height = ``hi - lo``) and the terrain position ``(dx/2, lo, dx/2)`` (Unity:
  x east, y up, z north).
* ``raw16``: the same little-endian ``uint16`` codes at the native ``H x W`` size, row 0 = north
  (image order), plus ``<stem>.json`` (``width``, ``height``, ``scale``, ``offset``, ``dx_m``):
  ``z = offset + code * scale``.
* ``exr``: float32 single-channel (``Y``) OpenEXR in metres, row 0 = north, ZIP compression,
  header attribute ``dx_m``. Exact heights (no quantisation).
* ``obj`` / ``glb``: triangle mesh in metres, **Y up** (x east, y up, z south = -north), the
  axes glTF 2.0 mandates and Blender's/Houdini's/Maya's OBJ importers assume by default
  (Blender "Forward -Z, Up Y" maps it back to x east, y north, z up). Two triangles per 2x2 block
  of cell centres, counter-clockwise seen from above (normals up). UVs ``u = x / extent``,
  ``v = y / extent`` (v up, row 0 at v = 1); ``texture="hillshade"`` adds a hillshade image.
  Optional decimation to a fraction ``decimate`` of the triangles: ``"quadric"`` (quadric error
  edge collapse, fast-simplification) or ``"stride"`` (every k-th row/column, keeps a regular
  grid and exact bounds).
* ``blender``: a Python script (``blender --python script.py``) plus the heights as a 16-bit PNG
  ``<stem>_heights.png`` (+ sidecar). The script builds the terrain mesh in the world frame
  (1 Blender unit = 1 m; Blender is right-handed Z up like our frame, so no conversion), and, with
  a camera, a Blender camera with the same pose (:func:`blender_camera_euler`), horizontal field
  of view and resolution, and the photo as its background image.

Nodata cells (NaN) are filled before export (``nodata="nearest"``: the nearest valid height;
``"lowest"``: the lowest valid height); ``vertical_exaggeration`` multiplies all heights.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from pixels2peaks.errors import InputError, check_cell_size, check_finite
from pixels2peaks.io.dem import Dem

__all__ = [
    "ExportTarget",
    "EXPORT_TARGETS",
    "ExportOptions",
    "ExportResult",
    "export_heightmap",
    "terrain_mesh",
    "output_paths",
    "default_output",
    "fill_nodata",
    "quantize16",
    "unity_resolution",
    "resample_vertex_grid",
    "unreal_landscape",
    "grid_mesh",
    "z_up_to_y_up",
    "blender_camera_euler",
]

ExportTarget = Literal["unreal", "unity", "raw16", "exr", "obj", "glb", "blender"]
EXPORT_TARGETS: tuple[str, ...] = get_args(ExportTarget)

#: file extension of each target's main file
EXTENSIONS = {
    "unreal": ".png",
    "unity": ".raw",
    "raw16": ".raw",
    "exr": ".exr",
    "obj": ".obj",
    "glb": ".glb",
    "blender": ".py",
}
#: targets whose default file name carries the target name (``heightmap_unreal.png``)
_SUFFIXED = {"unreal", "unity", "raw16", "blender"}

_CODE_MAX = 65535
UNITY_SIZES = tuple(2**n + 1 for n in range(5, 13))  # 33 .. 4097
UNREAL_DOC = "https://dev.epicgames.com/documentation/en-us/unreal-engine/landscape-technical-guide"


# ----------------------------------------------------------------------------------------------
# options and results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportOptions:
    """How to export (saved in the sidecars).

    Attributes:
        decimate: fraction of the mesh triangles to keep, in ``(0, 1]`` (``obj``/``glb``; for
            ``blender`` a Decimate modifier with this ratio); ``None`` keeps the full grid.
        decimation: ``"quadric"`` (quadric error edge collapse) or ``"stride"`` (grid striding).
        unity_size: ``"up"`` / ``"down"``: nearest ``2^n + 1`` resolution above / below.
        z_range_m: ``(lo, hi)`` metres mapped to codes ``0..65535`` in 16-bit exports (e.g. one
            range for several tiles); ``None`` = the data's range. Must contain the data.
        vertical_exaggeration: factor applied to every height (1 = true scale).
        nodata: fill for NaN cells: ``"nearest"`` valid height or the ``"lowest"`` valid height.
        texture: ``"hillshade"`` adds a hillshade texture to ``obj``/``glb`` meshes.
    """

    decimate: float | None = None
    decimation: Literal["quadric", "stride"] = "quadric"
    unity_size: Literal["up", "down"] = "up"
    z_range_m: tuple[float, float] | None = None
    vertical_exaggeration: float = 1.0
    nodata: Literal["nearest", "lowest"] = "nearest"
    texture: Literal["none", "hillshade"] = "none"

    def __post_init__(self) -> None:
        if self.decimate is not None:
            d = check_finite(self.decimate, "decimate")
            if not 0.0 < d <= 1.0:
                raise InputError(f"decimate must be a fraction of triangles in (0, 1], got {self.decimate!r}")
            object.__setattr__(self, "decimate", d)
        _choice(self.decimation, ("quadric", "stride"), "decimation")
        _choice(self.unity_size, ("up", "down"), "unity_size")
        _choice(self.nodata, ("nearest", "lowest"), "nodata")
        _choice(self.texture, ("none", "hillshade"), "texture")
        ve = check_finite(self.vertical_exaggeration, "vertical_exaggeration")
        if ve <= 0.0:
            raise InputError(f"vertical_exaggeration must be > 0, got {self.vertical_exaggeration!r}")
        object.__setattr__(self, "vertical_exaggeration", ve)
        if self.z_range_m is not None:
            try:
                lo, hi = (check_finite(v, "z_range_m") for v in self.z_range_m)
            except (TypeError, ValueError):
                raise InputError(f"z_range_m must be (lo, hi) metres, got {self.z_range_m!r}") from None
            if not hi > lo:
                raise InputError(f"z_range_m must have hi > lo, got ({lo:g}, {hi:g})")
            object.__setattr__(self, "z_range_m", (lo, hi))


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_heightmap` wrote: ``paths`` (main file first) and ``info`` (the numbers
    to type into the target tool, also in the sidecar)."""

    target: str
    paths: tuple[Path, ...]
    info: dict[str, Any] = field(default_factory=dict)




def _choice(value: Any, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise InputError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


# ----------------------------------------------------------------------------------------------
# output names
# ----------------------------------------------------------------------------------------------


def _check_target(target: str) -> str:
    if target not in EXPORT_TARGETS:
        raise InputError(f"unknown export target {target!r} (use one of {', '.join(EXPORT_TARGETS)})")
    return target


def default_output(heightmap: str | Path, target: ExportTarget) -> Path:
    """Default main output next to the heightmap: ``<stem>_<target><ext>`` (unreal, unity, raw16,
    blender) or ``<stem><ext>`` (exr, obj, glb).

    >>> default_output("run/heightmap.tif", "unreal").as_posix()
    'run/heightmap_unreal.png'
    """
    p = Path(heightmap)
    stem = f"{p.stem}_{target}" if _check_target(target) in _SUFFIXED else p.stem
    return p.with_name(stem + EXTENSIONS[target])


def output_paths(target: ExportTarget, out: str | Path, options: ExportOptions = ExportOptions()) -> tuple[Path, ...]:
    """Every file an export writes: the main file ``out`` first, then its companions
    (sidecar JSON, OBJ material + texture, Blender heights PNG + sidecar)."""
    out = Path(out)
    ext = EXTENSIONS[_check_target(target)]
    if out.suffix.lower() != ext:
        raise InputError(f"--to {target} writes a {ext} file; got '{out.name}'")
    side = out.with_suffix(".json")
    if target in ("unreal", "unity", "raw16"):
        return (out, side)
    if target == "obj" and options.texture == "hillshade":
        return (out, out.with_suffix(".mtl"), out.with_name(out.stem + "_hillshade.png"))
    if target == "blender":
        png = out.with_name(out.stem + "_heights.png")
        return (out, png, png.with_suffix(".json"))
    return (out,)


# ----------------------------------------------------------------------------------------------
# heights
# ----------------------------------------------------------------------------------------------


def fill_nodata(z: np.ndarray, how: Literal["nearest", "lowest"] = "nearest") -> np.ndarray:
    """Copy of ``z`` (float64) with NaN cells replaced by the nearest valid height (Euclidean
    distance in cells, ties broken by scipy's EDT) or by the lowest valid height.

    >>> fill_nodata(np.array([[1.0, np.nan, 3.0]])).tolist()
    [[1.0, 1.0, 3.0]]
    """
    z = np.asarray(z, dtype=np.float64)
    valid = np.isfinite(z)
    if valid.all():
        return z.copy()
    if not valid.any():
        raise InputError("the heightmap holds no valid heights (every cell is nodata)")
    if how == "lowest":
        return np.where(valid, z, z[valid].min())
    from scipy.ndimage import distance_transform_edt

    _, (rr, cc) = distance_transform_edt(~valid, return_indices=True)
    return z[rr, cc]


def prepare_heights(dem: Dem, options: ExportOptions) -> np.ndarray:
    """The heights that get exported (float64 metres): nodata filled, exaggeration applied."""
    return fill_nodata(dem.z, options.nodata) * options.vertical_exaggeration


def height_range(z: np.ndarray, options: ExportOptions) -> tuple[float, float]:
    """``(lo, hi)`` metres mapped to codes ``0..65535``: ``options.z_range_m`` (which must contain
    the data) or the data range; a flat map gets ``hi = lo + 1`` (all codes 0)."""
    zmin, zmax = float(z.min()), float(z.max())
    if options.z_range_m is not None:
        lo, hi = options.z_range_m
        if zmin < lo or zmax > hi:
            raise InputError(
                f"heights span [{zmin:g}, {zmax:g}] m, outside the requested z range [{lo:g}, {hi:g}] m"
            )
        return lo, hi
    return (zmin, zmax) if zmax > zmin else (zmin, zmin + 1.0)


def quantize16(z: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``uint16`` codes ``round((z - lo) / (hi - lo) * 65535)``: 0 = ``lo``, 65535 = ``hi``;
    decoding ``lo + k (hi - lo) / 65535`` is within half a quantum of ``z``.

    >>> quantize16(np.array([0.0, 0.5, 1.0]), 0.0, 1.0).tolist()
    [0, 32768, 65535]
    """
    t = (np.asarray(z, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(np.rint(t * _CODE_MAX), 0, _CODE_MAX).astype(np.uint16)


def unity_resolution(height: int, width: int, policy: Literal["up", "down"] = "up") -> int:
    """Unity heightmap resolution ``2^n + 1`` in ``[33, 4097]`` for an ``(height, width)`` grid:
    ``"up"`` = smallest ``>= max(height, width)`` (capped at 4097), ``"down"`` = largest
    ``<= max(height, width)`` (at least 33).

    >>> unity_resolution(300, 200), unity_resolution(300, 200, "down"), unity_resolution(513, 10)
    (513, 257, 513)
    """
    n = max(int(height), int(width))
    if policy == "up":
        return next((s for s in UNITY_SIZES if s >= n), UNITY_SIZES[-1])
    return max((s for s in UNITY_SIZES if s <= n), default=UNITY_SIZES[0])


def resample_vertex_grid(z: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bicubic resampling of a vertex grid to ``(rows, cols)`` keeping the corner samples:
    output ``(i, j)`` samples input position ``(i (H-1)/(rows-1), j (W-1)/(cols-1))`` of the
    interpolating bicubic spline (``RectBivariateSpline``, ``s = 0``: exact on the input samples
    and for polynomials up to degree 3, e.g. planes, up to the edges). Clipped to the input's
    range (no overshoot past the lowest/highest height)."""
    from scipy.interpolate import RectBivariateSpline

    z = np.asarray(z, dtype=np.float64)
    h, w = z.shape
    if (h, w) == (rows, cols):
        return z.copy()
    kr, kc = min(3, h - 1), min(3, w - 1)
    spline = RectBivariateSpline(np.arange(h), np.arange(w), z, kx=kr, ky=kc, s=0)
    out = spline(np.linspace(0.0, h - 1.0, rows), np.linspace(0.0, w - 1.0, cols), grid=True)
    return np.clip(out, z.min(), z.max())


def unreal_landscape(lo: float, hi: float, height: int, dx_m: float) -> dict[str, Any]:
    """Unreal Landscape import settings for a 16-bit heightmap whose codes span ``[lo, hi]``
    metres on ``dx_m`` cells (module docstring; Landscape Technical Guide).

    >>> u = unreal_landscape(0.0, 512.0, 10, 1.0)
    >>> round(u["scale"][2], 3), u["scale"][:2]
    (100.002, [100.0, 100.0])
    """
    scale_z = 12800.0 * (hi - lo) / _CODE_MAX
    return {
        "scale": [100.0 * dx_m, 100.0 * dx_m, scale_z],
        "location_cm": [50.0 * dx_m, -100.0 * (height - 0.5) * dx_m, 100.0 * lo + 256.0 * scale_z],
        "scale_z_guide": (hi - lo) * 100.0 / 512.0,
        "height_cm_of_code": "location_z + (code - 32768) / 128 * scale_z",
        "axes": "Unreal X = east, Y = south, Z = up (cm); image row 0 = north = smallest Y",
        "doc": UNREAL_DOC,
    }


# ----------------------------------------------------------------------------------------------
# meshes
# ----------------------------------------------------------------------------------------------


def grid_mesh(z: np.ndarray, dx_m: float, rows: np.ndarray | None = None,
              cols: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(N, 3)`` (world frame: x east, y north, z up, metres) at the centres of the
    cells ``rows x cols`` (default: all) and faces ``(M, 3)``: two triangles per quad,
    counter-clockwise seen from above (upward normals).

    >>> v, f = grid_mesh(np.zeros((2, 3)), 10.0)
    >>> v.shape, f.shape, v[0].tolist()
    ((6, 3), (4, 3), [5.0, 15.0, 0.0])
    """
    z = np.asarray(z, dtype=np.float64)
    h, w = z.shape
    rows = np.arange(h) if rows is None else np.asarray(rows)
    cols = np.arange(w) if cols is None else np.asarray(cols)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    verts = np.stack([(cc + 0.5) * dx_m, (h - rr - 0.5) * dx_m, z[rr, cc]], axis=-1).reshape(-1, 3)
    nr, nc = len(rows), len(cols)
    k = (np.arange(nr - 1)[:, None] * nc + np.arange(nc - 1)[None, :]).ravel()
    nw, ne, sw, se = k, k + 1, k + nc, k + nc + 1  # row index grows southward
    faces = np.concatenate([np.stack([sw, se, ne], 1), np.stack([sw, ne, nw], 1)])
    return verts, faces.astype(np.int64)


def _stride_indices(n: int, step: int) -> np.ndarray:
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def decimated_mesh(z: np.ndarray, dx_m: float, options: ExportOptions) -> tuple[np.ndarray, np.ndarray]:
    """:func:`grid_mesh`, decimated to ``options.decimate`` of its triangles if set."""
    keep = options.decimate
    if keep is None or keep >= 1.0:
        return grid_mesh(z, dx_m)
    if options.decimation == "stride":
        step = max(1, int(round(1.0 / math.sqrt(keep))))
        return grid_mesh(z, dx_m, _stride_indices(z.shape[0], step), _stride_indices(z.shape[1], step))
    import trimesh

    v, f = grid_mesh(z, dx_m)
    target = max(2, int(round(keep * len(f))))
    try:
        mesh = trimesh.Trimesh(v, f, process=False).simplify_quadric_decimation(face_count=target)
    except ImportError:  # pragma: no cover - depends on the optional extra
        raise InputError("quadric decimation needs fast-simplification: pip install 'pixels2peaks[export]'") from None
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def z_up_to_y_up(v: np.ndarray) -> np.ndarray:
    """World (x east, y north, z up) -> glTF/OBJ Y-up (x east, y up, z south): a proper rotation
    (-90 degrees about x), so triangle winding and handedness are kept.

    >>> z_up_to_y_up(np.array([[1.0, 2.0, 3.0]])).tolist()
    [[1.0, 3.0, -2.0]]
    """
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)


def _hillshade_image(z: np.ndarray, dx_m: float):
    from PIL import Image

    from pixels2peaks.terrain.attributes import hillshade

    shade = np.asarray(hillshade(z.astype(np.float32), dx_m))
    return Image.fromarray(np.clip(np.rint(shade * 255.0), 0, 255).astype(np.uint8), mode="L").convert("RGB")


def terrain_mesh(z: np.ndarray, dx_m: float, options: ExportOptions = ExportOptions(), texture=None):
    """A ``trimesh.Trimesh`` of heightmap ``z`` (:func:`decimated_mesh`, converted to Y-up)
    with ``texture`` (a PIL image over the whole grid, north up) or, for
    ``options.texture == "hillshade"``, the hillshade as its texture."""
    import trimesh

    v, f = decimated_mesh(z, dx_m, options)
    h, w = z.shape
    x0, y0 = 0.5 * dx_m, 0.5 * dx_m
    ex, ey = max((w - 1) * dx_m, dx_m), max((h - 1) * dx_m, dx_m)
    uv = np.stack([(v[:, 0] - x0) / ex, (v[:, 1] - y0) / ey], axis=1)
    if texture is None and options.texture == "hillshade":
        texture = _hillshade_image(z, dx_m)
    visual = None
    if texture is not None:
        # matte: glTF's default metallic factor (1) renders terrain black without an environment
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=texture, metallicFactor=0.0,
                                                       roughnessFactor=1.0)
        visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(z_up_to_y_up(v), f, visual=visual, process=False)


# ----------------------------------------------------------------------------------------------
# Blender camera
# ----------------------------------------------------------------------------------------------


def blender_camera_euler(camera) -> tuple[float, float, float]:
    """Blender ``rotation_euler`` (radians, mode ``'XYZ'``) of a camera with our pose.

    A Blender camera looks along its local -Z with local +Y up and +X right; mode ``'XYZ'``
    applies ``R = Rz(gamma) Ry(beta) Rx(alpha)``. Blender's world is right-handed Z up like ours
    (x east, y north), so with ``alpha = 90 deg + pitch``, ``beta = 0``, ``gamma = -yaw``:
    ``Rx(alpha) (0, 0, -1) = (0, cos pitch, sin pitch)`` (north, raised by pitch), and ``Rz(-yaw)``
    turns it clockwise by ``yaw`` to ``(sin yaw cos pitch, cos yaw cos pitch, sin pitch)`` =
    :attr:`Camera.forward`; likewise ``R (0, 1, 0)`` = :attr:`Camera.up` and
    ``R (1, 0, 0) = (cos yaw, -sin yaw, 0)`` = :attr:`Camera.right` (roll 0).

    >>> from pixels2peaks.camera import Camera
    >>> [round(math.degrees(a), 6) + 0.0 for a in blender_camera_euler(Camera(4, 3, 60.0, (0, 0, 0), 30.0, -10.0))]
    [80.0, 0.0, -30.0]
    """
    return (math.radians(90.0 + camera.pitch_deg), 0.0, math.radians(-camera.yaw_deg))


def _camera_params(camera, z: np.ndarray, dx_m: float, photo: Path | None) -> dict[str, Any]:
    h, w = z.shape
    pos = np.asarray(camera.position_m, dtype=np.float64)
    corners = np.array([[x, y, zz] for x in (0.0, w * dx_m) for y in (0.0, h * dx_m)
                        for zz in (float(z.min()), float(z.max()))])
    far = float(np.linalg.norm(corners - pos, axis=1).max())
    return {
        "name": "P2P Camera",
        "location_m": [float(c) for c in pos],
        "rotation_euler_rad": list(blender_camera_euler(camera)),
        "fov_x_rad": math.radians(camera.fov_x_deg),
        "width": int(camera.width),
        "height": int(camera.height),
        "clip_start_m": 0.1,
        "clip_end_m": max(1000.0, 1.5 * far),
        "photo": None if photo is None else str(photo.resolve()),
    }


def _check_photo(photo: Path, camera) -> None:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(photo) as im:
            w, h = ImageOps.exif_transpose(im).size
    except FileNotFoundError:
        raise InputError(f"photo not found: '{photo}'") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot read photo '{photo}': {exc}") from None
    if camera is not None and abs(w / h - camera.width / camera.height) > 0.01 * camera.width / camera.height:
        raise InputError(
            f"photo '{photo.name}' is {w}x{h} but the camera is {camera.width}x{camera.height}: "
            "the aspect ratios differ"
        )


# ----------------------------------------------------------------------------------------------
# writers (each writes into the staging folder ``tmp`` the files named like ``paths``)
# ----------------------------------------------------------------------------------------------


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")


def _write_png16(path: Path, codes: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(codes.astype(np.uint16)).save(path, format="PNG")


def _png_meta(lo: float, hi: float, dx_m: float) -> dict[str, Any]:
    """Sidecar keys read by :func:`pixels2peaks.io.read_dem` (``z = offset + code * scale``)."""
    return {"scale": (hi - lo) / _CODE_MAX, "offset": lo, "dx_m": dx_m}


def _export_unreal(z, dx_m, tmp, paths, options, **_) -> dict[str, Any]:
    lo, hi = height_range(z, options)
    _write_png16(tmp / paths[0].name, quantize16(z, lo, hi))
    info = {"unreal": unreal_landscape(lo, hi, z.shape[0], dx_m), "height_range_m": [lo, hi]}
    _write_json(tmp / paths[1].name, {**_png_meta(lo, hi, dx_m), **info, "options": asdict(options)})
    return info


def _export_unity(z, dx_m, tmp, paths, options, **_) -> dict[str, Any]:
    lo, hi = height_range(z, options)
    h, w = z.shape
    n = unity_resolution(h, w, options.unity_size)
    grid = resample_vertex_grid(z, n, n)
    codes = quantize16(grid[::-1], lo, hi)  # south row first
    codes.astype("<u2").tofile(tmp / paths[0].name)
    info = {
        "resolution": n,
        "depth_bits": 16,
        "byte_order": "Windows (little-endian)",
        "flip_vertically": False,
        "row_order": "south first (Unity terrain z = 0)",
        "terrain_width_m": (w - 1) * dx_m,
        "terrain_length_m": (h - 1) * dx_m,
        "terrain_height_m": hi - lo,
        "terrain_position_m": [0.5 * dx_m, lo, 0.5 * dx_m],
        "height_m_of_code": "terrain_position_y + code / 65535 * terrain_height",
        "source_size": [h, w],
        "resampled": (h, w) != (n, n),
    }
    _write_json(tmp / paths[1].name, {"format": "pixels2peaks.unity/1", **info, "options": asdict(options)})
    return info


def _export_raw16(z, dx_m, tmp, paths, options, **_) -> dict[str, Any]:
    lo, hi = height_range(z, options)
    quantize16(z, lo, hi).astype("<u2").tofile(tmp / paths[0].name)
    h, w = z.shape
    info = {
        "width": w,
        "height": h,
        "dtype": "uint16",
        "byte_order": "little",
        "row_order": "north first",
        **_png_meta(lo, hi, dx_m),
    }
    _write_json(tmp / paths[1].name, {"format": "pixels2peaks.raw16/1", **info, "options": asdict(options)})
    return info


def _export_exr(z, dx_m, tmp, paths, options, **_) -> dict[str, Any]:
    try:
        import OpenEXR
    except ImportError:  # pragma: no cover - depends on the optional extra
        raise InputError("EXR export needs OpenEXR: pip install 'pixels2peaks[export]'") from None
    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "dx_m": float(dx_m),
        "comment": "pixels2peaks heightmap: channel Y = height in metres, row 0 = north",
    }
    try:
        OpenEXR.File(header, {"Y": z.astype(np.float32)}).write(str(tmp / paths[0].name))
    except RuntimeError as exc:  # the binding reports I/O errors (e.g. a full disk) this way
        raise OSError(str(exc)) from None
    return {"channel": "Y", "units": "metres", "range_m": [float(z.min()), float(z.max())]}


def _export_mesh(z, dx_m, tmp, paths, options, target, **_) -> dict[str, Any]:
    mesh = terrain_mesh(z, dx_m, options)
    if target == "glb":
        (tmp / paths[0].name).write_bytes(mesh.export(file_type="glb"))
    else:
        from trimesh.exchange.obj import export_obj

        mtl = paths[1].name if len(paths) > 1 else None
        if mtl is not None:
            mesh.visual.material.name = paths[2].stem
        text, files = export_obj(mesh, include_normals=False, return_texture=True, mtl_name=mtl,
                                 header="pixels2peaks export: metres, x east, y up, z south")
        for name, data in (files or {}).items():
            (tmp / name).write_bytes(data)
        (tmp / paths[0].name).write_text(text)
    lo, hi = mesh.bounds
    return {
        "vertices": int(len(mesh.vertices)),
        "faces": int(len(mesh.faces)),
        "axes": "x east, y up, z south (Y-up), metres",
        "bounds_m": [lo.tolist(), hi.tolist()],
    }


def _export_blender(z, dx_m, tmp, paths, options, camera=None, photo=None, **_) -> dict[str, Any]:
    lo, hi = height_range(z, options)
    _write_png16(tmp / paths[1].name, quantize16(z, lo, hi))
    meta = _png_meta(lo, hi, dx_m)
    _write_json(tmp / paths[2].name, meta)
    h, w = z.shape
    params = {
        "name": "P2P Terrain",
        "heights_png": str(paths[1].resolve()),
        "width": w,
        "height": h,
        "dx_m": dx_m,
        "scale": meta["scale"],
        "offset": meta["offset"],
        "decimate": options.decimate,
        "camera": None if camera is None else _camera_params(camera, z, dx_m, photo),
    }
    (tmp / paths[0].name).write_text(blender_script(params))
    return {"heights_png": paths[1].name, "camera": params["camera"] is not None,
            "photo": photo is not None, "run": f"blender --python {paths[0].name}"}


def blender_script(params: dict[str, Any]) -> str:
    """The Blender script: the template ``_blender_scene.py`` with its ``PARAMS = {}`` line
    replaced by ``params`` (a Python literal of str/float/int/None/list values)."""
    from importlib.resources import files

    template = files("pixels2peaks.io").joinpath("_blender_scene.py").read_text(encoding="utf-8")
    marker = "PARAMS: dict = {}"
    if template.count(marker) != 1:  # pragma: no cover - template bug
        raise RuntimeError("Blender template has no unique PARAMS line")
    return template.replace(marker, f"PARAMS: dict = {params!r}")


_WRITERS = {
    "unreal": _export_unreal,
    "unity": _export_unity,
    "raw16": _export_raw16,
    "exr": _export_exr,
    "obj": _export_mesh,
    "glb": _export_mesh,
    "blender": _export_blender,
}


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------


def export_heightmap(
    dem: Dem,
    target: ExportTarget,
    out: str | Path,
    *,
    options: ExportOptions = ExportOptions(),
    camera=None,
    photo: str | Path | None = None,
) -> ExportResult:
    """Export ``dem`` for ``target`` to ``out`` (+ companions, :func:`output_paths`); existing
    files are replaced (the CLI refuses them without ``--overwrite``). ``camera`` (a
    :class:`~pixels2peaks.camera.Camera`) and ``photo`` are used by ``blender`` only.

    All files are written into a temporary folder beside ``out`` and moved into place at the
    end; any error (including a full disk) leaves nothing behind and raises InputError.
    """
    from pixels2peaks.io.write import _staging

    if not isinstance(dem, Dem):
        raise InputError("export_heightmap expects a Dem (see pixels2peaks.io.read_dem)")
    paths = output_paths(_check_target(target), out, options)
    if target != "blender" and (camera is not None or photo is not None):
        raise InputError("a camera / photo applies to --to blender only")
    if target not in ("obj", "glb", "blender") and options.decimate is not None:
        raise InputError("decimation applies to --to obj, glb or blender only")
    if target not in ("obj", "glb") and options.texture != "none":
        raise InputError("a texture applies to --to obj or glb only")
    photo = None if photo is None else Path(photo)
    if photo is not None:
        if camera is None:
            raise InputError("--photo needs a camera (--camera camera.json)")
        _check_photo(photo, camera)
    dx = check_cell_size(dem.dx_m)
    z = prepare_heights(dem, options)
    try:
        with _staging(paths[0]) as tmp:
            info = _WRITERS[target](z, dx, tmp, paths, options, target=target, camera=camera, photo=photo)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise InputError(f"cannot write '{paths[0]}': {reason}") from None
    return ExportResult(target=target, paths=paths, info=info)
