"""`p2p complete VISIBLE --mask MASK [--zmax Z] -o OUTDIR`: guided terrain completion (paper §5)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import MAX_SIZE_CELLS, seed_option, threads_option, user_errors
from pixels2peaks.errors import InputError
from pixels2peaks.io.write import check_output_dir, staged_folder

OUTPUTS = ("heightmap.tif", "hillshade.png", "report.json")


def _read_mask(path: Path, shape: tuple[int, int]):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if path.is_dir():
        raise InputError(f"mask {path} is a folder, not a PNG file")
    if not path.is_file():
        raise InputError(f"mask not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA"):
                im = im.convert("RGBA").split()[0] if im.mode == "RGBA" else im.convert("L")
            a = np.asarray(im.convert("L"))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read mask {path}: {str(exc).splitlines()[0]}") from None
    if a.shape != tuple(shape):
        raise InputError(f"mask {path} is {a.shape[0]}x{a.shape[1]} but the visible heightmap is {shape[0]}x{shape[1]}")
    return a > 127


def _hillshade_png(z, known, dx_m, path: Path) -> None:
    import numpy as np
    from PIL import Image

    from pixels2peaks.evaluation.previews import hillshade_rgb
    from pixels2peaks.io import atomic_path

    img = Image.fromarray((np.clip(hillshade_rgb(z, known, dx_m), 0, 1) * 255).astype(np.uint8))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def complete_cmd(
    visible: Path = typer.Argument(..., metavar="VISIBLE", help="Visible heightmap GeoTIFF (NaN where unseen)."),
    mask: Path = typer.Option(..., "--mask", help="Visibility mask PNG, same size (white = seen)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (new or empty unless --overwrite)."),
    zmax: Optional[Path] = typer.Option(None, "--zmax", help="View bound Z_max GeoTIFF (NaN = unbounded)."),
    dx: Optional[float] = typer.Option(None, "--dx", help="Cell size in metres (overrides the file's)."),
    size: Optional[int] = typer.Option(
        None, "--size", max=MAX_SIZE_CELLS,
        help="Resample so the longer side has N cells before completion (dx scaled to match).",
    ),
    seed: int = seed_option("Random seed (same seed -> same heightmap)."),
    steps: int = typer.Option(20, "--steps", help="DDIM steps of the main guided diffusion (from --t-start to 0)."),
    t_start: float = typer.Option(0.5, "--t-start", help="SDEdit start time in (0, 1]."),
    no_polish: bool = typer.Option(False, "--no-polish", help="Skip polishing (no x2 upsampling)."),
    gradient: str = typer.Option("x0", "--gradient", help="Guidance gradient: x0 (fast) or unet (backprop, paper)."),
    hydrology: str = typer.Option("breach", "--hydrology", help="Hydrological guidance target: breach or fill."),
    no_paste: bool = typer.Option(False, "--no-paste", help="Let the last steps alter the visible cells (paper)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Prior weights (.safetensors); default: shipped."),
    threads: Optional[int] = threads_option("torch CPU threads."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast for the U-Net (faster, less accurate)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty output folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Complete the unseen part of a visible heightmap with guided tiled diffusion (paper §5).

    Writes OUTDIR/heightmap.tif (float32 metres; VISIBLE's grid, or dx/2 after polishing), OUTDIR/hillshade.png (grey = visible, taupe = synthesized) and OUTDIR/report.json (MDD, VVE, OVE, dx, timings, the configuration). Any heightmap size works (tiles are padded). See docs/guided-completion.md.
    """
    import numpy as np
    import torch

    from pixels2peaks.diffusion.completion import CompletionConfig, complete, resample_inputs
    from pixels2peaks.diffusion.guidance import GuidanceConfig, HydrologyGuidance
    from pixels2peaks.diffusion.polishing import PolishConfig
    from pixels2peaks.io import read_dem, write_geotiff

    check_output_dir(out, overwrite)
    if gradient not in ("x0", "unet"):
        raise InputError(f"--gradient must be x0 or unet, got {gradient!r}")
    if hydrology not in ("breach", "fill"):
        raise InputError(f"--hydrology must be breach or fill, got {hydrology!r}")
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    guidance = GuidanceConfig(gradient_mode=gradient, hydrology=HydrologyGuidance(method=hydrology))
    cfg = CompletionConfig(
        seed=seed, steps=steps, t_start=t_start, guidance=guidance,
        paste_known=not no_paste, device=device, bf16=bf16,
        polish=PolishConfig(enabled=not no_polish),
    )
    dem = read_dem(visible, dx_m=dx, nan="nodata")
    m_v = _read_mask(mask, dem.shape)
    zm = None
    if zmax is not None:
        zdem = read_dem(zmax, dx_m=dem.dx_m, nan="nodata")
        if zdem.shape != dem.shape:
            raise InputError(f"--zmax is {zdem.shape[0]}x{zdem.shape[1]} but VISIBLE is {dem.shape[0]}x{dem.shape[1]}")
        zm = zdem.z.astype(np.float64)
    z_v = dem.z.astype(np.float64)
    dx_in, transform, H0, W0 = dem.dx_m, dem.transform, dem.shape[0], dem.shape[1]
    if m_v.any() and not np.isfinite(z_v[m_v]).all():
        n = int((m_v & ~np.isfinite(z_v)).sum())
        raise InputError(f"{n} cell(s) are white in the mask but NaN in {visible.name}: mask and heightmap disagree")
    if size is not None:
        z_v, m_v, zm, dx_c = resample_inputs(z_v, m_v, zm, dx_in, size)
    else:
        dx_c = dx_in
    grid_scale = dx_c / dx_in

    if weights is not None:
        from pixels2peaks.diffusion.model import load_prior

        model = load_prior(weights)
    else:
        from pixels2peaks.diffusion.model import load_default_model

        model = load_default_model()

    t0 = time.perf_counter()
    if quiet:
        res = complete(z_v, m_v, zm, dx_c, cfg, model=model)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(
            TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False,
        ) as bar:
            task = bar.add_task("init", total=None)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            res = complete(z_v, m_v, zm, dx_c, cfg, model=model, progress=progress)
    wall = time.perf_counter() - t0

    # georeference: same origin, cell size scaled by the resampling and the polish upsampling
    tr = None
    if transform is not None:
        from rasterio.transform import Affine

        aff = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
        tr = aff @ Affine.scale(grid_scale / res.upsample)
    notes = []
    if size is not None and (z_v.shape != (H0, W0)):
        notes.append(f"--size {size}: input resampled from {H0}x{W0} at {dx_in:g} m to "
                     f"{z_v.shape[0]}x{z_v.shape[1]} at {dx_c:g} m before completion")
    if res.upsample > 1:
        notes.append(f"polishing upsampled x{res.upsample}: output is {res.z.shape[0]}x{res.z.shape[1]} at "
                     f"{res.dx_m:g} m (input grid {z_v.shape[0]}x{z_v.shape[1]} at {dx_c:g} m)")
    report = {
        "format": "pixels2peaks.complete/1",
        "inputs": {"visible": str(visible), "mask": str(mask), "zmax": str(zmax) if zmax else None,
                   "shape": [H0, W0], "dx_m": dx_in, "visible_fraction": round(float(m_v.mean()), 6)},
        "output": {"shape": list(res.z.shape), "dx_m": res.dx_m, "upsample": res.upsample},
        "dx_m": res.dx_m,
        "mdd_m": res.metrics["mdd_m"],
        "vve_m": res.metrics["vve_m"],
        "ove_m": res.metrics["ove_m"],
        "metrics": res.metrics,
        "metrics_note": "mdd_m on the output grid; vve_m/ove_m on the completion grid (output block means)",
        "timings_s": {**res.timings, "wall_s": round(wall, 3)},
        "profile_s": res.profile,
        "config": res.config.to_dict(),
        "model": {"weights": str(weights) if weights else "shipped",
                  "prior_config": model.cfg.to_dict()},
        "notes": notes,
    }
    with staged_folder(out, overwrite) as tmp:  # the three files appear together, or none
        write_geotiff(tmp / "heightmap.tif", res.z, dx_m=res.dx_m, crs=dem.crs, transform=tr)
        _hillshade_png(res.z, res.known, res.dx_m, tmp / "hillshade.png")
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    typer.echo(
        f"completed {res.z.shape[0]}x{res.z.shape[1]} at {res.dx_m:g} m in {wall:.1f} s: "
        f"MDD {res.metrics['mdd_m']:.3f} m, VVE {res.metrics['vve_m']:.3f} m, OVE {res.metrics['ove_m']:.3f} m -> {out}"
    )
    for n in notes:
        typer.echo(f"note: {n}")


def register(app: typer.Typer) -> None:
    app.command("complete")(user_errors(complete_cmd))
