"""`p2p run IMAGE -o OUTDIR`: photo -> complete metric heightmap (the main job, paper §3-5).

Perception -> projection -> view bound -> guided completion -> polishing, with a live per-stage
progress display, stage caching (a re-run with a changed prior or seed redoes only what changed),
outputs staged in a temporary sibling folder and renamed at the end, and a closing summary.
Registered in ``pixels2peaks/cli/main.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import interrupted, seed_option, threads_option, user_errors
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


def _parse_dx(dx: str) -> float | None:
    if dx.strip().lower() == "auto":
        return None
    try:
        v = float(dx)
    except ValueError:
        raise InputError(f"--dx must be 'auto' or a cell size in metres, got {dx!r}") from None
    if not (v > 0 and v < float("inf")):
        raise InputError(f"--dx must be a positive cell size in metres, got {dx!r}")
    return v


def run_config(perception, *, size: Optional[int], dx: str, seed: int, steps: int, device: str,
               weights: Optional[Path]):
    """``p2p run``'s options -> :class:`~pixels2peaks.pipeline.run.RunConfig` (shared with
    ``p2p batch``)."""
    from pixels2peaks.diffusion.completion import CompletionConfig
    from pixels2peaks.pipeline.run import RunConfig

    dx_m = _parse_dx(dx)
    if size is not None and dx_m is not None:
        raise InputError("give --size or --dx M, not both (--dx fixes the cell size, the size follows)")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {device!r}")
    return RunConfig(
        size_cells=1024 if size is None else size,
        dx_m=dx_m,
        perception=perception,
        completion=CompletionConfig(seed=seed, steps=steps, device=device),
        weights=None if weights is None else str(weights),
    )


def _set_threads(threads: Optional[int]) -> None:
    if threads is None:
        return
    if threads < 1:
        raise InputError(f"--threads must be >= 1, got {threads}")
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _summary(report: dict, out: Path) -> None:
    """The closing summary table (stdout)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"p2p run -> {out}", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    r = report
    t.add_row("image", f"{r['input']['image']} ({r['input']['size_px'][0]} x {r['input']['size_px'][1]} px)")
    for kind, b in r["backends"].items():
        t.add_row(f"{kind}", f"{b['name']} ({b['reason']})")
    p = r["priors"]
    src = p["sources"]
    t.add_row("slope prior", f"{p['mean_slope_deg']:.1f} deg ({src.get('mean_slope_deg', '?')})")
    zr = p["elevation_range_m"]
    t.add_row("elevations", f"{zr[0]:.0f}-{zr[1]:.0f} m ({src.get('elevation_range_m', '?')})")
    t.add_row("camera", f"pitch {r['pitch_deg']:+.1f} deg, fov {r['fov_x_deg']:.1f} deg ({r['fov_source']})")
    n = r["size_cells"]
    t.add_row("heightmap", f"{n[0]} x {n[1]} cells, dx {r['dx_m']:.2f} m, "
              f"{r['extent_m'][0] / 1000:.2f} x {r['extent_m'][1] / 1000:.2f} km, "
              f"{100 * r['visible_fraction']:.1f} % visible")
    t.add_row("prior", f"{r['model']['weights']} (sha256 {r['model']['sha256'][:12]})")
    t.add_row("metrics", f"MDD {r['mdd_m']:.3f} m, VVE {r['vve_m']:.3f} m, OVE {r['ove_m']:.3f} m")
    stages = r["stages"]
    parts = [f"{k} {v:.1f} s" + (" (cached)" if stages.get(k, {}).get("cached") else "")
             for k, v in r["seconds"].items() if k != "total"]
    t.add_row("seconds", ", ".join(parts) + f"; total {r['seconds']['total']:.1f} s")
    for w in r["warnings"]:
        t.add_row("[yellow]warning", f"[yellow]{w}")
    Console().print(t)


def run_cmd(
    image: Path = ImageArgument,
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (new or empty unless --overwrite)."),
    size: Optional[int] = typer.Option(
        None, "--size", help="Final heightmap size in cells (square; default 1024). Not with --dx M."
    ),
    dx: str = typer.Option("auto", "--dx", help="Final cell size in metres, or auto (the scene spans --size cells)."),
    seed: int = seed_option("Random seed of the completion (same seed -> same heightmap)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
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
    pitch_step: float = PitchStepOption,
    steps: int = typer.Option(20, "--steps", help="DDIM steps of the main guided diffusion."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Prior weights (.safetensors + .json); default: shipped."),
    threads: Optional[int] = threads_option("CPU threads (torch and numba)."),
    cache_dir: Optional[Path] = CacheDirOption,
    no_cache: bool = NoCacheOption,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the listed files in a non-empty OUTDIR."),
    quiet: bool = QuietOption,
) -> None:
    """Photo (or painting, or generated image) -> complete metric heightmap and previews.

    Writes OUTDIR/heightmap.tif (float32 m), heightmap.png (16-bit) + heightmap.json, visible_mask.png,
    camera.json, report.json, preview.png, hillshade.png, depressions.png, view3d.png (docs/formats.md).
    """
    from pixels2peaks.io.write import check_output_dir
    from pixels2peaks.pipeline.outputs import write_run
    from pixels2peaks.pipeline.run import run_photo

    check_output_dir(out, overwrite)
    _set_threads(threads)
    popts = perception_options(
        geometry=geometry, segmentation=segmentation, priors=priors, vlm_url=vlm_url, vlm_model=vlm_model,
        vlm_timeout=vlm_timeout, fov=fov, slope=slope, z_min=z_min, z_max=z_max, pitch_step=pitch_step,
        elevation_range=elevation_range, pitch=pitch,
    )
    config = run_config(popts, size=size, dx=dx, seed=seed, steps=steps, device=device, weights=weights)
    cache = stage_cache(cache_dir, no_cache)
    try:
        source = read_image_argument(image)
        with stage_progress(quiet) as reporter:
            result = run_photo(source, config, cache=cache, reporter=reporter)
            report = write_run(out, result, overwrite=overwrite, reporter=reporter)
    except KeyboardInterrupt:
        raise interrupted(f"interrupted: nothing written to {out}; finished stages stay cached") from None
    for w in report["warnings"] if quiet else ():
        typer.echo(f"warning: {w}", err=True)
    if quiet:
        typer.echo(f"MDD {report['mdd_m']:.3f} m, VVE {report['vve_m']:.3f} m, OVE {report['ove_m']:.3f} m, "
                   f"{report['size_cells'][0]} x {report['size_cells'][1]} cells of {report['dx_m']:.2f} m -> {out}")
    else:
        _summary(report, out)


def register(app: typer.Typer) -> None:
    app.command("run")(user_errors(run_cmd))
