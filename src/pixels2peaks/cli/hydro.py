"""`p2p hydro fill|breach DEM -o OUT [--epsilon] [--depressions PNG]`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import (
    DxOption,
    NanOption,
    SquareOption,
    check_output_file,
    read_dem_option,
    user_errors,
)
from pixels2peaks.errors import InputError


class Operation(str, Enum):
    fill = "fill"
    breach = "breach"


def hydro(
    operation: Operation = typer.Argument(..., help="fill (priority-flood) or breach (Algorithm 1)."),
    dem_path: Path = typer.Argument(..., metavar="DEM"),
    out: Path = typer.Option(..., "-o", "--out", help="Output DEM (.tif, .png, .npy, .npz, .asc)."),
    epsilon: Optional[float] = typer.Option(
        None, "--epsilon", help="Height step per flow step in metres (fill: 0; breach: a few float32 ulps)."
    ),
    depressions: Optional[Path] = typer.Option(
        None, "--depressions", help="Also write a PNG of the input's depressions."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    dx: Optional[float] = DxOption,
    square: str = SquareOption,
    nan_nodata: bool = NanOption,
) -> None:
    """Write the hydrologically conditioned DEM: depressions filled or breached."""
    import dataclasses

    import numpy as np

    from pixels2peaks.io import atomic_path, write_dem
    from pixels2peaks.terrain.hydrology import (
        breach_depressions,
        depression_depth,
        fill_depressions,
    )

    from pixels2peaks.io.write import dem_output_paths

    for p in dem_output_paths(out):  # a sidecar (.json, .prj, .hdr) is an output too
        check_output_file(p, overwrite)
    if depressions is not None:
        check_output_file(depressions, overwrite)
        if depressions.suffix.lower() != ".png":
            raise InputError(f"--depressions must name a .png file, got {depressions}")
    if epsilon is not None and (not np.isfinite(epsilon) or epsilon < 0):
        raise InputError(f"--epsilon must be a finite number >= 0, got {epsilon}")
    dem = read_dem_option(dem_path, dx, square, nan_nodata)
    if operation is Operation.fill:
        z = fill_depressions(dem.z, 0.0 if epsilon is None else epsilon, valid=dem.valid)
    else:
        z = breach_depressions(dem.z, "auto" if epsilon is None else epsilon, valid=dem.valid)
    image = None
    if depressions is not None:
        from pixels2peaks.evaluation.previews import depressions_image

        image = depressions_image(dem.z, depression_depth(dem.z, dem.valid), dem.dx_m)
    write_dem(out, dataclasses.replace(dem, z=np.asarray(z, dtype=np.float32)))
    if image is not None:
        with atomic_path(depressions) as tmp:
            image.save(tmp, format="PNG")
    changed = int(np.count_nonzero(np.asarray(z)[dem.valid] != dem.z[dem.valid]))
    typer.echo(f"{operation.value}: {changed} cell(s) changed -> {out}")


def register(app: typer.Typer) -> None:
    app.command("hydro")(user_errors(hydro))
