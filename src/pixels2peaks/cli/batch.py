"""`p2p batch INPUTS... -o OUTDIR`: many photos through `p2p run` on Dask (docs/scale-out.md).

Each photo goes to ``OUTDIR/NAME/`` (the files ``p2p run`` writes); ``OUTDIR/batch.json`` and
``batch.csv`` hold one row per photo. ``--workers N`` starts a LocalCluster, ``--scheduler``
uses a running one. Code: ``pixels2peaks.pipeline.batch``. Registered in
``pixels2peaks/cli/main.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import EXIT_INTERRUPTED, seed_option, user_errors
from pixels2peaks.cli._stages import (
    CacheDirOption,
    ElevationRangeOption,
    FovOption,
    GeometryOption,
    NoCacheOption,
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
)
from pixels2peaks.cli.run import run_config
from pixels2peaks.errors import InputError

EXIT_SOME_FAILED = 1


def _cache_dir(cache_dir: Optional[Path], no_cache: bool) -> Optional[str]:
    from pixels2peaks.cache import default_cache_dir

    if no_cache:
        return None
    if cache_dir is not None and cache_dir.exists() and not cache_dir.is_dir():
        raise InputError(f"--cache-dir {cache_dir} exists and is not a folder")
    return str((cache_dir or default_cache_dir()).resolve())


def batch(
    inputs: list[str] = typer.Argument(..., metavar="INPUTS...", help="Photos, folders, globs or CSV files "
                                       "(columns photo, slope, z_min, z_max, pitch, fov, seed)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: OUTDIR/NAME/ per photo, batch.json, batch.csv."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Start a LocalCluster of N single-threaded "
                                          "processes (default 1)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Use a running Dask scheduler, e.g. tcp://host:8786."),
    size: Optional[int] = typer.Option(None, "--size", help="Final heightmap size in cells (default 1024). Not with --dx M."),
    dx: str = typer.Option("auto", "--dx", help="Final cell size in metres, or auto."),
    seed: int = seed_option("Random seed of the completion (a CSV seed column overrides it)."),
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
    cache_dir: Optional[Path] = CacheDirOption,
    no_cache: bool = NoCacheOption,
    quiet: bool = QuietOption,
) -> None:
    """Run `p2p run` on many photos over a Dask cluster; resumable (finished photos are skipped)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pixels2peaks.paths import require_writable
    from pixels2peaks.cluster import describe, open_client
    from pixels2peaks.pipeline.batch import collect, remove_staging, run_batch

    if workers is not None and scheduler is not None:
        raise InputError("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder")
    parent = out if out.is_dir() else (out.parent if str(out.parent) else Path("."))
    if not parent.is_dir():
        raise InputError(f"cannot write {out}: its folder {parent} does not exist")
    require_writable(parent, out)
    popts = perception_options(
        geometry=geometry, segmentation=segmentation, priors=priors, vlm_url=vlm_url, vlm_model=vlm_model,
        vlm_timeout=vlm_timeout, fov=fov, slope=slope, z_min=z_min, z_max=z_max, pitch_step=pitch_step,
        elevation_range=elevation_range, pitch=pitch,
    )
    config = run_config(popts, size=size, dx=dx, seed=seed, steps=steps, device=device,
                        weights=None if weights is None else weights.resolve())
    if weights is not None and not weights.is_file():
        raise InputError(f"prior weights not found: {weights}")
    items = collect(inputs)
    cache = _cache_dir(cache_dir, no_cache)
    err = Console(stderr=True, quiet=quiet)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    interrupted = False
    with open_client(workers, scheduler) as client:
        err.print(describe(client))
        with Progress(TextColumn("[bold]photos"), BarColumn(bar_width=30), MofNCompleteColumn(),
                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err) as progress:
            task = progress.add_task("photos", total=len(items), info="")

            def on_row(row):
                counts[row["status"]] += 1
                note = f" ({row['error']})" if row["error"] else ""
                progress.console.print(f"{row['status']:>7} {row['name']}{note}")
                progress.update(task, advance=1, info=f"{counts['done']} done, {counts['skipped']} skipped, "
                                                      f"{counts['failed']} failed")

            try:
                rows = run_batch(items, config, out, client, cache_dir=cache, on_row=on_row)
            except KeyboardInterrupt:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the clean-up
                progress.stop()
                interrupted = True
    if interrupted:  # the cluster is closed: no writer is left, so no staging folder either
        remove_staging(out, [it.name for it in items])
        typer.echo(f"interrupted: finished photos are in {out}, the rest are 'pending' in "
                   f"{out / 'batch.json'}; run again to go on", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    failed = [r for r in rows if r["status"] == "failed"]
    typer.echo(f"{counts['done']} done, {counts['skipped']} skipped, {len(failed)} failed -> {out} "
               f"(batch.json, batch.csv)")
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def register(app: typer.Typer) -> None:
    app.command("batch")(user_errors(batch))
