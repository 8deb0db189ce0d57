"""`p2p visible PHOTO -o DIR`: photo -> visible heightmap, mask and camera (paper §4).

Registered in ``pixels2peaks/cli/main.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import user_errors
from pixels2peaks.errors import InputError


def visible(
    image: Path = typer.Argument(..., metavar="IMAGE", help="Photo (JPEG/PNG/TIFF...), >= 64 px, <= 50 MP."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (new or empty unless --overwrite)."),
    geometry: str = typer.Option("auto", "--geometry", help="auto, moge, depth_anything or builtin."),
    segmentation: str = typer.Option("auto", "--segmentation", help="auto, grounded_sam or builtin."),
    priors: str = typer.Option("auto", "--priors", help="auto, vlm or builtin."),
    vlm_url: Optional[str] = typer.Option(
        None, "--vlm-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (env P2P_VLM_URL)."
    ),
    vlm_model: str = typer.Option("gemma-3", "--vlm-model", help="Model name sent to the VLM endpoint."),
    vlm_timeout: float = typer.Option(120.0, "--vlm-timeout", help="Seconds per VLM request."),
    fov: Optional[float] = typer.Option(None, "--fov", help="Horizontal FOV in degrees (default: EXIF, else backend)."),
    slope: Optional[float] = typer.Option(None, "--slope", help="Mean slope prior (degrees), overrides the backend."),
    z_min: Optional[float] = typer.Option(None, "--z-min", help="Lowest visible elevation (m); needs --z-max."),
    z_max: Optional[float] = typer.Option(None, "--z-max", help="Highest visible elevation (m); needs --z-min."),
    dx: Optional[float] = typer.Option(None, "--dx", help="Cell size (m); default: the scene spans ~1024 cells."),
    cells: int = typer.Option(1024, "--cells", help="Cells along the longer side when --dx is not given."),
    pitch_step: float = typer.Option(0.5, "--pitch-step", help="Pitch grid step (degrees)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in a non-empty OUT."),
) -> None:
    """Estimate the visible terrain Z_V, its mask M_V and the camera from one photo."""
    from pixels2peaks.perception.geometry import ReconstructOptions
    from pixels2peaks.perception.pipeline import OUTPUT_FILES, VisibleOptions, estimate_visible

    if (z_min is None) != (z_max is None):
        raise InputError("give both --z-min and --z-max (the elevation range), or neither")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} is not empty; pass --overwrite to replace its files")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise InputError(f"output folder's parent {out.parent} does not exist")
    if cells < 16:
        raise InputError(f"--cells must be at least 16, got {cells}")
    if not 0 < pitch_step <= 10:
        raise InputError(f"--pitch-step must be in (0, 10] degrees, got {pitch_step}")
    backend_options = {"vlm_model": vlm_model, "vlm_timeout_s": vlm_timeout}
    url = vlm_url or os.environ.get("P2P_VLM_URL")
    if url:
        backend_options["vlm_url"] = url
    opts = VisibleOptions(
        geometry=geometry,
        segmentation=segmentation,
        priors=priors,
        backend_options=backend_options,
        fov_x_deg=fov,
        mean_slope_deg=slope,
        elevation_range_m=None if z_min is None else (z_min, z_max),
        reconstruct=ReconstructOptions(dx_m=dx, target_cells=cells, pitch_step_deg=pitch_step),
    )
    res = estimate_visible(image, opts)
    res.save(out)
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
