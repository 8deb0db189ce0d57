"""View-consistency candidates of issue [view-true] on synthetic photos (visible stage only).

A first, partial version of the issue's benchmark: the acceptance asks for 24 photos through the
whole of ``p2p run``; this measures the geometry designs on the visible heightmap ``Z_V`` they
give, which is where the walls and fans are made. Synthetic photos of held-out DEMs come from
``benchmarks/perception.py`` (``synthetic_photos``: held-out GLOBE tiles and the Front Range,
random cameras, true FOV). Every variant gets the true FOV, the true mean slope and the true
elevation range of the seen terrain, so only the geometry is measured; each geometry is run with
the pitch search (Eq. 1) and with the true pitch.

Per photo and variant: error of ``Z_V`` per seen cell against the true heightmap (frames as in
the perception benchmark) and the **wall share**: seen cells (with 4 seen neighbours) steeper
than 60 deg, next to the true terrain's share on its own seen cells. Medians over photos.

    .venv/bin/python benchmarks/view.py [-n 8]     # writes benchmarks/results/view.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from perception import synthetic_photos, true_mean_slope, zv_errors  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "view.json"
#: (name, backend options, ReconstructOptions changes); the first word of the name is the backend
VARIANTS = (("builtin/points", {}, {"surface": "points"}), ("builtin/mesh", {}, {"surface": "mesh"}),
            ("builtin/mesh+jbu", {"depth_upsample": "joint_bilateral"}, {"surface": "mesh"}),
            ("contours/depth_net", {"contour_cue": "depth_net"}, {}),
            ("contours/haze", {"contour_cue": "haze"}, {}))


def _inner_slopes(z: np.ndarray, dx: float, seen: np.ndarray) -> np.ndarray:
    """Slopes (deg) of seen cells whose 4 neighbours are seen (off the border)."""
    from pixels2peaks.terrain.attributes import slope

    s = slope(np.where(seen, z, 0.0), dx)
    inner = seen.copy()
    inner[1:-1, 1:-1] &= seen[:-2, 1:-1] & seen[2:, 1:-1] & seen[1:-1, :-2] & seen[1:-1, 2:]
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    return np.asarray(s)[inner]


def slope_w1(z: np.ndarray, dx: float, seen: np.ndarray, z_true: np.ndarray, dx_true: float,
             seen_true: np.ndarray) -> float:
    """Wasserstein-1 distance (deg) between the slopes of the visible cells and the true
    terrain's slopes on its own seen cells (acceptance (c))."""
    from scipy.stats import wasserstein_distance

    a, b = _inner_slopes(z, dx, seen), _inner_slopes(z_true, dx_true, seen_true)
    return float(wasserstein_distance(a, b)) if a.size and b.size else float("nan")


def wall_share(z: np.ndarray, dx: float, seen: np.ndarray, deg: float = 60.0) -> float:
    from pixels2peaks.terrain.attributes import slope

    zz = np.where(seen, z, 0.0)
    s = slope(zz, dx)
    inner = seen.copy()
    inner[1:-1, 1:-1] &= seen[:-2, 1:-1] & seen[2:, 1:-1] & seen[1:-1, :-2] & seen[1:-1, 2:]
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    return float((s[inner] > deg).mean()) if inner.any() else float("nan")


def main(argv: list[str] | None = None) -> None:
    from pixels2peaks.perception.geometry import ReconstructOptions
    from pixels2peaks.perception.pipeline import VisibleOptions, estimate_visible

    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    variants = [v for v in VARIANTS if args.only is None or v[0] in args.only]
    t_all = time.perf_counter()
    rows = []
    for label, z, dx, res in synthetic_photos(args.n, (384, 256)):
        cam = res.camera
        zr = (float(np.nanmin(res.z_visible)), float(np.nanmax(res.z_visible)))
        slope = true_mean_slope(z, dx, res.visible_mask)
        row = {"photo": label, "pitch_true_deg": cam.pitch_deg, "true_wall_share": wall_share(z, dx, res.visible_mask),
               "variants": {}}
        for name, bopts, ro_changes in variants:
            geo = name.split("/")[0]
            for pitch_mode in ("searched", "true"):
                ro = ReconstructOptions(**ro_changes)
                if pitch_mode == "true":
                    p = round(cam.pitch_deg * 2) / 2
                    ro = replace(ro, pitch_range_deg=(p, p))
                t0 = time.perf_counter()
                vr = estimate_visible(res.image, VisibleOptions(geometry=geo, fov_x_deg=cam.fov_x_deg, mean_slope_deg=slope,
                                                                elevation_range_m=zr, backend_options=bopts, reconstruct=ro))
                e = zv_errors(vr, cam, z, dx)
                row["variants"][f"{name} pitch {pitch_mode}"] = {
                    "pitch_error_deg": abs(vr.camera.pitch_deg - cam.pitch_deg),
                    "per_seen_cell_m": e["mean_abs_per_seen_cell_m"], "flat_m": e["flat_baseline_per_seen_cell_m"],
                    "wall_share": wall_share(vr.z, vr.dx_m, vr.mask),
                    "slope_w1_deg": slope_w1(vr.z, vr.dx_m, vr.mask, z, dx, res.visible_mask),
                    "seen_cells": int(vr.mask.sum()), "seconds": round(time.perf_counter() - t0, 2)}
        rows.append(row)
        print(label, {k: (round(v["per_seen_cell_m"]), round(v["wall_share"], 3), round(v["pitch_error_deg"], 1))
                      for k, v in row["variants"].items()}, flush=True)
    keys = list(rows[0]["variants"]) if rows else []
    summary = {k: {m: float(np.nanmedian([r["variants"][k][m] for r in rows]))
                   for m in ("pitch_error_deg", "per_seen_cell_m", "flat_m", "wall_share", "slope_w1_deg", "seen_cells",
                             "seconds")} for k in keys}
    summary["true terrain"] = {"wall_share": float(np.nanmedian([r["true_wall_share"] for r in rows]))} if rows else {}
    out = {"format": "pixels2peaks-bench-view/0", "date": time.strftime("%Y-%m-%d"), "n_photos": len(rows),
           "summary_medians": summary, "rows": rows, "wall_s": round(time.perf_counter() - t_all, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for k, v in summary.items():
        print(f"{k:40s} " + " ".join(f"{m} {x:.3g}" for m, x in v.items()))


if __name__ == "__main__":
    main()
