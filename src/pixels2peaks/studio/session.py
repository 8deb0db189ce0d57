"""The studio's two steps as plain functions (no Gradio here).

1. :func:`visible_step`: camera and visible terrain (``p2p visible``, paper §4): the photo's
   terrain mask, skyline and ridgelines, the visible heightmap seen from above, and the
   estimated pitch, FOV, mean slope and elevation range with their sources.
2. :func:`complete_step`: the complete heightmap (``p2p run``, §5), its previews, the 3D
   viewer's GLB and every export, one by one and as one zip.

Both run on :class:`StudioConfig`'s :class:`~pixels2peaks.pipeline.run.RunConfig` with the
user's :class:`Overrides`, through one stage cache: changing the slope re-runs the projection
and what follows it, never the segmentation or the geometry.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.cache import StageCache, StageReporter
from pixels2peaks.errors import InputError
from pixels2peaks.pipeline.run import RUN_STAGES, Overrides, RunConfig
from pixels2peaks.studio.jobs import Job, JobStore

__all__ = [
    "StudioConfig", "Overrides", "FIELDS", "Estimates", "VisibleView", "RunView",
    "read_overrides", "load_photo", "visible_step", "complete_step", "metrics_rows", "EXPORTS",
]

#: the editable fields: name -> label (units in the label)
FIELDS = {
    "pitch_deg": "Pitch (deg, + up)",
    "fov_x_deg": "Horizontal FOV (deg)",
    "mean_slope_deg": "Mean slope (deg)",
    "z_min_m": "Lowest elevation (m)",
    "z_max_m": "Highest elevation (m)",
}
#: exports offered for download besides ``p2p run``'s files (``p2p export`` targets)
EXPORTS = ("unreal", "unity", "exr", "obj", "glb", "blender")
#: a field differs from what was shown when it moved by more than this (display rounding)
_EDIT_TOL = 1e-3


@dataclass(frozen=True)
class StudioConfig:
    """The server's settings (``p2p ui`` options).

    run: the run every job starts from (size, steps, backends, prior weights, seed).
    max_upload_mb: the largest upload (MB) the page accepts.
    max_jobs: heavy steps running at once across all users (1: one after the other).
    mesh_cells: the 3D viewer's mesh is at most this many cells across.
    """

    run: RunConfig = RunConfig()
    max_upload_mb: int = 50
    max_jobs: int = 1
    mesh_cells: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.max_upload_mb <= 10_000:
            raise InputError(f"--max-upload-mb must be from 1 to 10000, got {self.max_upload_mb}")
        if not 1 <= self.max_jobs <= 64:
            raise InputError(f"--max-jobs must be from 1 to 64, got {self.max_jobs}")
        if self.mesh_cells < 8:
            raise InputError(f"mesh_cells must be >= 8, got {self.mesh_cells}")


@dataclass(frozen=True)
class Estimates:
    """What the visible step found, per field of :data:`FIELDS`: value and source."""

    values: Mapping[str, float]
    sources: Mapping[str, str]


def read_overrides(values: Mapping[str, float | None], shown: Estimates | None) -> Overrides:
    """The user's overrides from the fields' ``values``: a field that differs from what the
    last visible step showed is the user's, a field that showed the user's value stays the
    user's, and an emptied field (``None``) goes back to the estimate. The elevation range is
    the user's when either of its ends is."""
    def edited(name: str) -> float | None:
        v = values.get(name)
        if v is None:
            return None
        if shown is None or name not in shown.values or abs(float(v) - shown.values[name]) > _EDIT_TOL:
            return float(v)
        return float(v) if shown.sources.get(name) == "you" else None

    ends = (edited("z_min_m"), edited("z_max_m"))
    rng = None
    if any(e is not None for e in ends):
        lo, hi = values.get("z_min_m"), values.get("z_max_m")
        if lo is None or hi is None:
            raise InputError("give both the lowest and the highest elevation, or clear both")
        rng = (float(lo), float(hi))
    return Overrides(pitch_deg=edited("pitch_deg"), fov_x_deg=edited("fov_x_deg"),
                     mean_slope_deg=edited("mean_slope_deg"), elevation_range_m=rng)


# ----------------------------------------------------------------------------------------------
# the two steps
# ----------------------------------------------------------------------------------------------


def load_photo(upload: str | Path, job: Job) -> Path:
    """Check an uploaded file (:func:`~pixels2peaks.perception.image.load_image`: an image,
    not a decompression bomb, 64 px to 50 MP) and copy it into ``job``'s folder."""
    from pixels2peaks.perception.image import load_image

    src = Path(upload)
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in src.name)[-80:] or "photo"
    try:
        load_image(src)
    except InputError as exc:
        raise InputError(str(exc).replace(f"'{src}'", f"'{src.name}'").replace(str(src), src.name)) from None
    dst = job.folder / "input" / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


@dataclass(frozen=True)
class VisibleView:
    """The visible step's page content: images (PNG paths), the estimates, what ran."""

    overlay: Path
    top: Path
    estimates: Estimates
    report: dict[str, Any]
    rerun: tuple[str, ...]
    cached: tuple[str, ...]
    seconds: float

    @property
    def status(self) -> str:
        ran = ", ".join(self.rerun) or "nothing"
        kept = f" (from the cache: {', '.join(self.cached)})" if self.cached else ""
        return f"Camera and visible terrain in {self.seconds:.1f} s: ran {ran}{kept}."


@dataclass(frozen=True)
class RunView:
    """The complete step's page content."""

    folder: Path
    report: dict[str, Any]
    preview: Path
    hillshade: Path
    depressions: Path
    viewer: Path
    downloads: tuple[Path, ...]
    seconds: float = 0.0

    @property
    def status(self) -> str:
        r = self.report
        n = r["size_cells"]
        return (f"Complete heightmap {n[0]} x {n[1]} cells of {r['dx_m']:.2f} m in {self.seconds:.1f} s "
                f"(MDD {r['mdd_m']:.2f} m, VVE {r['vve_m']:.2f} m, OVE {r['ove_m']:.2f} m).")


def _estimates(report: Mapping[str, Any], overrides: Overrides) -> Estimates:
    pri = report["priors"]
    lo, hi = pri["elevation_range_m"]
    src = pri["sources"]
    values = {"pitch_deg": report["pitch_deg"], "fov_x_deg": report["fov_x_deg"],
              "mean_slope_deg": pri["mean_slope_deg"], "z_min_m": lo, "z_max_m": hi}
    sources = {
        "pitch_deg": "you" if overrides.pitch_deg is not None else "pitch search (Eq. 1)",
        "fov_x_deg": "you" if overrides.fov_x_deg is not None else report["fov_source"],
        "mean_slope_deg": "you" if overrides.mean_slope_deg is not None else src["mean_slope_deg"],
    }
    zsrc = "you" if overrides.elevation_range_m is not None else src["elevation_range_m"]
    sources |= {"z_min_m": zsrc, "z_max_m": zsrc}
    return Estimates({k: float(v) for k, v in values.items()}, sources)


def _png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgb, np.uint8)).save(path, format="PNG")
    return path


class _Progress:
    """A :class:`~pixels2peaks.cache.StageReporter` that reports the fraction of ``stages``
    done (``report(fraction, text)``) and stops at a Cancel (:meth:`JobStore.check`)."""

    def __init__(self, stages: tuple[str, ...], report: Callable[[float, str], None],
                 check: Callable[[], None]) -> None:
        self.stages, self.report, self.check = stages, report, check

    def _at(self, stage: str, within: float, text: str) -> None:
        self.check()
        i = self.stages.index(stage) if stage in self.stages else 0
        self.report(min(1.0, (i + within) / len(self.stages)), text)

    def start(self, stage: str) -> None:
        self._at(stage, 0.0, stage)

    def update(self, stage: str, done: int, total: int) -> None:
        self._at(stage, done / max(total, 1), f"{stage} {done}/{total}")

    def finish(self, stage: str, seconds: float, cached: bool) -> None:
        self._at(stage, 1.0, f"{stage} {'cached' if cached else f'{seconds:.1f} s'}")


def _reporter(store: JobStore, job: Job, stages: tuple[str, ...],
              progress: Callable[[float, str], None] | None) -> StageReporter:
    store.begin(job)
    return _Progress(stages, progress or (lambda f, t: None), lambda: store.check(job))


def visible_step(photo: Path, job: Job, config: StudioConfig, overrides: Overrides, *, cache: StageCache,
                 store: JobStore, progress: Callable[[float, str], None] | None = None) -> VisibleView:
    """Step 1 on ``photo`` (a file of ``job``): see the module doc. Images go to
    ``job.folder/visible/``."""
    from pixels2peaks.evaluation.previews import perception_overlay, top_view
    from pixels2peaks.perception.contours import ridgelines
    from pixels2peaks.perception.pipeline import estimate_visible

    t0 = time.perf_counter()
    run = overrides.apply(config.run)
    stages = RUN_STAGES[:RUN_STAGES.index("zmax") + 1]
    res = estimate_visible(photo, run.visible_options(), cache=cache,
                           reporter=_reporter(store, job, stages, progress))
    out = job.folder / "visible"
    lines = ridgelines(res.image, res.terrain_mask)
    overlay = _png(out / "overlay.png", perception_overlay(res.image, res.terrain_mask, res.pointmap, lines))
    top = _png(out / "heightmap.png", top_view(res.z, res.dx_m, res.camera))
    rerun = tuple(k for k, v in res.stages.items() if not v.cached)
    cached = tuple(k for k, v in res.stages.items() if v.cached)
    return VisibleView(overlay, top, _estimates(res.report, overrides), res.report, rerun, cached,
                       time.perf_counter() - t0)


def complete_step(photo: Path, job: Job, config: StudioConfig, overrides: Overrides, *, cache: StageCache,
                  store: JobStore, progress: Callable[[float, str], None] | None = None) -> RunView:
    """Step 2 on ``photo``: ``p2p run``'s files in ``job.folder/result/`` (replaced on every
    run), then :data:`EXPORTS` in ``result/exports/``, the 3D viewer's GLB (``viewer/``) and
    one zip of everything (``downloads/PHOTO_pixels2peaks.zip``)."""
    from pixels2peaks.pipeline.outputs import write_run
    from pixels2peaks.pipeline.run import run_photo
    from pixels2peaks.studio.views import viewer_glb

    t0 = time.perf_counter()
    run = overrides.apply(config.run)
    stages = RUN_STAGES + ("exports",)
    rep = _reporter(store, job, stages, progress)
    result = run_photo(photo, run, cache=cache, reporter=rep)
    folder = job.folder / "result"
    report = write_run(folder, result, overwrite=True, reporter=rep)
    rep.start("exports")
    t_ex = time.perf_counter()
    files = _exports(folder, result, photo, lambda i, n: rep.update("exports", i, n))
    viewer = viewer_glb(result.z, result.known, result.dx_m, result.camera, job.folder / "viewer" / "terrain.glb",
                        config.mesh_cells)
    archive = _zip(folder, files, job.folder / "downloads" / f"{Path(photo).stem}_pixels2peaks.zip")
    rep.finish("exports", time.perf_counter() - t_ex, False)
    return RunView(folder, report, folder / "preview.png", folder / "hillshade.png", folder / "depressions.png",
                   viewer, (archive, *files), time.perf_counter() - t0)


def _exports(folder: Path, result, photo: Path, tick: Callable[[int, int], None]) -> tuple[Path, ...]:
    """``p2p run``'s files, then :data:`EXPORTS` of the result (``exports/``)."""
    from pixels2peaks.io import Dem
    from pixels2peaks.io.export import ExportOptions, default_output, export_heightmap
    from pixels2peaks.pipeline.outputs import RUN_FILES

    files = [folder / n for n in RUN_FILES]
    dem = Dem(result.z, result.dx_m)  # heightmap.tif's heights (float32), not read back
    ex = folder / "exports"
    if ex.exists():
        shutil.rmtree(ex)
    ex.mkdir()
    for i, target in enumerate(EXPORTS):
        tick(i, len(EXPORTS))
        options = ExportOptions(texture="hillshade") if target in ("obj", "glb") else ExportOptions()
        res = export_heightmap(dem, target, default_output(ex / "heightmap.tif", target), options=options,
                               camera=result.camera if target == "blender" else None,
                               photo=photo if target == "blender" else None)
        files.extend(res.paths)
    return tuple(files)


def _zip(folder: Path, files: tuple[Path, ...], archive: Path) -> Path:
    """Every file in one zip (names relative to ``folder``), written then renamed."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for f in files:
            zf.write(f, f.relative_to(folder).as_posix())
    part.replace(archive)
    return archive


def metrics_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """``report.json``'s headline numbers as (quantity, value) rows for the page."""
    ext = report["extent_m"]
    rows = [
        ["MDD (m)", f"{report['mdd_m']:.3f}"],
        ["VVE (m)", f"{report['vve_m']:.3f}"],
        ["OVE (m)", f"{report['ove_m']:.3f}"],
        ["dx (m)", f"{report['dx_m']:.2f}"],
        ["extent (km)", f"{ext[0] / 1000:.2f} x {ext[1] / 1000:.2f}"],
        ["size (cells)", " x ".join(str(n) for n in report["size_cells"])],
        ["visible fraction", f"{report['visible_fraction']:.3f}"],
    ]
    rows += [[f"{k} (s)", f"{v:.1f}" + (" cached" if report["stages"].get(k, {}).get("cached") else "")]
             for k, v in report["seconds"].items()]
    return rows

