"""Output folders of ``p2p run`` (:func:`write_run`) and ``p2p visible`` (:func:`write_visible`).

Both are written by :func:`staged_folder`: everything goes into a hidden temporary sibling folder
first, which is then renamed into place (a new or empty OUTDIR) or whose files replace the
listed ones (``overwrite``); on any error, Ctrl-C or a full disk, nothing is left behind.
File formats: ``docs/formats.md``.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.cache import NullReporter, StageReporter
from pixels2peaks.io.write import check_output_dir, staged_folder, write_mask_png

__all__ = ["RUN_FILES", "check_output_dir", "staged_folder", "write_visible", "write_run"]

#: files of ``p2p run``
RUN_FILES = (
    "heightmap.tif",
    "heightmap.png",
    "heightmap.json",
    "visible_mask.png",
    "camera.json",
    "report.json",
    "preview.png",
    "hillshade.png",
    "depressions.png",
    "view3d.png",
)


def _png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(rgb, np.uint8)).save(path, format="PNG")


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------
# p2p visible
# ----------------------------------------------------------------------------------------------


def _as_synth(res):
    """The perception result as a :class:`~pixels2peaks.camera.SynthResult` (the ``p2p synth``
    file contract): depth = distance from the camera to each point, ``+inf`` for sky, NaN for
    terrain pixels without a point; terrain mask = the segmentation."""
    from pixels2peaks.camera import RenderResult, SynthResult

    pm = res.pointmap
    has = np.isfinite(pm).all(axis=2)
    depth = np.where(res.terrain_mask, np.nan, np.inf).astype(np.float32)
    depth[has] = res.camera.world_to_depth(pm[has].astype(np.float64)).astype(np.float32)
    render = RenderResult(
        camera=res.camera, hit=res.terrain_mask, depth=depth, pointmap=pm,
        normal=np.broadcast_to(np.float32(np.nan), pm.shape), seen=res.mask, surface="bilinear",
    )
    return SynthResult(image=res.image, render=render, camera=res.camera, z_visible=res.z,
                       visible_mask=res.mask, z_max=res.z_max, dx_m=res.dx_m)


def write_visible(outdir: str | Path, res, *, overwrite: bool = False) -> Path:
    """Write ``p2p visible``'s files (:data:`pixels2peaks.perception.pipeline.OUTPUT_FILES`):
    the ``p2p synth`` set via :func:`~pixels2peaks.camera.write_synth` (identical formats) plus
    ``priors.json``, ``perception.json`` and ``preview.png``."""
    from pixels2peaks.camera import write_synth
    from pixels2peaks.evaluation.previews import visible_preview

    if res.pointmap is None or res.z_max is None or res.image is None:
        raise ValueError("this VisibleResult has no pointmap / z_max / image to write")
    outdir = Path(outdir)
    with staged_folder(outdir, overwrite) as tmp:
        write_synth(tmp, _as_synth(res), overwrite=True)
        pr = res.report["priors"]
        _json(tmp / "priors.json", {**pr, "backend": res.report["backends"].get("priors")})
        _json(tmp / "perception.json", res.report)
        _png(tmp / "preview.png", visible_preview(res.image, res.terrain_mask, res.pointmap, res.z,
                                                  res.dx_m, res.camera))
    return outdir


# ----------------------------------------------------------------------------------------------
# p2p run
# ----------------------------------------------------------------------------------------------


def _timed(reporter: StageReporter, stage: str, seconds: dict[str, float]):
    @contextlib.contextmanager
    def block():
        reporter.start(stage)
        t0 = time.perf_counter()
        yield
        seconds[stage] = time.perf_counter() - t0
        reporter.finish(stage, seconds[stage], False)

    return block()


def write_run(outdir: str | Path, result, *, overwrite: bool = False,
              reporter: StageReporter | None = None) -> dict[str, Any]:
    """Write :data:`RUN_FILES` for a :class:`~pixels2peaks.pipeline.run.RunResult`; returns
    the report written to ``report.json`` (with the ``previews`` and ``write`` seconds)."""
    from pixels2peaks.evaluation.previews import depressions_image, hillshade_rgb
    from pixels2peaks.evaluation.previews import overview_image, triptych
    from pixels2peaks.io import write_geotiff, write_png16
    from pixels2peaks.perception.contours import ridgelines
    from pixels2peaks.terrain.hydrology import depression_depth

    rep = reporter or NullReporter()
    seconds: dict[str, float] = {}
    outdir = Path(outdir)
    z, dx, cam, vis = result.z, result.dx_m, result.camera, result.visible
    with staged_folder(outdir, overwrite) as tmp:
        with _timed(rep, "previews", seconds):
            lines = ridgelines(vis.image, vis.terrain_mask)
            _png(tmp / "preview.png", triptych(vis.image, vis.terrain_mask, z, dx, cam, ridgelines=lines))
            _png(tmp / "hillshade.png", np.clip(hillshade_rgb(z, result.known, dx), 0, 1) * 255)
            depressions_image(z, depression_depth(z), dx).save(tmp / "depressions.png", format="PNG")
            _png(tmp / "view3d.png", overview_image(z, dx, result.known, cam))
        with _timed(rep, "write", seconds):
            write_geotiff(tmp / "heightmap.tif", z, dx_m=dx)
            write_png16(tmp / "heightmap.png", z, dx_m=dx)
            write_mask_png(tmp / "visible_mask.png", result.known)
            (tmp / "camera.json").write_text(cam.to_json())
        report = result.report(seconds)
        _json(tmp / "report.json", report)
    return report
