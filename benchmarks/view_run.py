"""Issue [view-true] acceptance (a)-(c) through the whole of ``p2p run`` on synthetic photos.

At least 24 synthetic photos of held-out real DEM regions (``benchmarks/perception.py``
``synthetic_photos``: held-out GLOBE tiles and the Front Range, random cameras as in the
perception benchmark). Each runs through :func:`pixels2peaks.pipeline.run.run_photo` with the true
FOV, the true mean slope and the true elevation range of the seen terrain, so that only the
geometry is measured. The final heightmap is rendered from its own recovered camera
(:func:`pixels2peaks.camera.render`) and compared with the true render of the photo:

* (a) ``contour_pct``: mean symmetric distance between the occluding contours (skyline plus
  depth jumps > 25 %, :func:`~pixels2peaks.evaluation.view_metrics.occluding_contours`) of the
  two renders, in % of the image width (target <= 1.0, median);
* (b) ``abs_rel``: AbsRel of the render's depth after a least-squares scale, on the pixels that
  are terrain in both (target <= 0.20, median);
* (c) ``walls_pct``: visible cells of the final map steeper than 60 deg, next to the true
  terrain's share on its seen cells (``true_walls_pct``, target: within 1 point), and
  ``slope_w1_deg`` of the visible cells against the true seen cells (target <= 4 deg);
* ``iou``: terrain IoU of the render against the true terrain mask.

Variants (in the same run), each a set of :class:`~pixels2peaks.perception.pipeline.VisibleOptions`
fields: ``s13`` is session 13's default (every ray of the view bound caps the hidden terrain, the
paper's Algorithm 2 on ``Z_V``; the loose sky seeds of the builtin segmentation); ``sky_seeds``
adds session 14's tighter sky seeds (``SkylineOptions.seed_texture``); ``default`` (session 14)
also casts the view bound with the photo's own sky mask (a ray through a terrain pixel that
misses ``Z_V`` caps nothing). Session 13 compared
``depth_upsample`` bilinear / joint bilateral the same way (``docs/perception.md``).

    .venv/bin/python benchmarks/view_run.py [-n 24] [--size 256]   # writes benchmarks/results/view_run.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from perception import synthetic_photos, true_mean_slope  # noqa: E402
from view import slope_w1, wall_share  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "view_run.json"
S13_SKY = {"sky_seed_texture": (0.03, 0.0, 0.03)}
VARIANTS = {"s13": {"zmax_rays": "all", "backend_options": S13_SKY},
            "sky_seeds": {"zmax_rays": "all"},
            "default": {"zmax_rays": "photo"}}
METRICS = ("contour_pct", "abs_rel", "walls_pct", "true_walls_pct", "slope_w1_deg", "iou", "seconds")


def measure(res, truth, z_true, dx_true) -> dict[str, float]:
    """The metrics of one run against the true render ``truth`` (a SynthResult)."""
    from pixels2peaks.camera import render
    from pixels2peaks.evaluation.view_metrics import contour_distance, mask_iou, occluding_contours, scaled_abs_rel

    r = render(res.z.astype(np.float64), res.dx_m, res.camera)
    t = truth.render
    both = r.hit & t.hit
    width = t.hit.shape[1]
    return {
        "contour_pct": 100.0 * contour_distance(occluding_contours(r.depth, r.hit),
                                                occluding_contours(t.depth, t.hit)) / width,
        "abs_rel": scaled_abs_rel(r.depth, t.depth, both),
        "walls_pct": 100.0 * wall_share(res.z, res.dx_m, res.known),
        "true_walls_pct": 100.0 * wall_share(z_true, dx_true, truth.visible_mask),
        "slope_w1_deg": slope_w1(res.z, res.dx_m, res.known, z_true, dx_true, truth.visible_mask),
        "iou": mask_iou(r.hit, t.hit),
    }


def main(argv: list[str] | None = None) -> None:
    from pixels2peaks.cache import StageCache
    from pixels2peaks.perception.pipeline import VisibleOptions
    from pixels2peaks.pipeline.run import RunConfig, run_photo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(VARIANTS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    variants = {k: v for k, v in VARIANTS.items() if args.only is None or k in args.only}
    t_all = time.perf_counter()
    rows = []
    for label, z, dx, truth in synthetic_photos(args.n, (384, 256)):
        cam = truth.camera
        zr = (float(np.nanmin(truth.z_visible)), float(np.nanmax(truth.z_visible)))
        slope = true_mean_slope(z, dx, truth.visible_mask)
        row = {"photo": label, "variants": {}}
        for name, fields in variants.items():
            cfg = RunConfig(size_cells=args.size, perception=VisibleOptions(
                fov_x_deg=cam.fov_x_deg, mean_slope_deg=slope, elevation_range_m=zr, **fields))
            t0 = time.perf_counter()
            try:
                res = run_photo(truth.image, cfg, cache=StageCache(None))
                m = measure(res, truth, z, dx)
            except Exception as e:  # noqa: BLE001 - a failed photo is a result too
                m = {k: float("nan") for k in METRICS} | {"error": f"{type(e).__name__}: {e}"}
            m["seconds"] = round(time.perf_counter() - t0, 1)
            row["variants"][name] = m
        rows.append(row)
        print(label, {k: {m: round(v[m], 3) for m in METRICS if m in v} for k, v in row["variants"].items()},
              flush=True)
    summary = {k: {m: float(np.nanmedian([r["variants"][k][m] for r in rows])) for m in METRICS} for k in variants}
    out = {"benchmark": "view_run", "date": time.strftime("%Y-%m-%d"), "n_photos": len(rows), "size_cells": args.size,
           "median": summary, "rows": rows, "wall_s": round(time.perf_counter() - t_all, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for k, v in summary.items():
        print(f"{k:10s} " + " ".join(f"{m} {x:.3g}" for m, x in v.items()))


if __name__ == "__main__":
    main()
