"""`p2p evaluate realism`: realism of the prior's unconditional samples (issue #4, item 5)."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from pixels2peaks.cli._common import check_output_file, seed_option, user_errors
from pixels2peaks.errors import InputError

if TYPE_CHECKING:
    import numpy as np

evaluate_app = typer.Typer(help="Evaluate the terrain prior.", no_args_is_help=True)

UNITS = {"slope_deg": "deg", "curvature_per_m": "1/m", "relief_m": "m", "mdd_m": "m"}


def weights_info(weights: Optional[Path]) -> dict[str, Any]:
    """Which prior is evaluated: path and training step (from the weights' JSON)."""
    from pixels2peaks.diffusion.model import DEFAULT_CONFIG

    cp = Path(weights).with_suffix(".json") if weights else DEFAULT_CONFIG
    info: dict[str, Any] = {"weights": str(weights) if weights else "shipped", "training_step": None}
    try:
        tr = json.loads(cp.read_text()).get("training", {})
        info["training_step"] = tr.get("step")
        info["exported_at"] = tr.get("exported_at")
    except (OSError, ValueError):
        pass
    return info


def read_sample_folder(folder: Path) -> dict[float, np.ndarray]:
    """GeoTIFF samples of a folder grouped by cell size ``{dx_m: (n, H, W)}`` (same shape per dx)."""
    import numpy as np

    from pixels2peaks.io import read_dem

    if not folder.is_dir():
        raise InputError(f"samples folder not found: {folder}")
    by_dx: dict[float, list[np.ndarray]] = {}
    for p in sorted(folder.glob("*.tif")):
        dem = read_dem(p)
        if not np.isfinite(dem.z).all():
            raise InputError(f"{p}: samples must not contain nodata")
        by_dx.setdefault(round(float(dem.dx_m), 6), []).append(dem.z.astype(np.float64))
    if not by_dx:
        raise InputError(f"no GeoTIFF samples (*.tif) in {folder}")
    out = {}
    for d, zs in by_dx.items():
        if len({z.shape for z in zs}) > 1:
            raise InputError(f"samples at dx {d:g} m in {folder} differ in shape")
        out[d] = np.stack(zs)
    return out


def _fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "nan"
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def print_level(console: Any, level: dict[str, Any]) -> None:
    """Rich tables of one dx level: distances to the held-out tiles, tau/theta, verdict."""
    from rich.table import Table

    from pixels2peaks.evaluation.realism import STATISTICS

    d, v, n = level["distances"], level["verdict"], level["n_tiles"]
    t = Table(title=f"dx {level['dx_m']:g} m: distance to held-out real tiles (n: model {n['model']}, "
                    f"noise {n['noise']}, floor {n['floor']}, held-out {n['reference']})")
    for c in ("statistic", "unit", "model", "noise", "floor", "model<noise?", "within 2x floor?"):
        t.add_column(c, justify="left" if c in ("statistic", "unit") else "right")
    for s in STATISTICS:
        t.add_row(s, UNITS.get(s, "-"), _fmt(d["model"][s]), _fmt(d["noise"][s]), _fmt(d["floor"][s]),
                  "yes" if v["closer_than_noise"][s] else "no", "yes" if v["within_floor"][s] else "no")
    console.print(t)
    sm = level["summary"]
    t2 = Table(title=f"dx {level['dx_m']:g} m: drainage signature and medians")
    for c in ("set", "tau", "theta", "slope deg", "relief m", "HI", "MDD m", "PSD slope"):
        t2.add_column(c, justify="left" if c == "set" else "right")
    for name in ("reference", "model", "noise", "floor"):
        if name in sm:
            s = sm[name]
            t2.add_row(name, _fmt(s["tau"]), _fmt(s["theta"]), _fmt(s["slope_deg"]), _fmt(s["relief_m"]),
                       _fmt(s["hypsometric_integral"]), _fmt(s["mdd_m"]), _fmt(s["psd_slope"]))
    console.print(t2)
    c2 = level.get("two_sample_accuracy", {})
    t3 = Table(title=f"dx {level['dx_m']:g} m: landforms and the two-sample test")
    for c in ("measure", "model", "noise", "floor"):
        t3.add_column(c, justify="left" if c == "measure" else "right")
    for s_ in ("local_relief_m", "geomorphons"):
        t3.add_row(f"{s_} distance", _fmt(d["model"].get(s_)), _fmt(d["noise"].get(s_)), _fmt(d["floor"].get(s_)))
    t3.add_row("two-sample accuracy", _fmt(c2.get("model")), _fmt(c2.get("noise")), _fmt(c2.get("floor")))
    console.print(t3)
    word = "[green]PASS[/green]" if v["pass"] else "[red]FAIL[/red]"
    console.print(f"dx {level['dx_m']:g} m: {word} -- geomorphons {'ok' if v['geomorphon_ok'] else 'off'}, "
                  f"two-sample test {'ok' if v['c2st_ok'] else 'off'}, tau {'ok' if v['tau_ok'] else 'off'}, "
                  f"theta {'ok' if v['theta_ok'] else 'low'}; retired rule: closer than noise "
                  f"{v['n_closer_than_noise']}/8, within 2x floor {v['n_within_floor']}/8 (real training "
                  f"terrain: closer than noise {v['floor_n_closer_than_noise']}/8)")
    for note in level.get("notes", []):
        console.print(f"note: {note}")


@evaluate_app.command("realism")
@user_errors
def realism_cmd(
    out: Path = typer.Option(..., "-o", "--out", help="Output JSON report."),
    dx: Optional[List[float]] = typer.Option(
        None, "--dx", help="Cell size(s) in metres (repeatable); default: every level with held-out tiles."
    ),
    n: int = typer.Option(16, "-n", help="Model samples per dx."),
    data: Path = typer.Option(Path("runs/data/prior_v1"), "--data", help="Prior dataset (p2p dataset build)."),
    weights: Optional[Path] = typer.Option(None, help="Prior weights (.safetensors); default: the shipped model."),
    steps: int = typer.Option(50, "--steps", help="DDIM denoising steps per sample."),
    samples: Optional[Path] = typer.Option(
        None, "--samples", help="Folder of GeoTIFF samples (e.g. from p2p sample) to evaluate instead of sampling."
    ),
    tile: int = typer.Option(256, "--tile", help="Evaluation tile size in cells (real tiles are cropped to it)."),
    seed: int = seed_option("Seed of the samples, the noise and the floor subset."),
    threads: Optional[int] = typer.Option(None, help="torch threads."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast for sampling."),
    erosion: float = typer.Option(0.3, "--erosion", help="k of the fluvial polish's stream-power step (0 = none)."),
    polish: bool = typer.Option(True, "--polish/--no-polish", help="Fluvial polish (--no-polish: raw prior samples)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report."),
) -> None:
    """Compare unconditional samples with held-out real tiles, fractal noise and real-vs-real."""
    import torch
    from rich.console import Console

    from pixels2peaks.evaluation.realism import RealismConfig, evaluate_realism, json_ready, plan_levels
    from pixels2peaks.io import atomic_path

    if n < 1 or steps < 1:
        raise InputError("-n and --steps must be >= 1")
    check_output_file(out, overwrite)
    cfg = RealismConfig(tile_cells=tile, seed=seed)
    if threads:
        torch.set_num_threads(threads)
    plan = plan_levels(data, dx, cfg)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    t0 = time.perf_counter()
    if samples is not None:
        folder = read_sample_folder(samples)
        missing = [f"{d:g}" for d in plan.reference if round(d, 6) not in folder]
        if missing:
            raise InputError(f"no samples at dx {', '.join(missing)} m in {samples}")
        small = [f"{d:g}" for d in plan.reference if min(folder[round(d, 6)].shape[1:]) < tile]
        if small:
            raise InputError(f"samples at dx {', '.join(small)} m are smaller than --tile {tile}")
        model_info = {"weights": None, "samples": str(samples)}

        def model_tiles(d: float) -> np.ndarray:
            return folder[round(d, 6)][:n]
    else:
        from pixels2peaks.diffusion.model import load_default_model, load_prior
        from pixels2peaks.evaluation.unconditional import sample_heightmaps, unconditional_polish

        pol = unconditional_polish(erosion) if polish else None
        model_info = weights_info(weights) | {"steps": steps, "bf16": bf16,
                                              "polish": None if pol is None else json_ready(asdict(pol))}  # before loading: exports may race
        model = load_prior(weights) if weights else load_default_model()
        model = model.to(memory_format=torch.channels_last)

        def model_tiles(d: float) -> np.ndarray:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn(f"sampling dx {d:g} m"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("steps"), TimeElapsedColumn(), console=console, transient=True) as bar:
                task = bar.add_task("sample", total=None)
                z = sample_heightmaps(model, n, tile, d, steps=steps, seed=seed, bf16=bf16, polish=pol,
                                      on_step=lambda k, tot: bar.update(task, completed=k, total=tot))
            console.print(f"sampled {n} x {tile}^2 at dx {d:g} m")
            return z

    report = evaluate_realism(plan, model_tiles, cfg, progress=lambda s: console.print(s))
    report = {
        "format": "pixels2peaks.realism/1",
        "command": " ".join(["p2p"] + sys.argv[1:]) if sys.argv and sys.argv[0].endswith("p2p") else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "data": str(data),
        "model": model_info,
        "n_per_dx": n,
        **report,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    for level in report["levels"].values():
        print_level(console, level)
    for d, why in report["skipped_levels"].items():
        console.print(f"skipped dx {d} m: {why}")
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(json_ready(report), indent=1, allow_nan=False) + "\n")
    verdict = "PASS" if report["pass"] else "FAIL"
    typer.echo(f"realism {verdict} at dx {', '.join(report['levels'])} m -> {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(evaluate_app, name="evaluate")
