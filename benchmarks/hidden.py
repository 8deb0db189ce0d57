"""Hidden terrain through `p2p run` on real photos (issue [hidden-terrain], acceptance "Through
`p2p run`"): today's completion against session 12's, in the same run.

Variants: ``s13`` is the pipeline shipped in session 13 (no slot lift after the drainage, the
loose sky seeds of the builtin segmentation, ``Z_max`` from every ray); ``default`` is the current
default (:func:`~pixels2peaks.diffusion.completion.lift_slots`, the tighter sky seeds, ``Z_max``
with the photo's own sky). Session 13 compared session 12's completion the same way
(docs/benchmarks.md).

Photos: the bundled example and every shared real photo. Per photo and start:

* ``relief_ratio``: median local relief (windows 1/16 of the side) of the hidden cells over the
  visible cells' (target [0.7, 1.4]);
* ``mdd_m`` (target <= 0.05 m);
* ``slots``: cells more than 5 dx below the median of their 5 x 5 neighbourhood (target 0);
* ``outside_prior``: share of hidden cells outside the elevation prior widened by 10 % of its
  range (target 0, or a warning);
* ``seam_ratio``: tiling seams on the generated cells at the 256-cell tile pitch
  (:func:`~pixels2peaks.evaluation.artifacts.seam_ratio`, target <= 1.2).

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
STARTS = ("s13", "default")
ARGS = argparse.Namespace(size=512)


def photos() -> list[Path]:
    out = [ROOT / "examples" / "alps_photo.jpg"]
    out += sorted((SHARED / "geopose3k").glob("*_photo.jpg"))
    out += sorted(p for p in (SHARED / "skyseg").glob("*.png") if not p.stem.endswith("_mask"))
    return [p for p in out if p.is_file()]


def variant(name: str):
    """``(RunConfig, context manager)`` of one variant (the context is kept for variants that
    need a patch; none does now)."""
    import contextlib

    from pixels2peaks.pipeline.run import RunConfig

    base = RunConfig(size_cells=ARGS.size)
    if name == "default":
        return base, contextlib.nullcontext()
    perception = dataclasses.replace(
        base.perception, zmax_rays="all",
        backend_options={**base.perception.backend_options, "sky_seed_texture": (0.03, 0.0, 0.03)})
    cfg = dataclasses.replace(base, perception=perception,
                              completion=dataclasses.replace(base.completion, slot_depth_dx=None))
    return cfg, contextlib.nullcontext()


def main() -> None:
    from pixels2peaks.cache import StageCache
    from pixels2peaks.evaluation.artifacts import seam_ratio, slot_count, slot_mask
    from pixels2peaks.pipeline.run import run_photo
    from pixels2peaks.terrain.attributes import median_local_relief

    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ARGS = ap.parse_args()
    rows = []
    t_all = time.perf_counter()
    for p in photos():
        row = {"photo": p.name}
        for start in STARTS:
            cfg, patch = variant(start)
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="p2p-hidden-") as tmp, patch:
                # a fresh cache per variant
                res = run_photo(p, cfg, cache=StageCache(Path(tmp)))
            z, known = res.z.astype(np.float64), res.known
            lo, hi = res.visible.priors.elevation_range_m
            pad = 0.1 * (hi - lo)
            hid = z[~known]
            row[start] = {
                "relief_ratio": median_local_relief(z, ~known) / median_local_relief(z, known),
                "hidden_relief_m": median_local_relief(z, ~known),
                "visible_relief_m": median_local_relief(z, known),
                "mdd_m": res.metrics["mdd_m"],
                "slots": slot_count(z, res.dx_m),
                "slots_hidden": int((slot_mask(z, res.dx_m) & ~known).sum()),
                "seam_ratio": seam_ratio(z, 256, mask=~known),
                "outside_prior": float(((hid < lo - pad) | (hid > hi + pad)).mean()),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        rows.append(row)
        print(p.name, {s: {k: round(v, 3) for k, v in row[s].items()} for s in STARTS}, flush=True)
    summary = {s: {k: float(np.median([r[s][k] for r in rows])) for k in rows[0][s]} for s in STARTS}
    out = {"benchmark": "hidden", "date": time.strftime("%Y-%m-%d"), "size_cells": ARGS.size, "rows": rows,
           "median": summary, "wall_s": round(time.perf_counter() - t_all, 1)}
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
