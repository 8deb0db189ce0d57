"""Speed of one denoising step of the terrain prior U-Net on CPU.

Measures milliseconds per step per tile (batch 1) at 256^2 and 512^2, fp32 vs bf16 autocast,
contiguous vs channels_last, median of repeats, for the shipped config and a few candidates.
Writes benchmarks/results/model_speed.json and prints a table.

    python benchmarks/model_speed.py [--threads 2] [--repeats 5] [--sizes 256 512] [--candidates]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from pixels2peaks.diffusion.model import DEFAULT_CONFIG, PriorConfig, TerrainPrior

CANDIDATES = {
    "A_32-64-128-128_l1_att3": dict(block_out_channels=(32, 64, 128, 128), layers_per_block=1, attention_levels=(3,)),
    "B_32-64-128-128_l2_att3": dict(block_out_channels=(32, 64, 128, 128), layers_per_block=2, attention_levels=(3,)),
    "C_32-64-96-128-160_l1_att34": dict(
        block_out_channels=(32, 64, 96, 128, 160), layers_per_block=1, attention_levels=(3, 4)
    ),
    "D_32-64-96-128_l2_att3": dict(block_out_channels=(32, 64, 96, 128), layers_per_block=2, attention_levels=(3,)),
}


def time_step(model: TerrainPrior, size: int, bf16: bool, channels_last: bool, repeats: int) -> float:
    x = torch.randn(1, 1, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    else:
        model = model.to(memory_format=torch.contiguous_format)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model(x, 500, 120.0)
            if i:  # first call is warm-up
                times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--candidates", action="store_true", help="also time the candidate architectures")
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "model_speed.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    configs: dict[str, PriorConfig] = {}
    if DEFAULT_CONFIG.is_file():
        configs["shipped"] = PriorConfig.from_dict(json.loads(DEFAULT_CONFIG.read_text())["prior_config"])
    else:
        configs["default"] = PriorConfig()
    if a.candidates:
        for name, kw in CANDIDATES.items():
            configs[name] = PriorConfig(**kw)

    rows = []
    for name, cfg in configs.items():
        model = TerrainPrior(cfg).eval()
        # accuracy of bf16 autocast vs fp32 on the same input (relative RMS difference)
        x = torch.randn(1, 1, 256, 256)
        with torch.inference_mode():
            ref = model(x, 500, 120.0)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model(x, 500, 120.0).float()
        rel = float((low - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-12))
        for size in a.sizes:
            for bf16 in (False, True):
                for cl in (False,) if a.no_channels_last else (False, True):
                    ms = time_step(model, size, bf16, cl, a.repeats)
                    rows.append(
                        dict(config=name, params=model.num_params, size=size, dtype="bf16" if bf16 else "fp32",
                             channels_last=cl, ms_per_step=round(ms, 1), bf16_rel_rms_diff=round(rel, 4))
                    )
                    r = rows[-1]
                    print(f"{name:32s} {r['params']/1e6:5.2f}M {size:4d} {r['dtype']:4s} cl={int(cl)} "
                          f"{r['ms_per_step']:8.1f} ms/step  (bf16 rel diff {rel:.3f})", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(
        threads=a.threads, repeats=a.repeats, torch=torch.__version__, cpu=platform.processor() or platform.machine(),
        configs={k: v.to_dict() for k, v in configs.items()}, results=rows), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
