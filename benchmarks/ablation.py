"""Ablation of the guided completion (paper §7.3, Figs. 10, 13-15) on synthetic views of real DEMs.

Cases: viewsheds from cameras placed over held-out / unseen real DEM regions of
``../shared/data/dems`` (Front Range: held out from the prior's training; Gabilan lidar: never in
training; Big Tujunga: in training at 30/60 m, flagged) plus a synthetic crater (Fig. 10). A case is
``(Z_V with NaN where unseen, M_V, Z_max, dx)``: ``M_V`` = cells visible from the camera inside its
horizontal field of view, ``Z_max`` = the height of the lowest skimming ray above each hidden cell
inside the field of view (Algorithm 2 computed per cell as a horizon-angle sweep), unbounded
outside it. With ``--cases DIR...`` the cases are read instead from ``p2p synth`` output folders
(``visible.tif``, ``visible_mask.png``, ``zmax.tif``).

Configurations (each a :class:`CompletionConfig`):

* ``a_noise``: noise start at t = 1 (Fig. 15a); ``b_laplacian``: Laplacian-interpolation start
  (Fig. 15b); ``c_no_polish``: ours without polishing (Fig. 15c); ``d_full``: full pipeline (Fig. 15d);
  ``d_full_no_final_projection``: without the final full-resolution breach + clamp;
  ``d_full_fill``: guidance with filling instead of breaching (Fig. 10h);
* ``no_hyd`` / ``no_geo`` / ``no_view``: full pipeline with one guidance term removed, and the same
  without polishing (``*_np``, compare with ``c_no_polish``: the polishing's hard projections hide
  the terms' effect on MDD and OVE);
* ``unguided`` (guidance scale 0, with polishing), ``unguided_no_polish``; ``posthoc_breach`` /
  ``posthoc_fill``: ``unguided_no_polish`` then breached / filled (Fig. 10c/d).

Metrics: MDD (output grid), VVE and OVE (input grid, paper §7.3), the Wasserstein-1 distance
between the visible and occluded distributions of slope (degrees) and Laplacian curvature (times
dx: dimensionless, on the input grid), and the RMSE against the ground truth on occluded cells. By default the known
cells are NOT pasted back (``paste_known=False``, the paper's protocol, so that VVE measures the
drift of the visible cells); ``--paste`` uses the CLI default.

    python benchmarks/ablation.py [--quick] [--configs d_full unguided ...] [--cases DIR ...]

Writes ``benchmarks/results/ablation.json`` and prints per-config means and the target checks.
Needs ``../shared/data/dems`` (says so and skips the DEM cases when missing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMS = ROOT.parent / "shared" / "data" / "dems"


# ----------------------------------------------------------------------------------------------
# synthetic views (local stand-in for `p2p synth`)
# ----------------------------------------------------------------------------------------------
def _viewshed_kernel():
    from numba import njit

    @njit(cache=True)
    def kern(z, cr, cc, eye, yaw, half_fov, max_d, vis, zmax):  # pragma: no cover - numba
        H, W = z.shape
        for r in range(H):
            for c in range(W):
                dy = -(r - cr)  # north
                dx = c - cc  # east
                d = math.sqrt(dx * dx + dy * dy)
                if d < 1e-9:
                    vis[r, c] = True
                    continue
                az = math.atan2(dx, dy)
                da = (az - yaw + math.pi) % (2 * math.pi) - math.pi
                if abs(da) > half_fov or d > max_d:
                    continue
                n = int(d * 2.0)
                m = -1e30
                for s in range(1, n):
                    f = s / (2.0 * d)
                    rr = int(math.floor(cr + (r - cr) * f + 0.5))
                    ccc = int(math.floor(cc + (c - cc) * f + 0.5))
                    if rr == r and ccc == c:
                        continue
                    a = (z[rr, ccc] - eye) / (d * f)
                    if a > m:
                        m = a
                own = (z[r, c] - eye) / d
                if own >= m:
                    vis[r, c] = True
                else:
                    zmax[r, c] = eye + d * m

    return kern


_KERN = None


def synthetic_view(z, cam_rc, eye_height_m, yaw_deg, fov_deg, dx_m, max_dist_cells=1e9):
    """Viewshed + view bound of a camera at cell ``cam_rc``, ``eye_height_m`` above the ground,
    looking at compass azimuth ``yaw_deg`` with horizontal field of view ``fov_deg``.
    Returns ``(z_v with NaN on hidden cells, m_v, z_max)``."""
    global _KERN
    if _KERN is None:
        _KERN = _viewshed_kernel()
    z = np.asarray(z, np.float64)
    cr, cc = cam_rc
    eye = float(z[cr, cc]) + float(eye_height_m)
    vis = np.zeros(z.shape, bool)
    zmax = np.full(z.shape, np.inf)
    # heights in cell units for the angle test: angles are scale free once z is divided by dx
    _KERN(z / dx_m, float(cr), float(cc), eye / dx_m, math.radians(yaw_deg), math.radians(fov_deg / 2),
          float(max_dist_cells), vis, zmax)
    zmax = np.where(np.isfinite(zmax), zmax * dx_m, np.inf)
    return np.where(vis, z, np.nan), vis, zmax


def place_camera(z, side):
    """Highest cell of the border band (10 %) on ``side`` (N/S/E/W) and the yaw looking inwards."""
    n, m = z.shape
    b = max(1, n // 10)
    sl, yaw = {
        "S": ((slice(n - b, n), slice(b, m - b)), 0.0),
        "N": ((slice(0, b), slice(b, m - b)), 180.0),
        "E": ((slice(b, n - b), slice(m - b, m)), 270.0),
        "W": ((slice(b, n - b), slice(0, b)), 90.0),
    }[side]
    sub = z[sl]
    r, c = np.unravel_index(int(np.argmax(sub)), sub.shape)
    return (int(r + sl[0].start), int(c + sl[1].start)), yaw


def crater(n=256, dx=30.0, seed=0):
    """Crater-shaped terrain (paper Fig. 10a): a rim on a gently sloping, rough plain."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:n, 0:n] - (n - 1) / 2) / n
    r = np.hypot(xx, yy)
    z = 400 * np.exp(-((r - 0.22) / 0.06) ** 2) - 250 * np.exp(-(r / 0.18) ** 2) + 300 * xx
    from scipy.ndimage import gaussian_filter

    z = z + gaussian_filter(rng.normal(0, 60, (n, n)), 3)
    return z + 1000.0


def _read_dem(name, dx=None):
    from pixels2peaks.io import read_dem

    d = read_dem(DEMS / name, square="resample", nan="nodata", dx_m=dx)
    return d.z.astype(np.float64), d.dx_m


def _area_downsample(z, k):
    H, W = (z.shape[0] // k) * k, (z.shape[1] // k) * k
    return z[:H, :W].reshape(H // k, k, W // k, k).mean(axis=(1, 3))


def _camera_view(z, dx, seed):
    """Synthetic photo with the project's camera module (``p2p synth``'s random camera)."""
    from pixels2peaks.camera import Heightfield, RandomCameraRanges, random_camera, synthesize

    hf = Heightfield(z, dx)
    cam = random_camera(hf, seed, RandomCameraRanges(width=512, height=384))
    s = synthesize(hf, dx, cam)
    info = dict(position_m=[float(v) for v in cam.position_m], yaw_deg=float(cam.yaw_deg),
                pitch_deg=float(cam.pitch_deg), fov_x_deg=float(cam.fov_x_deg))
    zmax = np.where(np.isfinite(s.z_max), s.z_max, np.inf).astype(np.float64)
    return s.z_visible.astype(np.float64), s.visible_mask.astype(bool), zmax, info


def builtin_cases(size=256, quick=False, views="auto"):
    """Synthetic views over real DEMs (+ the crater). Each: dict(name, z_true, z_v, m_v, z_max, dx).

    ``views``: ``"camera"`` = random photo-like cameras of :mod:`pixels2peaks.camera`
    (``p2p synth``), ``"viewshed"`` = the local horizon-angle stand-in (a camera on the highest
    cell of a border band), ``"auto"`` = camera when that module is available."""
    if views == "auto":
        try:
            import pixels2peaks.camera.synth  # noqa: F401

            views = "camera"
        except ImportError:
            views = "viewshed"
    crops = []
    if DEMS.is_dir():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fr, fr_dx = _read_dem("front_range_srtm3.asc")
        gab, gab_dx = _read_dem("gabilan.bil")
        gab, gab_dx = _area_downsample(gab, 3), gab_dx * 3  # 3 m cells, 286 x 307
        tuj, tuj_dx = _read_dem("bigtujunga.tif")
        # (name, dem, dx, crop row, crop col, status, [(camera side, eye height m, fov deg), ...]);
        # the viewshed camera stands on the highest cell of a border band on that side
        crops = [
            ("front_range_A", fr, fr_dx, 100, 100, "heldout", [("S", 300, 80), ("E", 300, 90)]),
            ("front_range_B", fr, fr_dx, 500, 300, "heldout", [("N", 300, 80), ("W", 300, 90)]),
            ("gabilan", gab, gab_dx, 10, 20, "unseen", [("S", 30, 80), ("W", 30, 80)]),
            ("tujunga", tuj, tuj_dx, 100, 200, "in_training", [("S", 300, 80), ("N", 300, 80)]),
        ]
    else:
        print(f"warning: {DEMS} not found: only the synthetic crater case is run", file=sys.stderr)
    cases = []
    for name, dem, dx, r0, c0, status, cams in crops:
        z = dem[r0 : r0 + size, c0 : c0 + size]
        if z.shape != (size, size) or not np.isfinite(z).all():
            print(f"warning: skipping {name}: crop {z.shape} has nodata or is too small", file=sys.stderr)
            continue
        for k, (side, eye, fov) in enumerate(cams):
            if views == "camera":
                z_v, m_v, z_max, info = _camera_view(z, dx, seed=k)
            else:
                cam, yaw = place_camera(z, side)
                z_v, m_v, z_max = synthetic_view(z, cam, eye, yaw, fov, dx)
                info = dict(cell=[int(cam[0]), int(cam[1])], eye_m=eye, yaw_deg=yaw, fov_deg=fov)
            if m_v.sum() < 16 or m_v.all():
                print(f"warning: skipping {name}/{k}: {int(m_v.sum())} visible cells", file=sys.stderr)
                continue
            cases.append(dict(name=f"{name}_{k}", status=status, z_true=z, z_v=z_v, m_v=m_v, z_max=z_max, dx=dx,
                              camera=info, views=views, visible_fraction=round(float(m_v.mean()), 3)))
    zc = crater(size)
    m_v = np.zeros(zc.shape, bool)
    m_v[:, : size // 2] = True  # the west half is known, the crater's east rim must be synthesized
    cases.append(dict(name="crater", status="synthetic", z_true=zc, z_v=np.where(m_v, zc, np.nan), m_v=m_v,
                      z_max=np.full(zc.shape, np.inf), dx=30.0, views="half", visible_fraction=0.5))
    if quick:
        keep = {"front_range_A_0", "gabilan_0", "tujunga_0", "crater"}
        cases = [c for c in cases if c["name"] in keep]
    return cases


def cases_from_dirs(dirs):
    from PIL import Image

    from pixels2peaks.io import read_dem

    out = []
    for d in dirs:
        d = Path(d)
        vis = read_dem(d / "visible.tif", nan="nodata")
        m_v = np.asarray(Image.open(d / "visible_mask.png").convert("L")) > 127
        zmax = read_dem(d / "zmax.tif", nan="nodata").z.astype(np.float64) if (d / "zmax.tif").is_file() else None
        truth = d / "truth.tif"
        zt = read_dem(truth).z.astype(np.float64) if truth.is_file() else None
        out.append(dict(name=d.name, status="synth_dir", z_true=zt, z_v=vis.z.astype(np.float64), m_v=m_v,
                        z_max=zmax, dx=vis.dx_m))
    return out


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------
def geo_distances(z, m_v, dx):
    """Wasserstein-1 distances between the visible and occluded distributions of slope (degrees)
    and of the Laplacian times dx (dimensionless change of slope per cell, so that means over
    cases with different cell sizes are not dominated by the finest grid)."""
    from scipy.stats import wasserstein_distance

    from pixels2peaks.terrain.attributes import laplacian, slope

    s = slope(z, dx)
    c = laplacian(z, dx) * dx
    inner = np.zeros_like(m_v)
    inner[1:-1, 1:-1] = True
    k, u = m_v & inner, ~m_v & inner
    if k.sum() < 10 or u.sum() < 10:
        return {"slope_w1_deg": float("nan"), "curv_w1": float("nan")}
    return {"slope_w1_deg": float(wasserstein_distance(s[k], s[u])),
            "curv_w1": float(wasserstein_distance(c[k], c[u]))}


def evaluate(z_out, u, case):
    from pixels2peaks.diffusion.completion import view_errors
    from pixels2peaks.diffusion.polishing import block_mean
    from pixels2peaks.terrain.hydrology import mean_depression_depth

    z_in = block_mean(z_out, u) if u > 1 else np.asarray(z_out, np.float64)
    m = {"mdd_m": float(mean_depression_depth(z_out))}
    m.update(view_errors(z_in, case["z_v"], case["m_v"], case["z_max"]))
    m.update(geo_distances(z_in, case["m_v"], case["dx"]))
    if case.get("z_true") is not None:
        occ = ~case["m_v"]
        m["rmse_occluded_m"] = float(np.sqrt(np.mean((z_in - case["z_true"])[occ] ** 2)))
    return m


# ----------------------------------------------------------------------------------------------
# configurations
# ----------------------------------------------------------------------------------------------
def configurations(base):
    g = base.guidance
    nop = dataclasses.replace(base.polish, enabled=False)
    noproj = dataclasses.replace(base.polish, final_projection=False)
    c_np = dataclasses.replace(base, polish=nop)
    return {
        "a_noise": dataclasses.replace(base, init="noise", polish=nop),
        "b_laplacian": dataclasses.replace(base, init="laplacian", polish=nop),
        "c_no_polish": c_np,
        "d_full": base,
        "d_full_no_final_projection": dataclasses.replace(base, polish=noproj),
        "d_full_fill": dataclasses.replace(base, hyd_method="fill"),
        # one guidance term removed: full pipeline, and main diffusion only (no polishing, whose
        # hard projections would otherwise hide the term's effect on MDD / OVE)
        "no_hyd": dataclasses.replace(base, guidance=dataclasses.replace(g, hyd=0.0)),
        "no_geo": dataclasses.replace(base, guidance=dataclasses.replace(g, geo=0.0)),
        "no_view": dataclasses.replace(base, guidance=dataclasses.replace(g, view=0.0)),
        "no_hyd_np": dataclasses.replace(c_np, guidance=dataclasses.replace(g, hyd=0.0)),
        "no_geo_np": dataclasses.replace(c_np, guidance=dataclasses.replace(g, geo=0.0)),
        "no_view_np": dataclasses.replace(c_np, guidance=dataclasses.replace(g, view=0.0)),
        "unguided": dataclasses.replace(base, guidance=dataclasses.replace(g, scale=0.0)),
        "unguided_no_polish": dataclasses.replace(c_np, guidance=dataclasses.replace(g, scale=0.0)),
    }


def run(args):
    import torch

    from pixels2peaks.diffusion.completion import CompletionConfig, complete
    from pixels2peaks.diffusion.model import load_default_model
    from pixels2peaks.terrain.hydrology import breach_depressions, fill_depressions

    torch.set_num_threads(args.threads)
    model = load_default_model()
    base = CompletionConfig(seed=args.seed, steps=args.steps, paste_known=args.paste)
    confs = configurations(base)
    wanted = args.configs or list(confs) + ["posthoc_breach", "posthoc_fill"]
    cases = cases_from_dirs(args.cases) if args.cases else builtin_cases(args.size, args.quick, args.views)
    # the camera module's numba prange kernels share libgomp with torch and reset its thread
    # count to numba's: restore ours (2 threads next to a busy core make small tiles ~25x slower)
    torch.set_num_threads(args.threads)
    for c in cases:
        print(f"case {c['name']}: {c['status']}, dx {c['dx']:.3g} m, visible {c['m_v'].mean():.1%}", flush=True)
    rows = []
    for case in cases:
        unguided_np = None
        for name in wanted:
            if name in ("posthoc_breach", "posthoc_fill"):
                if unguided_np is None:
                    r = complete(case["z_v"], case["m_v"], case["z_max"], case["dx"], confs["unguided_no_polish"],
                                 model=model)
                    unguided_np = r.z.astype(np.float64)
                t0 = time.perf_counter()
                fn = breach_depressions if name == "posthoc_breach" else fill_depressions
                z = np.asarray(fn(unguided_np, "auto"), np.float64)
                met, secs, u = evaluate(z, 1, case), time.perf_counter() - t0, 1
            else:
                t0 = time.perf_counter()
                r = complete(case["z_v"], case["m_v"], case["z_max"], case["dx"], confs[name], model=model)
                secs, u = time.perf_counter() - t0, r.upsample
                met = evaluate(r.z, u, case)
                for k in ("final_projection_mean_abs_m", "final_projection_max_abs_m"):
                    if k in r.metrics:
                        met[k] = r.metrics[k]
                if name == "unguided_no_polish":
                    unguided_np = r.z.astype(np.float64)
            row = {"case": case["name"], "status": case["status"], "config": name, "seconds": round(secs, 2), **met}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows, base


def summarize(rows):
    by = {}
    for r in rows:
        by.setdefault(r["config"], []).append(r)
    keys = ["mdd_m", "vve_m", "ove_m", "slope_w1_deg", "curv_w1", "rmse_occluded_m",
            "final_projection_mean_abs_m", "seconds"]
    summary = {}
    for cfg, rs in by.items():
        summary[cfg] = {k: float(np.nanmean([r.get(k, np.nan) for r in rs])) for k in keys}
        summary[cfg]["n"] = len(rs)
    return summary


def targets(summary):
    """The issue's acceptance targets (means over cases); ``None`` when a config is missing."""
    s = summary
    full = s.get("d_full")

    def cmp(a, b, key, f=1.0, strict=False):
        if a not in s or b not in s:
            return None
        x, y = s[a][key], f * s[b][key]
        return bool(x < y) if strict else bool(x <= y + 1e-12)

    chk = {}
    if full:
        chk["full_mdd_le_0.05m"] = full["mdd_m"] <= 0.05
        chk["full_ove_le_0.5m"] = full["ove_m"] <= 0.5
    if "d_full_no_final_projection" in s:
        chk["full_without_final_projection_mdd_le_0.05m"] = s["d_full_no_final_projection"]["mdd_m"] <= 0.05
    chk["full_ove_le_tenth_of_no_view"] = cmp("d_full", "no_view", "ove_m", 0.1)
    chk["main_ove_le_tenth_of_no_view (no polish)"] = cmp("c_no_polish", "no_view_np", "ove_m", 0.1)
    chk["full_vve_le_1.1x_unguided"] = cmp("d_full", "unguided", "vve_m", 1.1)
    chk["geo_slope_w1_smaller_with_geo"] = cmp("d_full", "no_geo", "slope_w1_deg", strict=True)
    chk["geo_curv_w1_smaller_with_geo"] = cmp("d_full", "no_geo", "curv_w1", strict=True)
    chk["geo_slope_w1_smaller_with_geo (no polish)"] = cmp("c_no_polish", "no_geo_np", "slope_w1_deg", strict=True)
    chk["geo_curv_w1_smaller_with_geo (no polish)"] = cmp("c_no_polish", "no_geo_np", "curv_w1", strict=True)
    chk["hyd_mdd_smaller_with_hyd (no polish)"] = cmp("c_no_polish", "no_hyd_np", "mdd_m", strict=True)
    return {k: v for k, v in chk.items() if v is not None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="crop size in cells of the DEM cases")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="4 cases only")
    ap.add_argument("--views", default="auto", choices=["auto", "camera", "viewshed"],
                    help="synthetic photos from pixels2peaks.camera, or the local viewshed stand-in")
    ap.add_argument("--paste", action="store_true", help="paste known cells back (CLI default)")
    ap.add_argument("--configs", nargs="*", default=None)
    ap.add_argument("--cases", nargs="*", default=None, help="p2p synth output folders to use as cases")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ablation.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows, base = run(args)
    summary = summarize(rows)
    chk = targets(summary)
    print(f"\n{'config':28s} {'MDD m':>8s} {'VVE m':>8s} {'OVE m':>8s} {'slopeW1':>8s} {'curvW1':>9s} "
          f"{'RMSEocc':>8s} {'proj m':>7s} {'s':>6s}")
    for cfg, s in summary.items():
        print(f"{cfg:28s} {s['mdd_m']:8.3f} {s['vve_m']:8.3f} {s['ove_m']:8.3f} {s['slope_w1_deg']:8.3f} "
              f"{s['curv_w1']:9.2e} {s['rmse_occluded_m']:8.2f} {s['final_projection_mean_abs_m']:7.3f} "
              f"{s['seconds']:6.1f}")
    print("\ntargets:", json.dumps(chk, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "config": base.to_dict(), "args": vars(args), "rows": rows, "summary": summary, "targets": chk,
        "machine": platform.platform(), "elapsed_s": round(time.perf_counter() - t0, 1),
    }, indent=1) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
