"""Speed of the guided completion: a 1024^2 heightmap (main diffusion at 512^2, polishing x2 to
1024^2) with the shipped prior on CPU. Target: <= 150 s on 2 cores.

Reports the wall time per stage and the profile split into U-Net (forward + backward), guidance
(loss evaluation and its gradient, without breaching), breaching (guidance targets, Algorithm 3,
Algorithm 4 projections), tiling overhead (padding, cropping, assembly) and the rest; the peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``); the main-diffusion cost per step.

``--compare-modes`` also runs the main diffusion alone (no polishing) with both gradient modes
(``x0``: gradient on x0_hat, no U-Net backward; ``unet``: autograd through the tiled U-Net, the
paper) on the same case and reports seconds per step and the final guidance losses / metrics.

Case: a 512^2 crop of the Colorado Front Range (held out from the prior's training) at its
native ~71 m, seen by a synthetic camera (``pixels2peaks.camera`` if available, else the viewshed
stand-in of ``benchmarks/ablation.py``); a self-affine synthetic terrain when
``../shared/data/dems`` is missing (said so on stderr).

    python benchmarks/completion_speed.py [--threads 2] [--steps 20] [--compare-modes]

Writes ``benchmarks/results/completion_speed.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_case(size: int):
    """The benchmark case. NB: the camera module's numba ``prange`` kernels share libgomp with
    torch and leave ``torch.get_num_threads()`` at numba's thread count: restore it afterwards
    (on a 2-core box with another busy process, 2 torch threads make small tiles ~25x slower)."""
    import torch

    import ablation

    n_threads = torch.get_num_threads()
    try:
        return _make_case(size, ablation)
    finally:
        torch.set_num_threads(n_threads)


def _make_case(size: int, ablation):
    if ablation.DEMS.is_dir():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z, dx = ablation._read_dem("front_range_srtm3.asc")
        z = z[200 : 200 + size, 100 : 100 + size]
        name = f"front_range_{size}"
    else:
        print(f"warning: {ablation.DEMS} not found: using a synthetic fractal terrain", file=sys.stderr)
        from pixels2peaks.training.synthetic import fractal

        z, dx, name = fractal(size, 0, 2000.0).astype(np.float64), 60.0, f"fractal_{size}"
    try:
        z_v, m_v, z_max, info = ablation._camera_view(z, dx, seed=0)
        views = "camera"
    except ImportError:
        cam, yaw = ablation.place_camera(z, "S")
        z_v, m_v, z_max = ablation.synthetic_view(z, cam, 300.0, yaw, 80.0, dx)
        info, views = dict(cell=list(cam), yaw_deg=yaw), "viewshed"
    return dict(name=name, z_true=z, z_v=z_v, m_v=m_v, z_max=z_max, dx=dx, camera=info, views=views)


def split(profile: dict) -> dict:
    s = {k: v["s"] for k, v in profile.items()}
    return {
        "unet_forward_s": s.get("unet", 0.0),
        "unet_backward_s": s.get("unet_backward", 0.0),
        "guidance_s": s.get("guidance_loss", 0.0),
        "breaching_s": s.get("breach", 0.0),
        "tiling_overhead_s": s.get("tiling", 0.0),
        "init_other_s": s.get("init", 0.0),
        "polish_projection_other_s": s.get("polish_projection", 0.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=512, help="main-diffusion grid (output = 2x after polishing)")
    ap.add_argument("--steps", type=int, default=None, help="main DDIM steps (default: CompletionConfig's)")
    ap.add_argument("--gradient", default=None, choices=["x0", "unet"])
    ap.add_argument("--compare-modes", action="store_true")
    ap.add_argument("--only-compare", action="store_true", help="skip the 1024^2 timing run")
    ap.add_argument("--compare-size", type=int, default=256)
    ap.add_argument("--compare-steps", type=int, default=20)
    ap.add_argument("--budget-s", type=float, default=150.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "completion_speed.json"))
    a = ap.parse_args()

    import torch

    from pixels2peaks.diffusion.completion import CompletionConfig
    from pixels2peaks.diffusion.model import DEFAULT_CONFIG, load_default_model

    torch.set_num_threads(a.threads)
    model = load_default_model()
    calib = [calibrate(model)]
    cfg = CompletionConfig()
    if a.steps is not None:
        cfg = cfg.replace(steps=a.steps)
    if a.gradient is not None:
        cfg = cfg.replace(guidance=dataclasses.replace(cfg.guidance, gradient_mode=a.gradient))
    result = {"threads": a.threads, "machine": platform.platform(), "torch": torch.__version__,
              "prior_step": json.loads(DEFAULT_CONFIG.read_text()).get("training", {}).get("step"),
              "load_average_start": list(os.getloadavg())}
    if not a.only_compare:
        result.update(timing_run(a, model, cfg))
    if a.compare_modes:
        result["gradient_modes"] = compare_modes(a, model, cfg)
    calib.append(calibrate(model))
    result["calibration_ms_per_256_tile"] = [round(c, 1) for c in calib]
    result["load_average_end"] = list(os.getloadavg())
    ref = reference_ms()
    if ref and "wall_s" in result:
        f = ref / float(np.mean(calib))
        result["idle_2core_estimate_s"] = round(result["wall_s"] * f, 1)
        print(f"U-Net calibration {np.mean(calib):.0f} ms per 256^2 tile here vs {ref:.0f} ms on the idle 2-core "
              f"machine (benchmarks/results/model_speed.json): idle estimate {result['idle_2core_estimate_s']:.0f} s")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=lambda o: dataclasses.asdict(o)) + "\n")
    print(f"-> {out}")


def calibrate(model) -> float:
    """Median ms of one 256^2 fp32 channels_last U-Net forward (machine-load calibration)."""
    import torch

    x = torch.randn(1, 1, 256, 256).contiguous(memory_format=torch.channels_last)
    m = model.to(memory_format=torch.channels_last)
    ts = []
    with torch.inference_mode():
        m(x, 500, 60.0)
        for _ in range(3):
            t0 = time.perf_counter()
            m(x, 500, 60.0)
            ts.append(1000 * (time.perf_counter() - t0))
    return float(np.median(ts))


def reference_ms() -> float | None:
    p = ROOT / "benchmarks" / "results" / "model_speed.json"
    try:
        for r in json.loads(p.read_text())["results"]:
            if (r.get("config"), r.get("size"), r.get("dtype"), r.get("channels_last")) == ("shipped", 256, "fp32", True):
                return float(r["ms_per_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def timing_run(a, model, cfg) -> dict:
    from pixels2peaks.diffusion.completion import complete

    case = make_case(a.size)
    print(f"case {case['name']} ({case['views']} view): {a.size}^2 at {case['dx']:.3g} m, "
          f"{case['m_v'].mean():.1%} visible; threads {a.threads}", flush=True)
    t0 = time.perf_counter()
    r = complete(case["z_v"], case["m_v"], case["z_max"], case["dx"], cfg, model=model)
    wall = time.perf_counter() - t0
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    sp = split(r.profile)
    sp["other_s"] = round(wall - sum(sp.values()), 3)
    n_main = r.profile.get("tiling", {}).get("calls", 0)
    result = {
        "case": {k: case[k] for k in ("name", "dx", "views", "camera")} | {"visible_fraction": float(case["m_v"].mean())},
        "input_shape": list(case["z_v"].shape),
        "output_shape": list(r.z.shape),
        "output_dx_m": r.dx_m,
        "wall_s": round(wall, 2),
        "budget_s": a.budget_s,
        "within_budget": wall <= a.budget_s,
        "timings_s": r.timings,
        "split_s": {k: round(v, 3) for k, v in sp.items()},
        "profile": r.profile,
        "denoiser_calls": n_main,
        "peak_rss_mb": round(maxrss_mb, 1),
        "metrics": r.metrics,
        "config": r.config.to_dict(),
    }
    print(f"\ncompletion {a.size}^2 -> {r.z.shape[0]}x{r.z.shape[1]}: {wall:.1f} s (budget {a.budget_s:.0f} s), "
          f"peak RSS {maxrss_mb:.0f} MB")
    print(f"{'stage':28s} {'seconds':>9s}")
    for k, v in r.timings.items():
        print(f"  {k:26s} {v:9.2f}")
    print(f"{'profile (exclusive)':28s} {'seconds':>9s} {'share':>6s}")
    for k, v in sp.items():
        print(f"  {k:26s} {v:9.2f} {v / wall:6.1%}")
    print("metrics:", json.dumps({k: round(v, 4) for k, v in r.metrics.items()}))

    return result


def compare_modes(a, model, cfg) -> dict:
    from pixels2peaks.diffusion.completion import complete
    from pixels2peaks.diffusion.polishing import PolishConfig

    case = make_case(a.compare_size)
    print(f"\ngradient modes on {case['name']}: main diffusion only, {a.compare_steps} steps", flush=True)
    rows = {}
    for mode in ("x0", "unet"):
        c2 = cfg.replace(guidance=dataclasses.replace(cfg.guidance, gradient_mode=mode), steps=a.compare_steps, paste_known=False,
                         polish=PolishConfig(enabled=False))
        t1 = time.perf_counter()
        r2 = complete(case["z_v"], case["m_v"], case["z_max"], case["dx"], c2, model=model)
        w2 = time.perf_counter() - t1
        last = r2.history[-1] if r2.history else {}
        rows[mode] = {
            "wall_s": round(w2, 2),
            "s_per_step": round(r2.timings["diffusion_s"] / max(1, len(r2.history)), 3),
            "steps": len(r2.history),
            "final_losses": {k: last.get(k) for k in ("hyd", "geo", "view")},
            "mdd_m": r2.metrics["mdd_m"], "ove_m": r2.metrics["ove_m"], "vve_m": r2.metrics["vve_m"],
            "profile_split": split(r2.profile),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        }
        print(f"  {mode}: {w2:.1f} s", flush=True)
    print(f"{'mode':6s} {'s/step':>8s} {'hyd':>10s} {'geo':>10s} {'view':>10s} {'MDD m':>8s} {'OVE m':>8s} {'VVE m':>8s}")
    for mode, row in rows.items():
        fl = row["final_losses"]
        print(f"{mode:6s} {row['s_per_step']:8.2f} {fl['hyd'] or 0:10.2e} {fl['geo'] or 0:10.2e} "
              f"{fl['view'] or 0:10.2e} {row['mdd_m']:8.3f} {row['ove_m']:8.3f} {row['vve_m']:8.3f}")
    return rows


if __name__ == "__main__":
    main()
