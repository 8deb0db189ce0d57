"""Realism of the shipped terrain prior (issue #4, item 5): `p2p evaluate realism` at every dx level
with held-out tiles, plus the model card's sample grid.

For each dx with >= 4 held-out 256^2 tiles in the prior dataset (runs/data/prior_v1: 960 m and
120 m; 30, 60 and 1920 m have none and are listed as skipped) it draws N unconditional 256^2
samples from the prior (DDIM, 1 torch thread), and compares them, fBm noise matched in spectrum and
amplitude, and training tiles (the real-vs-real floor) with the held-out tiles on 8 statistics
(`pixels2peaks.evaluation.realism`). Prints the tables, writes benchmarks/results/realism.json
(command, date, load average, training step of the weights) and docs/model-card-samples.png
(hillshades: per dx one row of held-out real tiles, model samples and one noise tile).

    .venv/bin/python benchmarks/realism.py [-n 16] [--steps 30] [--dx 960 120] [--threads 1]

Needs the dataset (`p2p dataset build globe shared -o runs/data/prior_v1`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def sample_grid(samples: dict[float, np.ndarray], plan, noise_seed: int, path: Path, per_row: int = 4) -> Path:
    """Hillshade grid: per dx, ``per_row`` held-out tiles then ``per_row`` model samples then 1 fBm tile."""
    from pixels2peaks.evaluation.fractal import matched_fbm
    from pixels2peaks.evaluation.realism import psd_slope
    from pixels2peaks.training.viz import save_grid

    tiles, dxs, labels = [], [], []
    for d, ref in plan.reference.items():
        noise = matched_fbm(list(ref), 1, np.random.default_rng(noise_seed), psd_slope)
        row = [(z, f"real {d:g} m") for z in ref[:per_row]]
        row += [(z, f"model {d:g} m") for z in samples[d][:per_row]]
        row += [(noise[0], f"fBm {d:g} m")]
        row += [(np.zeros_like(ref[0]), "")] * (2 * per_row + 1 - len(row))
        for z, lab in row:
            tiles.append(z)
            dxs.append(d)
            labels.append(lab)
    return save_grid(tiles, dxs, path, ncols=2 * per_row + 1, labels=labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=16, help="model samples per dx")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--dx", type=float, nargs="*", default=None, help="default: every dx with held-out tiles")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(ROOT / "runs" / "data" / "prior_v1"))
    ap.add_argument("--weights", default=None, help="default: the shipped prior")
    ap.add_argument("--erosion", type=float, default=0.3, help="k of the fluvial polish's stream-power step")
    ap.add_argument("--no-polish", action="store_true", help="raw prior samples (no fluvial polish)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "realism.json"))
    ap.add_argument("--image", default=str(ROOT / "docs" / "model-card-samples.png"))
    args = ap.parse_args()

    import torch
    from rich.console import Console

    from pixels2peaks.cli.evaluate import print_level, weights_info
    from pixels2peaks.diffusion.model import load_default_model, load_prior
    from pixels2peaks.evaluation.realism import RealismConfig, evaluate_realism, json_ready, plan_levels
    from pixels2peaks.evaluation.unconditional import sample_heightmaps, unconditional_polish

    torch.set_num_threads(args.threads)
    console = Console(width=120)
    t_all = time.perf_counter()
    load_before = os.getloadavg()
    cfg = RealismConfig(seed=args.seed)
    plan = plan_levels(args.data, args.dx, cfg)
    model_info = weights_info(Path(args.weights) if args.weights else None)  # before a re-export can race us
    model = load_prior(args.weights) if args.weights else load_default_model()
    model = model.to(memory_format=torch.channels_last)
    pol = None if args.no_polish else unconditional_polish(args.erosion)
    samples: dict[float, np.ndarray] = {}
    sample_s: dict[str, float] = {}

    def model_tiles(d: float) -> np.ndarray:
        t0 = time.perf_counter()
        last = [0.0]

        def tick(k: int, total: int) -> None:
            if time.perf_counter() - last[0] > 30 or k == total:
                last[0] = time.perf_counter()
                print(f"  dx {d:g} m: step {k}/{total} ({time.perf_counter() - t0:.0f} s)", flush=True)

        samples[d] = sample_heightmaps(model, args.n, cfg.tile_cells, d, steps=args.steps, seed=args.seed,
                                       polish=pol, on_step=tick)
        sample_s[f"{d:g}"] = round(time.perf_counter() - t0, 1)
        return samples[d]

    report = evaluate_realism(plan, model_tiles, cfg, progress=lambda s: print(s, flush=True))
    for level in report["levels"].values():
        print_level(console, level)
    for d, why in report["skipped_levels"].items():
        print(f"skipped dx {d} m: {why}")
    image = sample_grid(samples, plan, args.seed, Path(args.image))
    result = {
        "format": "pixels2peaks.realism/1",
        "command": " ".join([".venv/bin/python", "benchmarks/realism.py"] + sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "data": args.data,
        "model": model_info | {"steps": args.steps, "polish": None if pol is None else asdict(pol)},
        "n_per_dx": args.n,
        **report,
        "sampling_s": sample_s,
        "image": str(image),
        "wall_s": round(time.perf_counter() - t_all, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_ready(result), indent=1, allow_nan=False) + "\n")
    print(f"realism {'PASS' if report['pass'] else 'FAIL'}; {result['wall_s']} s -> {out}, {image}")


if __name__ == "__main__":
    main()
