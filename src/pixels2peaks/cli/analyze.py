"""`p2p analyze DEM [--json]`: size, cell size, relief, slope, curvature, MDD, timings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import DxOption, NanOption, SquareOption, read_dem_option, user_errors


def analyze_dem(dem) -> dict:
    """Terrain statistics of a :class:`~pixels2peaks.io.Dem` (JSON keys of ``p2p analyze``)."""
    import numpy as np
    import torch

    from pixels2peaks.terrain.attributes import laplacian, slope
    from pixels2peaks.terrain.hydrology import depression_depth

    timings: dict[str, float] = {}
    valid = dem.valid
    t0 = time.perf_counter()
    with torch.no_grad():
        z = torch.from_numpy(dem.z.astype(np.float64))
        s_deg = slope(z, dem.dx_m, unit="deg").numpy()
        curv = laplacian(z, dem.dx_m).numpy()
    timings["attributes_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    depth = depression_depth(dem.z, valid)
    timings["hydrology_s"] = time.perf_counter() - t0
    d = depth[valid]
    zv = dem.z[valid]
    return {
        "width": int(dem.width),
        "height": int(dem.height),
        "dx_m": float(dem.dx_m),
        "valid_fraction": float(valid.mean()),
        "elevation_min_m": float(zv.min()),
        "elevation_max_m": float(zv.max()),
        "mean_slope_deg": float(np.nanmean(s_deg[valid])),
        "mean_curvature": float(np.nanmean(curv[valid])),
        "mean_abs_curvature": float(np.nanmean(np.abs(curv[valid]))),
        "mean_curvature_unit": "1/m (5-point Laplacian)",
        "mdd_m": float(d.mean()),
        "depression_fraction": float((d > 0).mean()),
        "timings_s": timings,
    }


def analyze(
    dem_path: Path = typer.Argument(..., metavar="DEM", help="GeoTIFF, .asc, .bil, .npy/.npz or 16-bit PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    dx: Optional[float] = DxOption,
    square: str = SquareOption,
    nan_nodata: bool = NanOption,
) -> None:
    """Print terrain statistics of a DEM: size, dx, relief, mean slope, curvature, MDD."""
    t0 = time.perf_counter()
    dem = read_dem_option(dem_path, dx, square, nan_nodata)
    read_s = time.perf_counter() - t0
    stats = analyze_dem(dem)
    stats["timings_s"] = {"read_s": read_s, **stats["timings_s"]}
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    t = stats["timings_s"]
    typer.echo(
        f"{dem_path}\n"
        f"  size              {stats['width']} x {stats['height']} cells, dx = {stats['dx_m']:.4g} m"
        f" ({stats['valid_fraction']:.1%} valid)\n"
        f"  elevation         {stats['elevation_min_m']:.1f} .. {stats['elevation_max_m']:.1f} m\n"
        f"  mean slope        {stats['mean_slope_deg']:.2f} deg\n"
        f"  mean curvature    {stats['mean_curvature']:.3e} 1/m"
        f" (mean |curvature| {stats['mean_abs_curvature']:.3e} 1/m)\n"
        f"  MDD               {stats['mdd_m']:.4f} m\n"
        f"  in depressions    {stats['depression_fraction']:.2%} of cells\n"
        f"  timings           read {t['read_s']:.3f} s, attributes {t['attributes_s']:.3f} s,"
        f" hydrology {t['hydrology_s']:.3f} s"
    )


def register(app: typer.Typer) -> None:
    app.command("analyze")(user_errors(analyze))
