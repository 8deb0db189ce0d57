"""Writing heightmaps. Every write is atomic: files are produced in a temporary location in the
destination folder and moved into place with :func:`os.replace`; on error nothing is left behind.

Round-trip guarantees (``read_dem(write_...(z))``):

* GeoTIFF (float32, deflate), ``.asc`` (9 significant digits), ENVI ``.bil``, ``.npy``, ``.npz``:
  bit-exact float32 heights, NaN nodata preserved, same ``dx_m``. Arrays without CRS are tagged
  with a local metric CRS (``LOCAL_CS`` in metres) so they read back without ``dx_m``; ``.npy``
  cannot hold a cell size (read it with ``dx_m=``).
* 16-bit PNG: heights are quantised to integer codes ``k = round((z - offset) / scale)`` with
  ``offset = min(z)``, ``scale = (max(z) - min(z)) / 65534`` (``/ 65535`` when there is no
  nodata; code 65535 is reserved for nodata, ``nodata_value`` in the sidecar). "Lossless" here
  means the *integer codes* round-trip exactly and re-encoding a decoded PNG reproduces the same
  codes; the float error is at most ``scale / 2`` (plus float32 rounding of the result).
  A flat map uses ``scale = 1`` and is exact. The sidecar ``<stem>.json`` holds ``scale``,
  ``offset``, ``dx_m`` (and ``nodata_value`` if any cell is NaN).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.errors import InputError, check_cell_size
from pixels2peaks.paths import require_folder, require_writable
from pixels2peaks.io.dem import Dem

__all__ = [
    "write_dem", "write_geotiff", "write_png16", "write_asc", "write_envi", "write_npy", "write_npz",
    "png16_encode",
]

#: CRS written for arrays without one: a local Cartesian frame in metres
LOCAL_METRIC_WKT = (
    'LOCAL_CS["pixels2peaks local metric",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)

_PNG_MAX = 65535


# ----------------------------------------------------------------------------------------------
# atomic file plumbing
# ----------------------------------------------------------------------------------------------


def _out_dir(path: Path) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    require_folder(folder)
    if path.is_dir():
        raise InputError(f"output path '{path}' is a directory")
    return folder


def _temp_dir(folder: Path, target: Path) -> Path:
    """A private ``.NAME.*.tmp`` directory in ``folder`` for writing ``target``; the OS's refusal
    (permissions, a read-only or full disk) becomes a one-line :class:`InputError` naming ``target``."""
    try:
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder))
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _staging(path: Path) -> Iterator[Path]:
    """Yield a private temp directory in ``path``'s folder; on success, move every file it holds
    into the folder (the file named like ``path`` last), then remove it. On error remove it."""
    folder = _out_dir(path)
    tmpdir = _temp_dir(folder, path)
    try:
        yield tmpdir
        names = sorted(os.listdir(tmpdir), key=lambda n: n == path.name)
        if path.name not in names:  # pragma: no cover - writer bug
            raise RuntimeError(f"writer produced no '{path.name}'")
        for name in names:
            os.replace(tmpdir / name, folder / name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` to; it is moved into place only on success.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "a.txt").read_text()
    'hi'
    """
    path = Path(path)
    with _staging(path) as tmpdir:
        yield tmpdir / path.name


# ----------------------------------------------------------------------------------------------
# argument normalisation
# ----------------------------------------------------------------------------------------------


def _as_height_array(z: Any) -> np.ndarray:
    arr = np.asarray(z)
    if arr.ndim != 2:
        raise InputError(f"heights must be a 2-D (H, W) array, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError("heights array is empty")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"unsupported heights dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if np.isinf(arr).any():
        raise InputError("heights contain infinite values (use NaN for nodata)")
    return arr


def _unpack(dem_or_array: Any, dx_m: float | None, crs: Any, transform: Any):
    """(z float32, dx, crs, transform) with explicit arguments overriding the Dem's fields."""
    if isinstance(dem_or_array, Dem):
        z = _as_height_array(dem_or_array.z)
        dx = dem_or_array.dx_m if dx_m is None else dx_m
        crs = dem_or_array.crs if crs is None else crs
        transform = dem_or_array.transform if transform is None else transform
    else:
        z = _as_height_array(dem_or_array)
        dx = dx_m
    if dx is None:
        raise InputError("dx_m (cell size in metres) is required to write a bare array")
    return z, check_cell_size(dx), crs, transform


def _georef(z: np.ndarray, dx: float, crs: Any, transform: Any):
    """rasterio (CRS, Affine) for writing."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError
    from rasterio.transform import Affine

    if crs is None:
        rcrs = CRS.from_wkt(LOCAL_METRIC_WKT)
    else:
        try:
            rcrs = CRS.from_user_input(crs)
        except (CRSError, ValueError, TypeError) as exc:
            raise InputError(f"invalid CRS {str(crs)[:60]!r}: {exc}") from None
    if transform is None:
        aff = Affine(dx, 0.0, 0.0, 0.0, -dx, z.shape[0] * dx)
    else:
        aff = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
        if crs is None and not (
            math.isclose(abs(aff.a), dx, rel_tol=1e-9) and math.isclose(abs(aff.e), dx, rel_tol=1e-9)
        ):
            raise InputError(
                f"transform cell size ({abs(aff.a)}, {abs(aff.e)}) disagrees with dx_m={dx} "
                "and no CRS was given"
            )
    return rcrs, aff


def _gdal_write(path: Path, driver: str, z: np.ndarray, rcrs, aff, nodata: float, **opts) -> None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with _staging(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
            tmp / path.name,
            "w",
            driver=driver,
            height=z.shape[0],
            width=z.shape[1],
            count=1,
            dtype="float32",
            crs=rcrs,
            transform=aff,
            nodata=nodata,
            **opts,
        ) as ds:
            ds.write(z, 1)
        if driver == "ENVI":  # GDAL names the staging path in the header's description
            _set_envi_description(tmp / path.name, path.name)


def _set_envi_description(raster: Path, text: str) -> None:
    """Replace the ``description = {...}`` block of the ENVI header next to ``raster``."""
    import re

    hdr = raster.with_suffix(".hdr")
    hdr.write_text(re.sub(r"description = \{[^}]*\}", f"description = {{{text}}}", hdr.read_text(), count=1))


def _sentinel(z: np.ndarray) -> float:
    """A nodata value for formats without NaN support, absent from the valid data."""
    vals = z[np.isfinite(z)]
    for cand in (-9999.0, -32768.0, -99999.0):
        if not (vals == np.float32(cand)).any():
            return cand
    return float(np.floor(vals.min()) - 1.0)  # pragma: no cover


def _nan_nodata(z: np.ndarray, aff: Any) -> tuple[np.ndarray, float]:
    """Stored heights and nodata value of a format with NaN nodata: ``z`` as is."""
    return z, float("nan")


def _asc_nodata(z: np.ndarray, aff: Any) -> tuple[np.ndarray, float]:
    """ESRI ASCII: square cells only; NaN becomes a sentinel absent from the heights."""
    if not math.isclose(abs(aff.a), abs(aff.e), rel_tol=1e-9):
        raise InputError("ESRI ASCII grids need square cells in CRS units; use GeoTIFF instead")
    nd = _sentinel(z)
    return np.where(np.isnan(z), np.float32(nd), z), nd


def _write_georeferenced(
    path: str | Path, dem_or_array: Any, dx_m: float | None, crs: Any, transform: Any, driver: str,
    encode=_nan_nodata, **opts: Any,
) -> Path:
    """Body of the GDAL writers: unpack and georeference, ``encode(z, affine)`` to the stored
    heights and nodata value, write atomically with ``driver`` and creation ``opts``."""
    path = Path(path)
    z, dx, crs, transform = _unpack(dem_or_array, dx_m, crs, transform)
    rcrs, aff = _georef(z, dx, crs, transform)
    stored, nodata = encode(z, aff)
    _gdal_write(path, driver, stored, rcrs, aff, nodata, **opts)
    return path


# ----------------------------------------------------------------------------------------------
# writers
# ----------------------------------------------------------------------------------------------


def write_geotiff(
    path: str | Path,
    dem_or_array: Dem | np.ndarray,
    dx_m: float | None = None,
    crs: Any = None,
    transform: Any = None,
) -> Path:
    """Write a float32 GeoTIFF (deflate, NaN nodata, cell size in the geotransform).

    ``dem_or_array``: a :class:`Dem` (its dx/CRS/transform are defaults) or an ``(H, W)`` array
    (then ``dx_m`` is required). Without CRS a local metric CRS is written; without transform the
    top-left corner is put at ``(0, H * dx_m)`` (the world frame of ``docs/conventions.md``).
    """
    return _write_georeferenced(path, dem_or_array, dx_m, crs, transform, "GTiff",
                                compress="deflate", predictor=3, BIGTIFF="IF_SAFER")


def write_asc(
    path: str | Path,
    dem_or_array: Dem | np.ndarray,
    dx_m: float | None = None,
    crs: Any = None,
    transform: Any = None,
) -> Path:
    """Write an ESRI ASCII grid (+ ``.prj``), 9 significant digits (float32-exact), nodata
    sentinel (-9999 unless that height occurs)."""
    return _write_georeferenced(path, dem_or_array, dx_m, crs, transform, "AAIGrid", _asc_nodata)


def write_envi(
    path: str | Path,
    dem_or_array: Dem | np.ndarray,
    dx_m: float | None = None,
    crs: Any = None,
    transform: Any = None,
) -> Path:
    """Write an ENVI float32 ``.bil`` + ``.hdr`` (NaN nodata)."""
    return _write_georeferenced(path, dem_or_array, dx_m, crs, transform, "ENVI", interleave="bil")


def png16_encode(z: np.ndarray) -> tuple[np.ndarray, float, float, int | None]:
    """Quantise heights to uint16 codes: returns ``(codes, scale, offset, nodata_value)``."""
    z = _as_height_array(z).astype(np.float64)
    valid = np.isfinite(z)
    nodata = _PNG_MAX if not valid.all() else None
    max_code = _PNG_MAX - 1 if nodata is not None else _PNG_MAX
    if valid.any():
        lo, hi = float(z[valid].min()), float(z[valid].max())
    else:
        lo, hi = 0.0, 0.0
    scale = (hi - lo) / max_code if hi > lo else 1.0
    codes = np.full(z.shape, nodata if nodata is not None else 0, dtype=np.uint16)
    codes[valid] = np.clip(np.rint((z[valid] - lo) / scale), 0, max_code).astype(np.uint16)
    return codes, scale, lo, nodata


def write_png16(path: str | Path, z: Dem | np.ndarray, dx_m: float | None = None) -> Path:
    """Write a 16-bit grayscale PNG plus the JSON sidecar ``<stem>.json`` (``scale``, ``offset``,
    ``dx_m``, ``nodata_value`` when there are NaNs); see the module docstring for precision."""
    from PIL import Image

    path = Path(path)
    arr, dx, _, _ = _unpack(z, dx_m, None, None)
    codes, scale, offset, nodata = png16_encode(arr)
    meta: dict[str, Any] = {"scale": scale, "offset": offset, "dx_m": dx}
    if nodata is not None:
        meta["nodata_value"] = nodata
    side = path.with_suffix(".json")
    if side == path:
        raise InputError(f"PNG output path must not end in .json: '{path}'")
    # both files are staged together; the sidecar is moved first, the PNG last
    with _staging(path) as tmp:
        (tmp / side.name).write_text(json.dumps(meta, indent=1) + "\n")
        Image.fromarray(codes).save(tmp / path.name, format="PNG")
    return path


def write_npy(path: str | Path, z: Dem | np.ndarray) -> Path:
    """Write a float32 ``.npy`` (no cell size: read back with ``dx_m=``)."""
    path = Path(path)
    arr = _as_height_array(z.z if isinstance(z, Dem) else z)
    with _staging(path) as tmp, open(tmp / path.name, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    return path


def write_npz(path: str | Path, z: Dem | np.ndarray, dx_m: float | None = None) -> Path:
    """Write a compressed ``.npz`` with keys ``z`` (float32, NaN = nodata), ``dx_m`` and
    ``nodata`` (the string ``"nan"``: NaN cells are declared nodata)."""
    path = Path(path)
    arr, dx, _, _ = _unpack(z, dx_m, None, None)
    with _staging(path) as tmp, open(tmp / path.name, "wb") as fh:
        np.savez_compressed(fh, z=arr, dx_m=np.float64(dx), nodata=np.array("nan"))
    return path


_WRITERS = {
    ".tif": "tif",
    ".tiff": "tif",
    ".png": "png",
    ".npy": "npy",
    ".npz": "npz",
    ".asc": "asc",
    ".bil": "bil",
}


#: files :func:`write_dem` writes beside ``path``, by extension (GDAL's .prj when there is a CRS)
_COMPANIONS = {".png": (".json",), ".asc": (".prj",), ".bil": (".hdr", ".prj")}


def dem_output_paths(path: str | Path) -> tuple[Path, ...]:
    """Every file :func:`write_dem` may write for ``path``: ``path`` first, then its companions.

    >>> [p.name for p in dem_output_paths("a/b.asc")]
    ['b.asc', 'b.prj']
    """
    path = Path(path)
    return (path, *(path.with_suffix(s) for s in _COMPANIONS.get(path.suffix.lower(), ())))


def write_dem(path: str | Path, dem: Dem) -> Path:
    """Write ``dem`` in the format given by the extension (.tif/.tiff/.png/.npy/.npz/.asc/.bil)."""
    path = Path(path)
    if not isinstance(dem, Dem):
        raise InputError("write_dem expects a Dem; use write_geotiff/write_png16/... for arrays")
    kind = _WRITERS.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"unsupported output extension '{path.suffix}' (use one of {', '.join(sorted(_WRITERS))})"
        )
    if kind == "tif":
        return write_geotiff(path, dem)
    if kind == "asc":
        return write_asc(path, dem)
    if kind == "bil":
        return write_envi(path, dem)
    if kind == "png":
        return write_png16(path, dem)
    if kind == "npy":
        return write_npy(path, dem)
    return write_npz(path, dem)


# ----------------------------------------------------------------------------------------------
# output folders (p2p synth, visible, run, complete)
# ----------------------------------------------------------------------------------------------


def check_output_dir(outdir: str | Path, overwrite: bool) -> Path:
    """OUTDIR must be a new or empty folder unless ``overwrite``, with an existing parent, and
    writable (its parent if new); else one-line :class:`InputError`."""
    outdir = Path(outdir)
    if outdir.exists():
        if not outdir.is_dir():
            raise InputError(f"{outdir} exists and is not a directory")
        if any(outdir.iterdir()) and not overwrite:
            raise InputError(f"{outdir} is not empty; pass --overwrite to replace its files")
    parent = outdir.parent if str(outdir.parent) else Path(".")
    require_folder(parent)
    require_writable(outdir if outdir.exists() else parent, outdir)
    return outdir


@contextlib.contextmanager
def staged_folder(outdir: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``outdir``; on success it becomes ``outdir`` (or
    its files replace those in an existing ``outdir``). OS errors (full disk, permissions)
    become one-line :class:`InputError`\\ s; nothing is left behind on failure."""
    outdir = check_output_dir(outdir, overwrite)
    parent = outdir.parent if str(outdir.parent) else Path(".")
    tmp = _temp_dir(parent, outdir)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a renamed OUTDIR gets normal rights
        try:
            yield tmp
            if not outdir.exists():
                os.rename(tmp, outdir)
            else:
                names = sorted(os.listdir(tmp))
                for name in names:  # check every target first: all files move, or none
                    if (outdir / name).is_dir():
                        raise InputError(f"cannot write {outdir / name}: a folder of that name is in the way")
                for name in names:
                    os.replace(tmp / name, outdir / name)
        except OSError as exc:
            raise InputError(f"cannot write {outdir}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_mask_png(path: str | Path, mask: np.ndarray) -> None:
    """8-bit PNG of a boolean mask: 255 = true, 0 = false."""
    from PIL import Image

    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(path, format="PNG")
