"""Hidden terrain through `p2p run` on real photos (issue [hidden-terrain], acceptance "Through
`p2p run`"): the LEM start against Algorithm 3's procedural start, in the same run.

Photos: the bundled example and every shared real photo. Per photo and start:

* ``relief_ratio``: median local relief (windows 1/16 of the side) of the hidden cells over the
  visible cells' (target [0.7, 1.4]);
* ``mdd_m`` (target <= 0.05 m);
* ``slots``: cells more than 5 dx below the median of their 5 x 5 neighbourhood (target 0);
* ``outside_prior``: share of hidden cells outside the elevation prior widened by 10 % of its
  range (target 0, or a warning).

    .venv/bin/python benchmarks/hidden.py [--size 512]   # writes benchmarks/results/hidden.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "hidden.json"
SHARED = ROOT.parent / "shared" / "data" / "photos"
STARTS = ("procedural", "lem")


def photos() -> list[Path]:
    out = [ROOT / "examples" / "alps_photo.jpg"]
    out += sorted((SHARED / "geopose3k").glob("*_photo.jpg"))
    out += sorted(p for p in (SHARED / "skyseg").glob("*.png") if not p.stem.endswith("_mask"))
    return [p for p in out if p.is_file()]


def slots(z: np.ndarray, dx: float) -> int:
    from scipy.ndimage import median_filter

    return int((median_filter(z, size=5, mode="nearest") - z > 5.0 * dx).sum())


def main() -> None:
    from pixels2peaks.cache import StageCache
    from pixels2peaks.pipeline.run import RunConfig, run_photo
    from pixels2peaks.terrain.attributes import median_local_relief

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    rows = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="p2p-hidden-") as tmp:
        cache = StageCache(Path(tmp))  # perception shared by both starts, completion computed
        for p in photos():
            row = {"photo": p.name}
            for start in STARTS:
                base = RunConfig(size_cells=args.size)
                cfg = dataclasses.replace(base, completion=dataclasses.replace(base.completion, init=start))
                t0 = time.perf_counter()
                res = run_photo(p, cfg, cache=cache)
                z, known = res.z.astype(np.float64), res.known
                lo, hi = res.visible.priors.elevation_range_m
                pad = 0.1 * (hi - lo)
                hid = z[~known]
                row[start] = {
                    "relief_ratio": median_local_relief(z, ~known) / median_local_relief(z, known),
                    "hidden_relief_m": median_local_relief(z, ~known),
                    "visible_relief_m": median_local_relief(z, known),
                    "mdd_m": res.metrics["mdd_m"],
                    "slots": slots(z, res.dx_m),
                    "outside_prior": float(((hid < lo - pad) | (hid > hi + pad)).mean()),
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            rows.append(row)
            print(p.name, {s: {k: round(v, 3) for k, v in row[s].items()} for s in STARTS}, flush=True)
    summary = {s: {k: float(np.median([r[s][k] for r in rows])) for k in rows[0][s]} for s in STARTS}
    out = {"benchmark": "hidden", "date": time.strftime("%Y-%m-%d"), "size_cells": args.size, "rows": rows,
           "median": summary, "wall_s": round(time.perf_counter() - t_all, 1)}
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
