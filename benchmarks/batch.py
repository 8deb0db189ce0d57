"""`p2p batch` throughput (issue #20): photos per minute with 1 and 2 workers on the same 4
photos, and the peak memory of each worker.

Photos: the two bundled examples and two GeoPose3K photos from ``../shared`` (the bundled
examples twice more, under other names, when ``../shared`` is missing). Each configuration runs
on a fresh ``LocalCluster`` of single-threaded processes with the stage cache off, so every
photo is computed. Peak memory is each worker process's maximum resident set
(``getrusage``). Results: ``benchmarks/results/batch.json``.

    .venv/bin/python benchmarks/batch.py [--size 512] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "batch.json"
SHARED = ROOT.parent / "shared" / "data" / "photos" / "geopose3k"


def photos(folder: Path) -> list[Path]:
    ex = [ROOT / "examples" / "alps_photo.jpg", ROOT / "examples" / "alps_painting.jpg"]
    extra = [SHARED / "matterhorn_photo.jpg", SHARED / "alps_town_photo.jpg"]
    extra = [p for p in extra if p.is_file()] or ex
    out = []
    for i, p in enumerate(ex + extra):
        dst = folder / f"{i}_{p.name}"
        shutil.copyfile(p, dst)
        out.append(dst)
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(workers: int, items, config, tmp: Path) -> dict:
    from pixels2peaks.cluster import open_client
    from pixels2peaks.pipeline.batch import run_batch

    out = tmp / f"out{workers}"
    with open_client(workers=workers) as client:
        t0 = time.perf_counter()
        rows = run_batch(items, config, out, client, cache_dir=None)
        wall = time.perf_counter() - t0
        peaks = sorted(client.run(peak_rss_mb).values())
    assert all(r["status"] == "done" for r in rows), rows
    return {"workers": workers, "photos": len(rows), "wall_s": round(wall, 1),
            "photos_per_minute": round(60.0 * len(rows) / wall, 2),
            "seconds_per_photo": sorted(r["seconds"] for r in rows),
            "peak_rss_mb_per_worker": [round(p) for p in peaks]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    from pixels2peaks.cli._stages import perception_options
    from pixels2peaks.cli.run import run_config
    from pixels2peaks.pipeline.batch import collect

    popts = perception_options(geometry="auto", segmentation="auto", priors="auto", vlm_url=None, vlm_model="gemma-3",
                               vlm_timeout=120.0, fov=None, slope=None, z_min=None, z_max=None, pitch_step=0.5)
    config = run_config(popts, size=args.size, dx="auto", seed=0, steps=args.steps, device="cpu", weights=None)
    with tempfile.TemporaryDirectory(prefix="p2p-batch-bench-") as t:
        tmp = Path(t)
        (tmp / "in").mkdir()
        items = collect([str(p) for p in photos(tmp / "in")])
        runs = [run(w, items, config, tmp) for w in (1, 2)]
    result = {
        "benchmark": "batch",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {"size_cells": args.size, "steps": args.steps, "stage_cache": "off", "threads_per_worker": 1},
        "photos": [i.photo.name for i in items],
        "runs": runs,
        "speedup_2_vs_1": round(runs[1]["photos_per_minute"] / runs[0]["photos_per_minute"], 2),
        "target": {"peak_rss_mb_per_worker": 3072},
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
