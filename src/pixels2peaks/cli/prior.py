"""`p2p dataset build`, `p2p train`, `p2p sample`: the terrain diffusion prior."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer

from pixels2peaks.cli._common import MAX_DX_M, MAX_SIZE_CELLS, seed_option, threads_option, user_errors
from pixels2peaks.errors import InputError

dataset_app = typer.Typer(help="Build the curated terrain tile dataset for the prior.", no_args_is_help=True)


@dataset_app.command("build")
@user_errors
def dataset_build(
    sources: List[str] = typer.Argument(..., help="DEM folders/files, or the named sources 'globe', 'shared' and 'lem' (simulated)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output directory (must not hold a dataset yet)."),
    tile: int = typer.Option(256, help="Tile size in cells."),
    stride: int = typer.Option(128, help="Stride between tile windows in cells."),
    dx: Optional[List[float]] = typer.Option(None, "--dx", help="Sampling densities in metres (repeatable)."),
    texture_min: float = typer.Option(5.0, help="Flatness threshold: mean per-patch std of the 8-bit thumbnail."),
    relief_min: float = typer.Option(200.0, help="Min elevation range (m) of a 10 km tile; scales with sqrt(extent)."),
    lem_train: int = typer.Option(48, "--lem-train", min=0, max=100_000, help="Simulated training tiles per dx (source 'lem')."),
    lem_val: int = typer.Option(8, "--lem-val", min=0, max=100_000, help="Simulated validation tiles per dx (source 'lem')."),
    seed: int = seed_option("Seed of the simulated tiles (source 'lem')."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Curate on a LocalCluster of N processes "
                                          "(same output as serial)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Curate on a running Dask scheduler, "
                                            "e.g. tcp://host:8786."),
) -> None:
    """Cut, curate and shard DEM tiles at several sampling densities (writes DIR/manifest.json)."""
    from pixels2peaks.training.dataset import CurationConfig, build_dataset

    if workers is not None and scheduler is not None:
        raise InputError("give --workers N (a local cluster) or --scheduler ADDRESS, not both")

    kw = dict(tile_cells=tile, stride_cells=stride, texture_min=texture_min, relief_min_m=relief_min)
    if dx:
        kw["dx_levels_m"] = tuple(dx)
    lem = None
    if "lem" in sources:
        from pixels2peaks.terrain.lem import fastscapelib_available
        from pixels2peaks.training.lem_data import LEMDataConfig

        if not fastscapelib_available():
            raise InputError("source 'lem' needs fastscapelib: .venv/bin/pip install -e '.[lem]'")
        lem = LEMDataConfig(train_per_dx=lem_train, val_per_dx=lem_val, seed=seed)
    if workers is None and scheduler is None:
        m = build_dataset(sources, out, CurationConfig(**kw), progress=True, lem=lem)
    else:
        from pixels2peaks.cluster import describe, open_client

        with open_client(workers, scheduler) as client:
            typer.echo(describe(client), err=True)
            m = build_dataset(sources, out, CurationConfig(**kw), progress=True, lem=lem, client=client)
    for src, per in m["counts"].items():
        for d, c in sorted(per.items(), key=lambda kv: float(kv[0])):
            typer.echo(f"{src:>12s} dx {float(d):7g} m: {c.get('train', 0):5d} train {c.get('val', 0):4d} val")
    n_skip = sum(m["skipped_inputs"].values())
    if n_skip:
        for w in m["warnings"][:20]:
            typer.echo(f"warning: {w}", err=True)
        typer.echo(f"warning: {n_skip} input(s) skipped: {m['skipped_inputs']}", err=True)
    s = m["height_stats"]["suggested_slope_scale"]
    typer.echo(f"{m['n_train']} train + {m['n_val']} val tiles -> {out}; "
               f"suggested slope scale s = {'n/a (no training tiles)' if s is None else format(s, '.3g')}")


@user_errors
def train_cmd(
    config: Path = typer.Argument(..., help="TOML training config (e.g. configs/prior.toml)."),
    threads: Optional[int] = threads_option("Override the config's torch thread count."),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Stop after this many steps in this invocation."),
    run_dir: Optional[str] = typer.Option(None, help="Override the run directory."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore an existing checkpoint in the run directory."),
    init_from: Optional[Path] = typer.Option(
        None, help="Warm-start from exported weights (e.g. src/pixels2peaks/weights/prior.safetensors)."
    ),
) -> None:
    """Train the terrain prior (resumes from RUN_DIR/checkpoint.pt if present)."""
    from pixels2peaks.training.config import load_train_config
    from pixels2peaks.training.train import train

    cfg = load_train_config(config, threads=threads, max_steps=max_steps, run_dir=run_dir)
    res = train(cfg, fresh=fresh, init_from=init_from, log=lambda s: typer.echo(s))
    typer.echo(f"done: {res}")


@user_errors
def sample_cmd(
    dx: float = typer.Option(..., "--dx", help="Cell size in metres."),
    size: int = typer.Option(256, "--size", help="Heightmap size in cells; beyond one model tile it is tiled."),
    n: int = typer.Option(1, "-n", help="Number of samples."),
    seed: int = seed_option("Seed of the samples."),
    out: Path = typer.Option(..., "-o", "--out", help="Output directory for GeoTIFFs."),
    steps: int = typer.Option(100, "--steps", help="DDIM denoising steps."),
    base: float = typer.Option(0.0, "--base-m", help="Height of the lowest cell in metres."),
    weights: Optional[Path] = typer.Option(None, help="Prior weights (.safetensors); default: the shipped model."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast (faster, slightly less accurate)."),
    erosion: float = typer.Option(0.3, "--erosion", help="k of the fluvial polish's stream-power step (0 = none)."),
    polish: bool = typer.Option(True, "--polish/--no-polish", help="Fluvial polish (--no-polish: raw prior samples)."),
    threads: Optional[int] = threads_option("torch threads."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace sample files that already exist in DIR."),
) -> None:
    """Unconditional samples from the prior, as float32 GeoTIFFs in metres with the cell size set.

    A --size larger than the model tile (256) or not a multiple of 16 is sampled with 2-D
    SpotDiffusion tiling (paper §5.4) and one height normalization for the whole map. Each sample
    is then polished (Algorithm 4 with a stream-power incision step, docs/model-card.md).
    """
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pixels2peaks.diffusion.model import load_default_model, load_prior
    from pixels2peaks.evaluation.unconditional import is_single_tile, sample_heightmaps, unconditional_polish
    from pixels2peaks.io import write_geotiff
    from pixels2peaks.io.write import staged_folder

    if not (math.isfinite(dx) and 0 < dx <= MAX_DX_M):
        raise InputError(f"--dx must be in (0, {MAX_DX_M:g}] metres, got {dx}")
    if n < 1 or steps < 1:
        raise InputError("-n and --steps must be >= 1")
    if not 16 <= size <= MAX_SIZE_CELLS:
        raise InputError(f"--size must be in [16, {MAX_SIZE_CELLS}] cells, got {size}")
    if not math.isfinite(base):
        raise InputError(f"--base-m must be a finite height in metres, got {base}")
    pol = unconditional_polish(erosion) if polish else None
    names = [f"sample_dx{dx:g}_seed{seed}_{i:03d}.tif" for i in range(n)]
    clash = [out / name for name in names if (out / name).exists()]
    if clash and not overwrite:
        raise InputError(f"{clash[0]} exists; pass --overwrite to replace it")
    if threads:
        torch.set_num_threads(threads)
    model = load_prior(weights) if weights else load_default_model()
    model = model.to(memory_format=torch.channels_last)
    how = "one tile" if is_single_tile(model, size) else f"tiled ({model.cfg.sample_size}^2 tiles)"
    # staged: an unwritable DIR fails before sampling, and nothing is written if sampling fails
    with staged_folder(out, overwrite=True) as tmp:
        with Progress(TextColumn(f"sampling {n} x {size}^2 at {dx:g} m, {how}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("steps"), TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("sample", total=None)
            z = sample_heightmaps(model, n, size, dx, steps=steps, seed=seed, bf16=bf16, polish=pol,
                                  on_step=lambda k, tot: bar.update(task, completed=k, total=tot))
        for i, name in enumerate(names):
            write_geotiff(tmp / name, (z[i] - z[i].min() + base).astype("float32"), dx_m=dx)
    for name in names:
        typer.echo(str(out / name))


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
    app.command("train")(train_cmd)
    app.command("sample")(sample_cmd)


def _standalone() -> None:  # pragma: no cover - `python -m pixels2peaks.cli.prior ...`
    import sys

    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(app)
    try:
        app(standalone_mode=False)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":  # pragma: no cover
    _standalone()
