"""Reading digital elevation models (DEMs) into the project's heightmap convention.

Every reader returns a :class:`Dem`: a float32 ``(H, W)`` array in metres, row 0 = north,
column 0 = west, ``NaN`` = nodata, plus a square cell size ``dx_m`` in metres.

Supported inputs (:func:`read_dem`):

* anything GDAL reads through rasterio: GeoTIFF, ESRI ASCII grid (``.asc``), ENVI / EHdr
  ``.bil``/``.hdr`` (the ``.hdr`` path itself is accepted too), ...;
* ``.npy`` (needs ``dx_m``) and ``.npz`` (key ``z`` or the only array; optional ``dx_m`` key);
* 16-bit (or 8-bit) grayscale PNG, decoded with the JSON sidecar ``<stem>.json`` written by
  :func:`pixels2peaks.io.write_png16` (``scale``, ``offset``, ``dx_m``, ``nodata_value``) or with an
  explicit ``dx_m`` (codes are then used as raw heights before ``z_scale``/``z_offset``).

Cell size resolution, in order:

1. an explicit ``dx_m`` always wins (the cells are then *asserted* to be square ``dx_m`` metres;
   the file's own spacing and CRS units are ignored, e.g. for a DEM whose header georeference is
   wrong);
2. projected CRS: cell size times the CRS linear-unit factor (feet -> metres). Only the
   *horizontal* spacing is converted; elevation values are used as stored (a CRS says nothing
   reliable about vertical units), use ``z_scale`` (e.g. ``0.3048``) for elevations in feet;
3. local/engineering CRS (``LOCAL_CS``) with a declared length unit: same as projected (our own
   writers tag CRS-less data this way, so they round-trip without ``dx_m``);
4. geographic CRS (degrees): converted to metres at the raster's central latitude on the WGS84
   ellipsoid (meridional / prime-vertical radii of curvature). A raster *without* CRS is taken as
   geographic WGS84 (with a warning) only when its grid clearly is one: cell size <= 1 arc-minute,
   bounds inside lon [-180, 360] x lat [-90, 90], and not anchored at (0, 0);
5. otherwise: :class:`~pixels2peaks.errors.InputError` asking for ``--dx``.

Square cells: E-W and N-S spacings within 0.1 % of each other are treated as square with
``dx_m = sqrt(dx_ew * dx_ns)``. Otherwise ``square="error"`` (default) raises InputError naming
the option, and ``square="resample"`` bilinearly resamples to square cells of the **smaller**
spacing (no loss of resolution along the finer axis; the coarser axis is interpolated; the
top-left corner is kept and the extent is preserved to within one cell). Cells whose interpolation
weight comes mostly (> 50 %) from nodata cells stay nodata.

Elevations: ``z = stored * (band scale) * z_scale + ... + z_offset``, i.e. GDAL band
scale/offset metadata first, then the user's ``z_scale``/``z_offset``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pixels2peaks.errors import InputError, check_cell_size

__all__ = ["Dem", "read_dem", "metres_per_degree", "SQUARE_RTOL"]

#: relative tolerance under which E-W and N-S spacings count as square
SQUARE_RTOL = 1e-3

# WGS84 ellipsoid
_WGS84_A = 6378137.0
_WGS84_F = 1.0 / 298.257223563
_WGS84_E2 = _WGS84_F * (2.0 - _WGS84_F)

_NUMPY_EXTS = {".npy", ".npz"}
_PNG_EXTS = {".png"}
# data files that may sit next to an ENVI/EHdr header
_HDR_DATA_EXTS = (".bil", ".bip", ".bsq", ".img", ".dat", ".flt", ".raw", "")


@dataclass(frozen=True, eq=False)
class Dem:
    """A heightmap in metres with square cells.

    Attributes:
        z: float32 ``(H, W)`` heights in metres, row 0 north, ``NaN`` = nodata.
        dx_m: cell size in metres (square cells).
        crs: CRS as an ``"EPSG:xxxx"`` string or WKT, or ``None`` if unknown.
        transform: affine geotransform (rasterio ``Affine`` or a 6-tuple ``(a, b, c, d, e, f)``)
            in CRS units, or ``None``.
        source: where the DEM came from (path), informational.
    """

    z: np.ndarray
    dx_m: float
    crs: str | None = None
    transform: Any = None
    source: str = ""

    def __post_init__(self) -> None:
        z = np.asarray(self.z)
        if z.ndim != 2:
            raise InputError(f"DEM heights must be a 2-D (H, W) array, got shape {z.shape}")
        if z.dtype != np.float32:
            z = z.astype(np.float32)
        object.__setattr__(self, "z", z)
        dx = check_cell_size(self.dx_m)
        object.__setattr__(self, "dx_m", dx)

    @property
    def valid(self) -> np.ndarray:
        """Boolean ``(H, W)`` mask of cells holding data (finite heights)."""
        return np.isfinite(self.z)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.z.shape[0]), int(self.z.shape[1]))

    @property
    def height(self) -> int:
        return int(self.z.shape[0])

    @property
    def width(self) -> int:
        return int(self.z.shape[1])


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------




def _check_finite(val: Any, what: str, *, nonzero: bool = False) -> float:
    try:
        out = float(val)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a finite number, got {val!r}") from None
    if not math.isfinite(out) or (nonzero and out == 0.0):
        kind = "a finite non-zero" if nonzero else "a finite"
        raise InputError(f"{what} must be {kind} number, got {val!r}")
    return out


def metres_per_degree(lat_deg: float) -> tuple[float, float]:
    """Metres per degree of (longitude, latitude) at latitude ``lat_deg`` on the WGS84 ellipsoid."""
    phi = math.radians(lat_deg)
    s2 = math.sin(phi) ** 2
    w = math.sqrt(1.0 - _WGS84_E2 * s2)
    n_radius = _WGS84_A / w  # prime vertical radius of curvature
    m_radius = _WGS84_A * (1.0 - _WGS84_E2) / w**3  # meridional radius of curvature
    k = math.pi / 180.0
    return k * n_radius * math.cos(phi), k * m_radius


_UNIT_RE = re.compile(r'UNIT\[\s*"([^"]*)"\s*,\s*([0-9.eE+-]+)')


def _crs_unit_factor(crs: Any) -> float | None:
    """Metres per CRS linear unit for projected/local CRSs, or None if unknown."""
    try:
        if crs.is_projected:
            return float(crs.linear_units_factor[1])
    except Exception:  # pragma: no cover - rasterio raises for odd CRSs
        pass
    try:
        wkt = crs.to_wkt()
    except Exception:  # pragma: no cover
        return None
    if wkt.lstrip().upper().startswith(("LOCAL_CS", "ENGCRS", "ENGINEERINGCRS")):
        # the top-level unit of a LOCAL_CS is its first UNIT[...]
        m = _UNIT_RE.search(wkt)
        if m:
            try:
                factor = float(m.group(2))
            except ValueError:
                return None
            if math.isfinite(factor) and factor > 0:
                return factor
    return None


def _crs_to_str(crs: Any) -> str | None:
    if crs is None:
        return None
    try:
        epsg = crs.to_epsg()
    except Exception:  # pragma: no cover
        epsg = None
    if epsg:
        return f"EPSG:{epsg}"
    try:
        return crs.to_wkt()
    except Exception:  # pragma: no cover
        return str(crs)


def _loc(path: Path) -> str:
    return f"'{path}'"


# ----------------------------------------------------------------------------------------------
# format readers: return (raw float64 array with NaN nodata, info dict)
# info: dx_ew, dx_ns (metres or None), crs (str|None), transform, geographic_lat (for resample)
# ----------------------------------------------------------------------------------------------


def _read_numpy(path: Path, dx_m: float | None) -> tuple[np.ndarray, dict]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        detail = "not a plain numeric .npy/.npz file" if "pickle" in str(exc) else _one_line(exc)
        raise InputError(f"cannot read {_loc(path)} as a NumPy file: {detail}") from None
    file_dx = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.files)
            arrays = [k for k in keys if k not in ("dx_m", "nodata")]
            nan_declared = "nodata" in keys and str(loaded["nodata"]) == "nan"
            if "z" in keys:
                key = "z"
            elif len(arrays) == 1:
                key = arrays[0]
            else:
                raise InputError(
                    f"{_loc(path)}: expected an array named 'z' or a single array, found keys {keys}"
                )
            try:
                arr = loaded[key]
                if "dx_m" in keys:
                    file_dx = loaded["dx_m"]
            except Exception as exc:
                raise InputError(f"cannot read {_loc(path)}: {_one_line(exc)}") from None
        if file_dx is not None:
            if np.size(file_dx) != 1:
                raise InputError(f"{_loc(path)}: 'dx_m' must be a single number")
            file_dx = check_cell_size(np.asarray(file_dx).reshape(()).item(), f"{path.name}: dx_m")
    else:
        arr = loaded
        nan_declared = False
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2:
        raise InputError(f"{_loc(path)}: expected a 2-D height array, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{_loc(path)}: unsupported array dtype {arr.dtype}")
    z = arr.astype(np.float64)
    dx = dx_m if dx_m is not None else file_dx
    if dx is None:
        raise InputError(f"{_loc(path)} carries no cell size; pass --dx (dx_m=<metres>)")
    return z, {"dx_ew": dx, "dx_ns": dx, "crs": None, "transform": None, "nan_declared": nan_declared}


def _png_sidecar(path: Path) -> Path | None:
    for cand in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if cand.is_file():
            return cand
    return None


def _read_png(path: Path, dx_m: float | None) -> tuple[np.ndarray, dict]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode not in ("I;16", "I;16B", "I;16L", "I", "L"):
                raise InputError(
                    f"{_loc(path)}: expected a single-channel grayscale PNG (16-bit), got mode {mode}"
                )
            codes = np.asarray(im)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot read {_loc(path)} as a PNG image: {_one_line(exc)}") from None
    codes = codes.astype(np.int64)
    scale, offset, nodata, file_dx = 1.0, 0.0, None, None
    side = _png_sidecar(path)
    if side is not None:
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot parse PNG sidecar '{side}': {_one_line(exc)}") from None
        if not isinstance(meta, dict):
            raise InputError(f"PNG sidecar '{side}' must hold a JSON object")
        scale = _check_finite(meta.get("scale", 1.0), f"{side.name}: scale", nonzero=True)
        offset = _check_finite(meta.get("offset", 0.0), f"{side.name}: offset")
        if meta.get("dx_m") is not None:
            file_dx = check_cell_size(meta["dx_m"], f"{side.name}: dx_m")
        if meta.get("nodata_value") is not None:
            nd = meta["nodata_value"]
            if not isinstance(nd, (int, float)) or isinstance(nd, bool) or nd != int(nd):
                raise InputError(f"{side.name}: nodata_value must be an integer code, got {nd!r}")
            nodata = int(nd)
    dx = dx_m if dx_m is not None else file_dx
    if dx is None:
        raise InputError(
            f"{_loc(path)} has no sidecar '{path.with_suffix('.json').name}' with dx_m; "
            "pass --dx (dx_m=<metres>)"
        )
    z = codes.astype(np.float64) * scale + offset
    if nodata is not None:
        z[codes == nodata] = np.nan
    return z, {"dx_ew": dx, "dx_ns": dx, "crs": None, "transform": None, "nan_declared": True}


def _resolve_hdr(path: Path) -> Path:
    """An ENVI/EHdr header was given: find the data file next to it."""
    for ext in _HDR_DATA_EXTS:
        for e in {ext, ext.upper()}:
            cand = path.with_suffix(e)
            if cand != path and cand.is_file():
                return cand
    raise InputError(f"{_loc(path)} is a header; no data file (.bil/.bsq/.img/...) found next to it")


def _looks_geographic(transform: Any, height: int, width: int) -> bool:
    a, e, c, f = transform.a, transform.e, transform.c, transform.f
    cx, cy = abs(a), abs(e)
    if not (0 < cx <= 1 / 60 + 1e-12 and 0 < cy <= 1 / 60 + 1e-12):
        return False
    xs = (c, c + a * width)
    ys = (f, f + e * height)
    if min(xs) < -180.0 - 1e-9 or max(xs) > 360.0 + 1e-9:
        return False
    if min(ys) < -90.0 - 1e-9 or max(ys) > 90.0 + 1e-9:
        return False
    return not (c == 0.0 and (f == 0.0 or f + e * height == 0.0))


def _read_gdal(path: Path, dx_m: float | None) -> tuple[np.ndarray, dict]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.transform import Affine

    if path.suffix.lower() == ".hdr":
        path = _resolve_hdr(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path) as ds:
                if ds.count < 1:
                    raise InputError(f"{_loc(path)} holds no raster band")
                if ds.count > 1:
                    raise InputError(
                        f"{_loc(path)} has {ds.count} bands; a DEM must be a single-band raster"
                    )
                dtype = np.dtype(ds.dtypes[0])
                if dtype.kind not in "biuf":
                    raise InputError(f"{_loc(path)}: unsupported raster data type {dtype}")
                if ds.height == 0 or ds.width == 0:
                    raise InputError(f"{_loc(path)} is an empty grid ({ds.height}x{ds.width})")
                data = ds.read(1)
                mask = ds.read_masks(1)
                nodata = ds.nodata
                crs = ds.crs
                transform = ds.transform
                georef = not (crs is None and transform == Affine.identity())
                scale = ds.scales[0] if ds.scales else 1.0
                offset = ds.offsets[0] if ds.offsets else 0.0
    except InputError:
        raise
    except (RasterioError, OSError, ValueError) as exc:
        raise InputError(
            f"cannot read {_loc(path)} as a raster DEM (not a GDAL-readable format?): "
            f"{_one_line(exc)}"
        ) from None

    z = data.astype(np.float64)
    invalid = mask == 0
    # NaN cells are declared nodata when the file says so (nodata = NaN, or masked out)
    nan_declared = nodata is not None and math.isnan(nodata)
    undeclared_nan = bool((np.isnan(z) & ~invalid).any()) and not nan_declared
    if nodata is not None and not math.isnan(nodata):
        if dtype.kind == "f":
            invalid |= data == dtype.type(nodata)
        elif dtype.kind in "iu" and float(nodata).is_integer():
            info_t = np.iinfo(dtype)
            if info_t.min <= nodata <= info_t.max:
                invalid |= data == int(nodata)
    z[invalid] = np.nan  # NaN cells in float rasters are nodata already
    if scale not in (None, 1.0) or offset not in (None, 0.0):
        z = z * float(scale if scale is not None else 1.0) + float(offset or 0.0)

    if not georef:
        transform = None
    else:
        if transform.b != 0.0 or transform.d != 0.0:
            raise InputError(f"{_loc(path)} has a rotated/sheared geotransform; not supported")
        if transform.a == 0.0 or transform.e == 0.0:
            raise InputError(f"{_loc(path)} has a zero cell size in its geotransform")
        h, w = z.shape
        if transform.e > 0:  # south-up: flip so row 0 is north
            z = z[::-1]
            transform = transform @ Affine.translation(0, h) @ Affine.scale(1, -1)
        if transform.a < 0:  # east-to-west columns
            z = z[:, ::-1]
            transform = transform @ Affine.translation(w, 0) @ Affine.scale(-1, 1)
        z = np.ascontiguousarray(z)

    info: dict[str, Any] = {
        "crs": _crs_to_str(crs),
        "transform": transform,
        "nan_declared": not undeclared_nan,
    }
    if dx_m is not None:
        info.update(dx_ew=dx_m, dx_ns=dx_m)
        return z, info
    if transform is None:
        raise InputError(
            f"{_loc(path)} has no georeference (cell size unknown); pass --dx (dx_m=<metres>)"
        )
    cx, cy = abs(transform.a), abs(transform.e)
    geographic = crs is not None and crs.is_geographic
    if crs is None and _looks_geographic(transform, *z.shape):
        warnings.warn(
            f"{path.name}: no CRS; its grid looks like longitude/latitude degrees, assuming "
            "geographic WGS84 (pass dx_m to override)",
            stacklevel=3,
        )
        geographic = True
        info["crs"] = "EPSG:4326"
    if geographic:
        lat_c = transform.f + transform.e * z.shape[0] / 2.0
        if not -90.0 <= lat_c <= 90.0:
            raise InputError(f"{_loc(path)}: geographic raster with central latitude {lat_c:.3f}")
        m_lon, m_lat = metres_per_degree(lat_c)
        info.update(dx_ew=cx * m_lon, dx_ns=cy * m_lat)
        return z, info
    factor = _crs_unit_factor(crs) if crs is not None else None
    if factor is None:
        what = "no CRS" if crs is None else "a CRS without known linear units"
        raise InputError(
            f"{_loc(path)} has {what}, so its cell size in metres is unknown; "
            "pass --dx (dx_m=<metres>)"
        )
    info.update(dx_ew=cx * factor, dx_ns=cy * factor)
    return z, info


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    # GDAL's "See previous exception for details." points at a traceback the user never sees
    first = msg[0].replace(" See previous exception for details.", "").strip() if msg else ""
    return first or type(exc).__name__


# ----------------------------------------------------------------------------------------------
# resampling to square cells
# ----------------------------------------------------------------------------------------------


def _resample_square(z: np.ndarray, dx_ew: float, dx_ns: float) -> tuple[np.ndarray, float, int, int]:
    """Bilinear resample of ``z`` (NaN = nodata) to square cells of ``min(dx_ew, dx_ns)``.

    Returns (z_new, d, new_h, new_w).
    """
    from scipy.ndimage import map_coordinates

    h, w = z.shape
    d = min(dx_ew, dx_ns)
    new_w = max(2, int(round(w * dx_ew / d)))
    new_h = max(2, int(round(h * dx_ns / d)))
    rows = (np.arange(new_h) + 0.5) * (d / dx_ns) - 0.5
    cols = (np.arange(new_w) + 0.5) * (d / dx_ew) - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    valid = np.isfinite(z)
    filled = np.where(valid, z, 0.0)
    num = map_coordinates(filled, [rr, cc], order=1, mode="nearest")
    wsum = map_coordinates(valid.astype(np.float64), [rr, cc], order=1, mode="nearest")
    out = np.full((new_h, new_w), np.nan)
    ok = wsum > 0.5
    out[ok] = num[ok] / wsum[ok]
    return out, d, new_h, new_w


# ----------------------------------------------------------------------------------------------
# public reader
# ----------------------------------------------------------------------------------------------


def read_dem(
    path: str | Path,
    *,
    dx_m: float | None = None,
    z_scale: float = 1.0,
    z_offset: float = 0.0,
    square: Literal["error", "resample"] = "error",
    nan: Literal["error", "nodata"] = "error",
) -> Dem:
    """Read a DEM into a :class:`Dem` (float32 metres, NaN nodata, square cells of ``dx_m``).

    Args:
        path: GeoTIFF / ``.asc`` / ENVI ``.bil`` (or its ``.hdr``) / any GDAL raster, ``.npy``,
            ``.npz`` or 16-bit grayscale ``.png``.
        dx_m: cell size in metres; overrides whatever the file says. Required for ``.npy``, PNGs
            without sidecar and rasters without a usable CRS.
        z_scale, z_offset: ``z = value * z_scale + z_offset`` applied to the decoded heights
            (after GDAL band scale/offset or the PNG sidecar's scale/offset).
        square: what to do when the E-W and N-S spacings differ by more than 0.1 %:
            ``"error"`` raises InputError, ``"resample"`` resamples bilinearly to square cells of
            the smaller spacing.
        nan: NaN cells the file does not declare as nodata (a ``.npy``, or a float raster
            without a NaN nodata tag): ``"error"`` raises InputError, ``"nodata"`` treats them
            as nodata (``--nan-nodata`` on the CLI).

    Raises:
        InputError: missing/unreadable/non-raster file, empty or degenerate (1xN, Nx1) grid,
            all-nodata grid, infinite heights, unknown cell size, non-square cells with
            ``square="error"``, bad parameters.
    """
    if dx_m is not None:
        dx_m = check_cell_size(dx_m)
    z_scale = _check_finite(z_scale, "z_scale", nonzero=True)
    z_offset = _check_finite(z_offset, "z_offset")
    if nan not in ("error", "nodata"):
        raise InputError(f"nan must be 'error' or 'nodata', got {nan!r}")
    if square not in ("error", "resample"):
        raise InputError(f"square must be 'error' or 'resample', got {square!r}")

    p = Path(path)
    if not p.exists():
        raise InputError(f"DEM file not found: {_loc(p)}")
    if p.is_dir():
        raise InputError(f"{_loc(p)} is a directory, not a DEM file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot access {_loc(p)}: {_one_line(exc)}") from None
    if size == 0 and p.suffix.lower() != ".hdr":
        raise InputError(f"{_loc(p)} is an empty file")

    ext = p.suffix.lower()
    if ext in _NUMPY_EXTS:
        z, info = _read_numpy(p, dx_m)
    elif ext in _PNG_EXTS:
        z, info = _read_png(p, dx_m)
    else:
        z, info = _read_gdal(p, dx_m)

    h, w = z.shape
    if h == 0 or w == 0:
        raise InputError(f"{_loc(p)} is an empty grid ({h}x{w})")
    if h < 2 or w < 2:
        raise InputError(f"{_loc(p)} is a {h}x{w} grid; a DEM needs at least 2 cells along each axis")

    if z_scale != 1.0 or z_offset != 0.0:
        z = z * z_scale + z_offset
    if nan == "error" and not info.get("nan_declared", True) and bool(np.isnan(z).any()):
        raise InputError(
            f"{_loc(p)} contains {int(np.isnan(z).sum())} NaN height(s) but declares no nodata "
            "value; pass --nan-nodata (nan='nodata') to treat them as nodata"
        )
    n_inf = int(np.isinf(z).sum())
    if n_inf:
        raise InputError(f"{_loc(p)} contains {n_inf} infinite height value(s)")
    valid = ~np.isnan(z)
    if not valid.any():
        raise InputError(f"{_loc(p)} holds no valid heights (every cell is nodata)")
    z32 = z.astype(np.float32)
    n_ovf = int((np.isinf(z32) & valid).sum())
    if n_ovf:
        raise InputError(f"{_loc(p)}: {n_ovf} height value(s) overflow float32")

    dx_ew, dx_ns = float(info["dx_ew"]), float(info["dx_ns"])
    transform = info["transform"]
    if dx_m is not None:
        dx = dx_m
    elif abs(dx_ew - dx_ns) <= SQUARE_RTOL * max(dx_ew, dx_ns):
        dx = math.sqrt(dx_ew * dx_ns)
    elif square == "error":
        raise InputError(
            f"{_loc(p)} has non-square cells ({dx_ew:.3f} m E-W x {dx_ns:.3f} m N-S); "
            "pass square='resample' (--square resample) to resample to square cells, or --dx"
        )
    else:
        zr, dx, _, _ = _resample_square(z32.astype(np.float64), dx_ew, dx_ns)
        z32 = zr.astype(np.float32)
        if transform is not None:
            from rasterio.transform import Affine

            transform = Affine(
                transform.a * dx / dx_ew, 0.0, transform.c, 0.0, transform.e * dx / dx_ns, transform.f
            )
    return Dem(z=z32, dx_m=float(dx), crs=info["crs"], transform=transform, source=str(p))
