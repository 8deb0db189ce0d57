"""`p2p synth DEM -o DIR` (synthetic photo + ground truth) and `p2p render DEM --camera`."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import NanOption, SquareOption, check_output_file, seed_option, user_errors

#: a synthetic photo's side at most (16384 x 16384 = 268 MP, beyond what anyone renders on a CPU)
MAX_IMAGE_SIDE_PX = 16384
from pixels2peaks.errors import InputError


class SurfaceKind(str, Enum):
    bilinear = "bilinear"
    blocks = "blocks"


def _read(dem_path: Path, dem_dx: Optional[float], square: str, nan_nodata: bool):
    import warnings

    from pixels2peaks.io import read_dem

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dem = read_dem(dem_path, dx_m=dem_dx, square=square, nan="nodata" if nan_nodata else "error")
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    return dem


def _warn_dx(camera, grid_dx: float) -> None:
    if camera.dx_m is not None and not math.isclose(camera.dx_m, grid_dx, rel_tol=1e-6):
        typer.echo(
            f"warning: camera.json was paired with {camera.dx_m:g} m cells, this grid has "
            f"{grid_dx:g} m (positions are metric, so the view is the same)",
            err=True,
        )


def _check_antialias(antialias: int) -> int:
    if not 1 <= antialias <= 8:
        raise InputError(f"--antialias must be in [1, 8], got {antialias}")
    return antialias


def synth(
    dem_path: Path = typer.Argument(..., metavar="DEM", help="GeoTIFF, .asc, .bil, .npy/.npz or 16-bit PNG."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (new or empty unless --overwrite)."),
    camera_path: Optional[Path] = typer.Option(None, "--camera", help="camera.json to render from."),
    random_cam: bool = typer.Option(False, "--random", help="Pick a random camera above the terrain."),
    seed: int = seed_option("Seed of --random (camera, sun, clouds, textures)."),
    dx: Optional[float] = typer.Option(
        None, "--dx", help="Cell size (m) of the ground-truth heightmaps (default: the DEM's grid)."
    ),
    width: int = typer.Option(1024, "--width", help="Image width of --random cameras (pixels)."),
    height: int = typer.Option(768, "--height", help="Image height of --random cameras (pixels)."),
    antialias: int = typer.Option(2, "--antialias", help="Colour rays per pixel per axis (1-8)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in a non-empty OUT."),
    dem_dx: Optional[float] = typer.Option(None, "--dem-dx", help="Cell size of the DEM in metres (overrides the file's)."),
    square: str = SquareOption,
    nan_nodata: bool = NanOption,
) -> None:
    """Render a synthetic landscape photo and its ground truth (depth, pointmap, masks, Z_V, Z_max)."""
    import time

    from pixels2peaks.camera import Camera, Heightfield, Shading, random_camera, synthesize, write_synth
    from pixels2peaks.camera.synth import RandomCameraRanges, random_shading
    from pixels2peaks.io.write import check_output_dir

    if (camera_path is None) == (not random_cam):
        raise InputError("give exactly one of --camera camera.json or --random")
    _check_antialias(antialias)
    if not (1 <= width <= MAX_IMAGE_SIDE_PX and 1 <= height <= MAX_IMAGE_SIDE_PX):
        raise InputError(f"--width/--height must be in [1, {MAX_IMAGE_SIDE_PX}] pixels, got {width}x{height}")
    check_output_dir(out, overwrite)
    camera = Camera.load(camera_path) if camera_path is not None else None
    t0 = time.perf_counter()
    dem = _read(dem_path, dem_dx, square, nan_nodata)
    hf = Heightfield(dem.z, dem.dx_m)
    if camera is None:
        camera = random_camera(hf, seed, RandomCameraRanges(width=width, height=height))
        shading = random_shading(seed)
    else:
        _warn_dx(camera, dx if dx is not None else dem.dx_m)
        shading = Shading(seed=seed)
    result = synthesize(hf, dem.dx_m, camera, out_dx_m=dx, shading=shading, antialias=antialias)
    write_synth(out, result, dem, overwrite=overwrite)
    r = result.render
    typer.echo(
        f"synth: {camera.width}x{camera.height} px, terrain {r.hit.mean():.1%} of the image, "
        f"{int(result.visible_mask.sum())} cells seen, {time.perf_counter() - t0:.1f} s -> {out}"
    )


def render_cmd(
    dem_path: Path = typer.Argument(..., metavar="DEM", help="GeoTIFF, .asc, .bil, .npy/.npz or 16-bit PNG."),
    camera_path: Path = typer.Option(..., "--camera", help="camera.json (docs/formats.md)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output image (.png or .jpg)."),
    depth: Optional[Path] = typer.Option(None, "--depth", help="Also write depth (.npy, float32 m, inf = sky)."),
    surface: SurfaceKind = typer.Option(SurfaceKind.bilinear, "--surface", help="Terrain model."),
    antialias: int = typer.Option(2, "--antialias", help="Colour rays per pixel per axis (1-8)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    dx: Optional[float] = typer.Option(None, "--dx", help="Cell size in metres (overrides the file's)."),
    square: str = SquareOption,
    nan_nodata: bool = NanOption,
) -> None:
    """Render a shaded image of a DEM seen from a camera."""
    import numpy as np
    from PIL import Image

    from pixels2peaks.camera import Camera, Heightfield, Shading, render_image
    from pixels2peaks.io import atomic_path

    _check_antialias(antialias)
    check_output_file(out, overwrite)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"-o must name a .png or .jpg image, got {out}")
    if depth is not None:
        check_output_file(depth, overwrite)
        if depth.suffix.lower() != ".npy":
            raise InputError(f"--depth must name a .npy file, got {depth}")
    camera = Camera.load(camera_path)
    dem = _read(dem_path, dx, square, nan_nodata)
    _warn_dx(camera, dem.dx_m)
    hf = Heightfield(dem.z, dem.dx_m, surface.value)
    image, result = render_image(hf, camera, Shading(), antialias=antialias)
    with atomic_path(out) as tmp:
        Image.fromarray(image, mode="RGB").save(tmp, format=fmt)
    if depth is not None:
        with atomic_path(depth) as tmp, open(tmp, "wb") as fh:
            np.save(fh, result.depth.astype(np.float32), allow_pickle=False)
    typer.echo(f"render: {camera.width}x{camera.height} px, terrain {result.hit.mean():.1%} -> {out}")


def register(app: typer.Typer) -> None:
    app.command("synth")(user_errors(synth))
    app.command("render")(user_errors(render_cmd))
