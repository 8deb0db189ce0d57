"""`p2p visible PHOTO -o DIR`: photo -> visible heightmap, mask, camera and view bound (paper §4).

Writes the ``p2p synth`` ground-truth file set plus ``priors.json``, ``perception.json`` and
``preview.png`` (``docs/formats.md``). Stages are cached (``pixels2peaks.cache``).
Registered in ``pixels2peaks/cli/main.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import MAX_SIZE_CELLS, user_errors
from pixels2peaks.cli._stages import (
    CacheDirOption,
    FovOption,
    GeometryOption,
    ImageArgument,
    NoCacheOption,
    ElevationRangeOption,
    PitchOption,
    PitchStepOption,
    PriorsOption,
    QuietOption,
    SegmentationOption,
    SlopeOption,
    VlmModelOption,
    VlmTimeoutOption,
    VlmUrlOption,
    ZMaxOption,
    ZMinOption,
    perception_options,
    read_image_argument,
    stage_cache,
    stage_progress,
)
from pixels2peaks.errors import InputError


def visible(
    image: Path = ImageArgument,
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (new or empty unless --overwrite)."),
    geometry: str = GeometryOption,
    segmentation: str = SegmentationOption,
    priors: str = PriorsOption,
    vlm_url: Optional[str] = VlmUrlOption,
    vlm_model: str = VlmModelOption,
    vlm_timeout: float = VlmTimeoutOption,
    fov: Optional[float] = FovOption,
    slope: Optional[float] = SlopeOption,
    z_min: Optional[float] = ZMinOption,
    z_max: Optional[float] = ZMaxOption,
    elevation_range: Optional[tuple[float, float]] = ElevationRangeOption,
    pitch: Optional[float] = PitchOption,
    dx: Optional[float] = typer.Option(None, "--dx", help="Cell size (m); default: the scene spans --cells cells."),
    cells: int = typer.Option(1024, "--cells", help="Cells along the longer side when --dx is not given."),
    pitch_step: float = PitchStepOption,
    cache_dir: Optional[Path] = CacheDirOption,
    no_cache: bool = NoCacheOption,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in a non-empty OUT."),
    quiet: bool = QuietOption,
) -> None:
    """Estimate the visible terrain Z_V, its mask M_V, the camera and the view bound Z_max from one photo."""
    from pixels2peaks.perception.pipeline import OUTPUT_FILES, estimate_visible
    from pixels2peaks.pipeline.outputs import write_visible
    from pixels2peaks.io.write import check_output_dir

    check_output_dir(out, overwrite)
    if not 16 <= cells <= MAX_SIZE_CELLS:
        raise InputError(f"--cells must be from 16 to {MAX_SIZE_CELLS}, got {cells}")
    opts = perception_options(
        geometry=geometry, segmentation=segmentation, priors=priors, vlm_url=vlm_url, vlm_model=vlm_model,
        vlm_timeout=vlm_timeout, fov=fov, slope=slope, z_min=z_min, z_max=z_max, pitch_step=pitch_step,
        elevation_range=elevation_range, pitch=pitch,
        dx=dx, cells=cells,
    )
    cache = stage_cache(cache_dir, no_cache)
    source = read_image_argument(image)
    with stage_progress(quiet) as reporter:
        res = estimate_visible(source, opts, cache=cache, reporter=reporter)
    write_visible(out, res, overwrite=overwrite)
    r = res.report
    for kind, b in r["backends"].items():
        typer.echo(f"{kind}: {b['name']} ({b['reason']})", err=True)
    zr = r["priors"]["elevation_range_m"]
    typer.echo(
        f"pitch {r['pitch_deg']:+.1f} deg, fov {r['fov_x_deg']:.1f} deg, slope prior "
        f"{r['priors']['mean_slope_deg']:.1f} deg, elevations {zr[0]:.0f}-{zr[1]:.0f} m, "
        f"{r['shape'][0]} x {r['shape'][1]} cells of {r['dx_m']:.2f} m, {r['visible_cells']} seen",
        err=True,
    )
    typer.echo(f"wrote {', '.join(OUTPUT_FILES)} to {out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("visible")(user_errors(visible))
