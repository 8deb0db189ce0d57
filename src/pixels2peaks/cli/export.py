"""`p2p export HEIGHTMAP --to unreal|unity|raw16|exr|obj|glb|blender`: heightmaps for artists' tools.

Formats and import steps: ``docs/formats.md`` ("Exports"); code: ``pixels2peaks.io.export``.
Registered in ``pixels2peaks/cli/main.py``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import DxOption, NanOption, SquareOption, check_output_file, user_errors
from pixels2peaks.errors import InputError
from pixels2peaks.io.export import EXPORT_TARGETS


Target = Enum("Target", {t: t for t in EXPORT_TARGETS}, type=str)  # typer choices


def _camera_for(target: str, heightmap: Path, camera_path: Optional[Path]):
    """The camera for ``--to blender``: ``--camera`` or ``camera.json`` next to the heightmap."""
    from pixels2peaks.camera import Camera

    if camera_path is not None:
        if target != "blender":
            raise InputError("--camera applies to --to blender only")
        return Camera.load(camera_path)
    sibling = heightmap.with_name("camera.json")
    if target == "blender" and sibling.is_file():
        return Camera.load(sibling)
    return None


def _summary(res) -> str:
    i = res.info
    if res.target == "unreal":
        u = i["unreal"]
        sx, sy, sz = u["scale"]
        lx, ly, lz = u["location_cm"]
        return (f"Unreal Landscape import: Scale X {sx:.6g}, Y {sy:.6g}, Z {sz:.6g}; "
                f"Location {lx:.6g}, {ly:.6g}, {lz:.6g} cm")
    if res.target == "unity":
        return (f"Unity raw: {i['resolution']}x{i['resolution']} 16-bit, byte order Windows, flip off; "
                f"Terrain Size {i['terrain_width_m']:.6g} x {i['terrain_height_m']:.6g} x "
                f"{i['terrain_length_m']:.6g} m (width x height x length)")
    if res.target in ("obj", "glb"):
        return f"{i['vertices']} vertices, {i['faces']} triangles, {i['axes']}"
    if res.target == "blender":
        return f"run: {i['run']}"
    if res.target == "raw16":
        return f"{i['width']}x{i['height']} uint16 little-endian, z = {i['offset']:.6g} + code * {i['scale']:.6g} m"
    return f"float32 metres, {i['range_m'][0]:.6g} to {i['range_m'][1]:.6g} m"


def export(
    heightmap: Path = typer.Argument(
        ..., metavar="HEIGHTMAP", help="GeoTIFF, .asc, .bil, .npy/.npz or 16-bit PNG (e.g. OUTDIR/heightmap.tif)."
    ),
    to: Target = typer.Option(..., "--to", help="Target tool / format."),
    out: Optional[Path] = typer.Option(
        None, "-o", "--out", help="Main output file (default: next to HEIGHTMAP, e.g. heightmap_unreal.png)."
    ),
    camera_path: Optional[Path] = typer.Option(
        None, "--camera", help="camera.json for --to blender (default: camera.json next to HEIGHTMAP)."
    ),
    photo: Optional[Path] = typer.Option(None, "--photo", help="Photo shown as the Blender camera's background."),
    decimate: Optional[float] = typer.Option(
        None, "--decimate", help="Keep this fraction (0-1] of the triangles (obj, glb, blender)."
    ),
    decimation: str = typer.Option("quadric", "--decimation", help="quadric (best shape) or stride (regular grid)."),
    texture: str = typer.Option("none", "--texture", help="none or hillshade (obj, glb)."),
    unity_size: str = typer.Option("up", "--unity-size", help="Unity 2^n+1 resolution: up (>= size) or down."),
    z_min: Optional[float] = typer.Option(None, "--z-min", help="Height (m) of 16-bit code 0 (needs --z-max)."),
    z_max: Optional[float] = typer.Option(None, "--z-max", help="Height (m) of 16-bit code 65535 (needs --z-min)."),
    exaggeration: float = typer.Option(1.0, "--exaggeration", help="Vertical exaggeration factor."),
    nodata: str = typer.Option("nearest", "--nodata", help="Fill nodata with the nearest or lowest valid height."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    dx: Optional[float] = DxOption,
    square: str = SquareOption,
    nan_nodata: bool = NanOption,
) -> None:
    """Export a heightmap for Unreal, Unity, raw 16-bit, EXR, OBJ/GLB or a Blender scene script."""
    from rich.console import Console

    from pixels2peaks.io import read_dem
    from pixels2peaks.io.export import ExportOptions, default_output, export_heightmap, output_paths

    target = to.value
    if (z_min is None) != (z_max is None):
        raise InputError("give both --z-min and --z-max, or neither")
    options = ExportOptions(
        decimate=decimate,
        decimation=decimation,
        unity_size=unity_size,
        z_range_m=None if z_min is None else (z_min, z_max),
        vertical_exaggeration=exaggeration,
        nodata=nodata,
        texture=texture,
    )
    out = default_output(heightmap, target) if out is None else out
    paths = output_paths(target, out, options)
    for p in paths:
        check_output_file(p, overwrite)
    camera = _camera_for(target, heightmap, camera_path)
    if photo is not None and target != "blender":
        raise InputError("--photo applies to --to blender only")
    dem = read_dem(heightmap, dx_m=dx, square=square, nan="nodata" if nan_nodata else "error")
    with Console(stderr=True).status(f"exporting {heightmap.name} for {target} ..."):
        res = export_heightmap(dem, target, out, options=options, camera=camera, photo=photo)
    if camera is not None and camera_path is None:
        typer.echo(f"camera: {heightmap.with_name('camera.json')}", err=True)
    typer.echo(f"export {target}: {_summary(res)}", err=True)
    typer.echo(f"wrote {', '.join(str(p) for p in res.paths)}")


def register(app: typer.Typer) -> None:
    app.command("export")(user_errors(export))
