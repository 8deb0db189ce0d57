"""Issue [view-true] "Clouds": the builtin terrain mask on synthetic photos rendered with clouds
against the terrain.

Synthetic photos of held-out DEM regions (the cameras of ``benchmarks/perception.py``) are
rendered three times, with cloud cover 0 (clear), 0.5 and 0.9 (the renderer's fBm cloud layer,
``camera.shading``; cover 0.9 puts cloud against most of the skyline). The builtin segmentation
(:class:`~pixels2peaks.perception.builtin.SkySegmentation`) gives the terrain mask, compared with
the true one (the render's hits):

* ``iou``: terrain IoU (target >= 0.97);
* ``above_skyline_pct``: pixels called terrain above the true skyline of their column, in % of
  the image (target: none; a 1-pixel tolerance at the skyline itself).

    .venv/bin/python benchmarks/clouds.py [-n 12]    # writes benchmarks/results/clouds.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from perception import heldout_terrains  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "clouds.json"
COVERS = (0.0, 0.5, 0.9)


def above_skyline_pct(pred: np.ndarray, true: np.ndarray, tol_px: int = 1) -> float:
    """% of the image's pixels marked terrain more than ``tol_px`` rows above the topmost true
    terrain pixel of their column (all of a column with no true terrain)."""
    h, w = true.shape
    top = np.where(true.any(axis=0), true.argmax(axis=0), h)
    rows = np.arange(h)[:, None]
    return float(100.0 * (pred & (rows < top[None, :] - tol_px)).sum() / pred.size)


def main(argv: list[str] | None = None) -> None:
    from pixels2peaks.camera import Heightfield, random_camera, random_shading, synthesize
    from pixels2peaks.evaluation.view_metrics import mask_iou
    from pixels2peaks.perception.builtin import SkySegmentation
    from pixels2peaks.training.perception_depth import CalibrationConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=12)
    args = ap.parse_args(argv)
    terrains = heldout_terrains()
    ranges = dataclasses.replace(CalibrationConfig().camera, width=384, height=256)
    seg = SkySegmentation()
    rows, seed, t_all = [], 2000, time.perf_counter()
    while len(rows) < args.n and seed < 2000 + 20 * args.n and terrains:
        name, z, dx = terrains[len(rows) % len(terrains)]
        seed += 1
        hf = Heightfield(z, dx)
        cam = random_camera(hf, seed, ranges)
        row = {"photo": f"{name} seed {seed}", "covers": {}}
        try:
            for cover in COVERS:
                res = synthesize(hf, dx, cam, shading=dataclasses.replace(random_shading(seed), clouds=cover))
                true = res.render.hit
                if true.mean() < 0.3:
                    raise ValueError("too little terrain")
                pred = seg.segment(res.image)
                row["covers"][f"{cover:g}"] = {"iou": mask_iou(pred, true), "above_skyline_pct": above_skyline_pct(pred, true)}
        except Exception:  # noqa: BLE001 - camera too low, too little terrain: draw another
            continue
        rows.append(row)
        print(row["photo"], {c: {k: round(v, 4) for k, v in m.items()} for c, m in row["covers"].items()}, flush=True)
    summary = {f"{c:g}": {k: float(np.median([r["covers"][f"{c:g}"][k] for r in rows])) for k in ("iou", "above_skyline_pct")}
               | {"min_iou": float(min(r["covers"][f"{c:g}"]["iou"] for r in rows)),
                  "max_above_skyline_pct": float(max(r["covers"][f"{c:g}"]["above_skyline_pct"] for r in rows))}
               for c in COVERS} if rows else {}
    out = {"benchmark": "clouds", "date": time.strftime("%Y-%m-%d"), "n_photos": len(rows), "median": summary,
           "rows": rows, "wall_s": round(time.perf_counter() - t_all, 1)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
