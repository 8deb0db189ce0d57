"""Evaluation of the perception stage (issue #6): depth, sky segmentation, pitch and Z_V.

Reads ``../shared/data`` (says so and skips a part when it is missing). One torch/numba thread.

(a) **Depth** on ``photos/geopose3k`` (2 photos, ground-truth distance along each ray; PFM, -1 =
    sky, rows bottom-up, negative scale = little-endian; matterhorn's is gzipped): every geometry
    backend's pointmap is turned into the same quantity, ``||p||``, and aligned to the ground truth
    by least-squares scale and shift (``perception.depth_metrics``: in depth as the paper says,
    relative = weighted by 1/d^2, and in disparity), on pixels with ground truth, inside the
    builtin terrain mask and not in the photo's black border. AbsRel and delta < 1.25.
(b) **Sky / terrain IoU** on ``photos/skyseg`` (3 photos, white = terrain) and, as extra rows, the
    geopose3k photos (ground-truth terrain = distance > 0; black borders excluded) per
    segmentation method.
(c) **Synthetic photos** of held-out real DEMs (GLOBE tiles inside the Caucasus box 38-46 N,
    36-52 E that the prior dataset holds out, resampled by ``training.dataset.globe_tiles`` at
    960 m; and ``dems/front_range_srtm3.asc``): random cameras (``camera.random_camera``, kept if
    >= 30 % terrain, >= 200 seen cells and a mean slope >= 3 deg over them), random lighting;
    the true FOV is given (as EXIF would) and the elevation range prior is the true range of the
    visible terrain. Per photo and
    variant: pitch error ``|theta* - theta|``; depth metrics against the render's depth; terrain
    IoU; and the error of ``Z_V`` against the true heightmap.

    Frames for ``Z_V``: the reconstruction's camera (yaw 0 at ``fit.apply(0)``) is put onto the
    true camera: each seen cell centre's offset from the reconstructed camera is rotated by the
    true yaw and added to the true camera's ``(x, y)``; heights are kept (they come from the
    elevation prior). The true height there is the DEM's bilinear surface. Reported: the paper's
    ``VVE = mean over all cells of M_V |Z - Z_V|`` on the reconstruction's grid and the mean per
    seen cell, next to a flat baseline (every seen cell at the mean true height) on the same cells.

    Variants: ``gt-geometry`` (the rendered pointmap in the camera frame + true terrain mask:
    only the search/fit), ``builtin`` (builtin segmentation + geometry), ``classical`` (the
    classical depth), each with the true mean slope as the prior; and ``builtin`` with the builtin
    slope prior. The pitch search corrects the prior by the backend's ``slope_gain`` (the depth
    network's, measured on renders of training terrains; ``builtin + true slope, no slope gain``
    is the uncorrected search). True mean slope = mean DEM slope (central differences at the
    DEM's cell size) over the truly seen cells.

(d) **The whole job** (``--parts completion``, not in the default parts; ~6 min): on the first 12
    photos of (c), ``run_photo`` (builtin backends, true FOV, a 256-cell result) with the true
    slope and range as priors and with the builtin priors, and the completion alone from the true
    ``Z_V`` / ``Z_max`` and camera (grids of at most 512 cells): mean |Z - true| over all cells of
    the completed heightmap, its seen and its occluded cells (frames as in (c)), next to two
    constant maps: the true mean height (an oracle) and the mean height of the seen cells.

Usage: .venv/bin/python benchmarks/perception.py [--photos 24] [--size 512 384]
       [--parts depth sky synth completion] [--completion-photos 12] [--completion-cells 256]
       [--depth-weights STEM] (other depth-network weights than the shipped ones)
Writes benchmarks/results/perception.json (command, date, machine load, tables).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "perception.json"


def _threads() -> None:
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def read_pfm(path: Path) -> np.ndarray:
    """PFM (optionally gzipped) -> float32 ``(H, W[, 3])``, row 0 = top (PFM stores bottom-up)."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    head, rest = raw.split(b"\n", 1)
    dims, rest = rest.split(b"\n", 1)
    scale, data = rest.split(b"\n", 1)
    w, h = (int(v) for v in dims.split())
    ch = 3 if head.strip() == b"PF" else 1
    dt = "<f4" if float(scale) < 0 else ">f4"
    a = np.frombuffer(data[: w * h * ch * 4], dtype=dt).reshape((h, w, ch) if ch == 3 else (h, w))
    return np.flipud(a).astype(np.float32)


def load_rgb(path: Path) -> np.ndarray:
    from pixels2peaks.perception.image import load_image

    return load_image(path).rgb


def geopose_photos() -> list[tuple[str, np.ndarray, np.ndarray]]:
    d = SHARED / "photos" / "geopose3k"
    out = []
    for name, gt in (("alps_town", "alps_town_distance.pfm"), ("matterhorn", "matterhorn_distance.pfm.gz")):
        if (d / gt).is_file():
            out.append((name, load_rgb(d / f"{name}_photo.jpg"), read_pfm(d / gt)))
    return out


def skyseg_photos() -> list[tuple[str, np.ndarray, np.ndarray]]:
    from PIL import Image

    d = SHARED / "photos" / "skyseg"
    out = []
    for p in sorted(d.glob("*_sky_mask.png")):
        name = p.name[: -len("_sky_mask.png")]
        img = d / f"{name}.png"
        if img.is_file():
            out.append((name, load_rgb(img), np.asarray(Image.open(p).convert("L")) > 127))
    return out


# ----------------------------------------------------------------------------------------------
# backends
# ----------------------------------------------------------------------------------------------


def geometry_backends(fov: float | None, terrain: np.ndarray, depth_weights: Path) -> list[tuple[str, object]]:
    """Every available registered geometry backend (plus ``classical`` when ``builtin`` is the
    learned network), built for this image."""
    from pixels2peaks.perception.protocols import registered

    opts = {"terrain": terrain, "depth_weights": depth_weights}
    if fov is not None:
        opts["fov_x_deg"] = fov
    out = []
    for spec in registered("geometry"):
        ok, _ = spec.available(opts)
        if ok:
            out.append((spec.name, spec.factory(opts)))
    return out


def segmenters(depth_weights: Path) -> list[tuple[str, object]]:
    from pixels2peaks.perception.builtin import horizon_rows, sky_mask
    from pixels2peaks.perception.protocols import registered

    out = []
    for spec in registered("segmentation"):
        ok, _ = spec.available({})
        if ok:
            b = spec.factory({})
            out.append((spec.name, b.segment))

    def threshold(img):  # the session-1 heuristic (before the skyline DP)
        hz = horizon_rows(sky_mask(img))
        return np.arange(img.shape[0])[:, None] >= hz[None, :]

    out.append(("threshold (old builtin)", threshold))
    from pixels2peaks.perception.depth_net import load_depth_net, predict_log_depth, weights_available

    if weights_available(depth_weights):
        net = load_depth_net(depth_weights)[0]
        out.append(("depth-net sky head", lambda img: predict_log_depth(img, net)[1] < 0.5))
    return out


def iou(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    from pixels2peaks.evaluation.view_metrics import mask_iou

    return float(mask_iou(a & valid, b & valid))


# ----------------------------------------------------------------------------------------------
# (a) depth and (b) sky on real photos
# ----------------------------------------------------------------------------------------------


def part_depth(depth_weights: Path) -> list[dict]:
    from pixels2peaks.perception.builtin import SkySegmentation
    from pixels2peaks.perception.depth_metrics import depth_errors
    from pixels2peaks.perception.skyline import border_void

    rows = []
    for name, rgb, gt in geopose_photos():
        terrain = SkySegmentation().segment(rgb)
        valid = (gt > 0) & terrain & ~border_void(rgb)
        for bname, backend in geometry_backends(None, terrain, depth_weights):
            t0 = time.perf_counter()
            g = backend.estimate(rgb)
            sec = time.perf_counter() - t0
            dist = np.linalg.norm(g.points.astype(np.float64), axis=2)
            e = depth_errors(dist, gt, valid & g.valid)
            rows.append({"photo": name, "backend": bname, "source": g.source, "seconds": round(sec, 2),
                         "pixels": int(e["pixels"]["count"]),
                         **{f"{sp}": e[sp] for sp in ("depth", "relative", "disparity")}})
            print(f"  depth {name:12s} {bname:14s} AbsRel depth {e['depth']['abs_rel']:.3f} "
                  f"rel {e['relative']['abs_rel']:.3f} disp {e['disparity']['abs_rel']:.3f} | "
                  f"d<1.25 {e['depth']['delta_1.25']:.3f} / {e['relative']['delta_1.25']:.3f} / "
                  f"{e['disparity']['delta_1.25']:.3f}", flush=True)
    return rows


def part_sky(depth_weights: Path) -> list[dict]:
    from pixels2peaks.perception.skyline import border_void

    cases = [(n, rgb, m, "skyseg") for n, rgb, m in skyseg_photos()]
    cases += [(n, rgb, gt > 0, "geopose3k") for n, rgb, gt in geopose_photos()]
    rows = []
    for name, rgb, truth, setname in cases:
        valid = ~border_void(rgb)
        for sname, seg in segmenters(depth_weights):
            t0 = time.perf_counter()
            m = np.asarray(seg(rgb), bool)
            sec = time.perf_counter() - t0
            rows.append({"set": setname, "photo": name, "method": sname, "terrain_iou": iou(m, truth, valid),
                         "sky_iou": iou(~m, ~truth, valid), "seconds": round(sec, 2)})
            print(f"  sky {setname:9s} {name[:28]:28s} {sname:24s} terrain IoU {rows[-1]['terrain_iou']:.3f} "
                  f"sky IoU {rows[-1]['sky_iou']:.3f} ({sec:.1f} s)", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------
# (c) synthetic photos of held-out DEMs
# ----------------------------------------------------------------------------------------------


def heldout_terrains(max_globe: int = 12) -> list[tuple[str, np.ndarray, float]]:
    """Held-out GLOBE tiles (960 m, relief >= 1000 m, curated) and the Front Range DEM."""
    out = []
    try:
        from pixels2peaks.training.dataset import BuildLog, CurationConfig, curate_tile, globe_tiles

        cfg = CurationConfig(dx_levels_m=(960.0,))
        it, _ = globe_tiles(cfg, BuildLog())
        for t in it:
            if t.split != "val" or curate_tile(t.z, t.dx_m, cfg) is not None:
                continue
            lo, hi = np.percentile(t.z, [2, 98])
            if hi - lo >= 1000.0:
                lat, lon = t.prov["centre_lat_lon"]
                out.append((f"GLOBE {lat:.2f}N {lon:.2f}E", t.z, t.dx_m))
            if len(out) >= max_globe:
                break
    except Exception as exc:  # noqa: BLE001 - the benchmark says what is missing and goes on
        print(f"  (GLOBE held-out tiles unavailable: {exc})")
    fr = SHARED / "dems" / "front_range_srtm3.asc"
    if fr.is_file():
        from pixels2peaks.io import read_dem

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dem = read_dem(fr, square="resample", nan="nodata")
        out.append(("front_range_srtm3", dem.z, dem.dx_m))
    else:
        print(f"  ({fr} missing)")
    return out


def true_mean_slope(z: np.ndarray, dx: float, seen: np.ndarray) -> float:
    from pixels2peaks.training.perception_depth import seen_mean_slope_deg

    return seen_mean_slope_deg(z, dx, seen)


def synthetic_photos(n: int, size: tuple[int, int], min_slope_deg: float = 3.0):
    """Yield ``(label, z, dx, SynthResult)``: alternately GLOBE tiles and Front Range; a view is
    kept if >= 30 % of the pixels are terrain, >= 200 cells are seen and the seen cells' mean
    slope is >= ``min_slope_deg`` (a mountain view: Eq. 1 needs a slope to match)."""
    from pixels2peaks.camera import Heightfield, random_camera, random_shading, synthesize
    from pixels2peaks.training.perception_depth import CalibrationConfig

    terrains = heldout_terrains()
    if not terrains:
        return
    globe = [t for t in terrains if t[0].startswith("GLOBE")]
    other = [t for t in terrains if not t[0].startswith("GLOBE")]
    ranges = replace(CalibrationConfig().camera, width=size[0], height=size[1])  # the slope gain's cameras
    made, seed = 0, 1000
    while made < n and seed < 1000 + 20 * n:
        pool = globe if (made % 2 == 0 and globe) or not other else other
        name, z, dx = pool[(made // 2) % len(pool)]
        seed += 1
        hf = Heightfield(z, dx)
        cam = random_camera(hf, seed, ranges)
        try:
            res = synthesize(hf, dx, cam, shading=random_shading(seed))
        except Exception:  # noqa: BLE001 - camera too low for Z_max etc.: draw another
            continue
        if (res.render.hit.mean() < 0.3 or res.visible_mask.sum() < 200
                or true_mean_slope(z, dx, res.visible_mask) < min_slope_deg):
            continue
        made += 1
        yield f"{name} seed {seed}", z, dx, res


def true_heights(shape: tuple[int, int], dx_m: float, camera, true_cam, z_true: np.ndarray, dx_true: float,
                 cells: np.ndarray | None = None) -> np.ndarray:
    """True terrain height (m) under the centre of each cell of a reconstruction grid whose camera
    is ``camera`` (frames: module doc); NaN outside the true DEM and outside ``cells`` (default all)."""
    from pixels2peaks.camera import surface_height

    h, w = shape
    r, c = np.nonzero(np.ones(shape, bool) if cells is None else cells)
    x = (c + 0.5) * dx_m - camera.position_m[0]
    y = (h - r - 0.5) * dx_m - camera.position_m[1]
    yaw = math.radians(true_cam.yaw_deg)
    xt = true_cam.position_m[0] + x * math.cos(yaw) + y * math.sin(yaw)
    yt = true_cam.position_m[1] - x * math.sin(yaw) + y * math.cos(yaw)
    out = np.full(shape, np.nan)
    out[r, c] = surface_height(z_true, dx_true, xt, yt)
    return out


def zv_errors(vh, true_cam, z_true: np.ndarray, dx_true: float) -> dict:
    """Error of the reconstruction's ``Z_V`` against the true heightmap (frames: module doc)."""
    h, w = vh.z.shape
    n_seen = int(vh.mask.sum())
    zt = true_heights((h, w), vh.dx_m, vh.camera, true_cam, z_true, dx_true, vh.mask)
    inside = np.isfinite(zt)
    err = np.abs(zt[inside] - vh.z[inside].astype(np.float64))
    flat = np.abs(zt[inside] - np.mean(zt[inside])) if inside.any() else np.array([np.nan])
    return {
        "vve_m": float(err.sum() / (h * w)),
        "mean_abs_per_seen_cell_m": float(err.mean()) if err.size else float("nan"),
        "flat_baseline_per_seen_cell_m": float(flat.mean()),
        "seen_cells": n_seen,
        "outside_true_grid": float(1.0 - inside.sum() / n_seen) if n_seen else float("nan"),
    }


def part_synth(n: int, size: tuple[int, int], depth_weights: Path) -> list[dict]:
    from pixels2peaks.perception.builtin import ClassicalGeometry, DefaultPriors, SkySegmentation
    from pixels2peaks.perception.depth_metrics import depth_errors
    from pixels2peaks.perception.geometry import ReconstructOptions, clean_points, reconstruct
    from pixels2peaks.perception.protocols import select

    rows = []
    no_clean = ReconstructOptions(clean=None)
    for label, z, dx, res in synthetic_photos(n, size):
        cam = res.camera
        rgb = res.image
        hit = res.render.hit
        zr = (float(np.nanmin(res.z_visible)), float(np.nanmax(res.z_visible)))
        true_slope = true_mean_slope(z, dx, res.visible_mask)
        row = {"photo": label, "pitch_true_deg": cam.pitch_deg, "fov_x_deg": cam.fov_x_deg,
               "terrain_fraction": float(hit.mean()), "true_slope_deg": true_slope, "z_range_m": zr,
               "variants": {}}
        t0 = time.perf_counter()
        terrain = SkySegmentation().segment(rgb)
        row["segmentation_s"] = round(time.perf_counter() - t0, 2)
        row["terrain_iou"] = float((terrain & hit).sum() / max((terrain | hit).sum(), 1))
        builtin_prior = DefaultPriors(fov_x_deg=cam.fov_x_deg).estimate(rgb, terrain).mean_slope_deg
        pc_true = cam.world_to_camera(res.render.pointmap.astype(np.float64))
        geos = [("gt-geometry", pc_true, hit, 1.0)]
        opts = {"fov_x_deg": cam.fov_x_deg, "terrain": terrain, "depth_weights": depth_weights}
        b = select("geometry", "builtin", opts)
        gb = b.backend.estimate(rgb)
        geos.append(("builtin", gb.points, gb.valid & terrain, gb.slope_gain))
        if "learned" in gb.source:
            gc = ClassicalGeometry(fov_x_deg=cam.fov_x_deg).estimate(rgb, terrain)
            geos.append(("classical", gc.points, gc.valid & terrain, gc.slope_gain))
        for gname, pts, valid, gain in geos:
            if gname != "gt-geometry":
                e = depth_errors(np.linalg.norm(pts.astype(np.float64), axis=2), res.render.depth, valid & hit)
                row["variants"][f"{gname} depth"] = {sp: e[sp] for sp in ("depth", "relative", "disparity")}
            m = valid & np.isfinite(pts).all(axis=2) & (pts[..., 2] > 0)
            p = pts[m].astype(np.float64)
            keep = clean_points(p) if gname != "gt-geometry" else np.ones(len(p), bool)
            priors = [("true slope", true_slope, "rising", gain)]
            if gname != "classical":
                priors.append(("true slope, plain argmin", true_slope, "any", gain))
            if gname == "builtin":
                priors.append(("builtin prior", builtin_prior, "rising", gain))
                if gain != 1.0:
                    priors.append(("true slope, no slope gain", true_slope, "rising", 1.0))
            for pname, s, branch, g in priors:
                t0 = time.perf_counter()
                vh = reconstruct(p[keep][:, None, :], np.ones((int(keep.sum()), 1), bool), cam.fov_x_deg, s, zr,
                                 replace(no_clean, pitch_branch=branch), slope_gain=g)
                sec = time.perf_counter() - t0
                key = f"{gname} + {pname}"
                row["variants"][key] = {"pitch_deg": vh.camera.pitch_deg,
                                        "pitch_error_deg": abs(vh.camera.pitch_deg - cam.pitch_deg),
                                        "prior_slope_deg": s, "slope_gain": g, "seconds": round(sec, 2),
                                        **zv_errors(vh, cam, z, dx)}
        row["variants"]["pitch 0 baseline"] = {"pitch_deg": 0.0, "pitch_error_deg": abs(cam.pitch_deg)}
        rows.append(row)
        v = row["variants"]
        print(f"  synth {label[:34]:34s} pitch {cam.pitch_deg:6.1f} slope {true_slope:5.1f} IoU {row['terrain_iou']:.3f} | err "
              + " ".join(f"{k.replace(' + ', '+')}: {v[k]['pitch_error_deg']:.1f}" for k in v if "pitch_error_deg" in v[k])
              + (f" | AbsRel(rel) {v['builtin depth']['relative']['abs_rel']:.3f}" if "builtin depth" in v else ""),
              flush=True)
    return rows


def _completion_errors(z: np.ndarray, zt: np.ndarray, known: np.ndarray, parts: tuple[str, ...]) -> dict:
    """Per part (``all``, ``seen``, ``occluded`` cells): mean |Z - true| and the two constant maps
    on the same cells (true heights ``zt``, NaN = outside the true DEM, left out): the true mean
    height there (an oracle) and the mean height of the seen cells of ``z``."""
    fill = float(np.mean(z[known]))
    masks = {"all": np.ones(z.shape, bool), "seen": known, "occluded": ~known}
    out = {}
    for part in parts:
        m = masks[part] & np.isfinite(zt)
        t = zt[m]
        out[part] = {"mean_abs_m": float(np.abs(z[m] - t).mean()), "flat_baseline_m": float(np.abs(t - t.mean()).mean()),
                     "seen_mean_baseline_m": float(np.abs(t - fill).mean()), "cells": int(masks[part].sum()),
                     "outside_true_grid": float(1.0 - m.sum() / max(int(masks[part].sum()), 1))}
    return out


def part_completion(n: int, size: tuple[int, int], cells: int, max_truth_cells: int = 512) -> list[dict]:
    """(d) The whole job on the first ``n`` photos of (c): ``run_photo`` (builtin backends, the
    true FOV, ``cells``-cell result) with the true slope and range as priors and with the builtin
    priors; and, for ground-truth grids of at most ``max_truth_cells`` a side, the completion of the
    true ``Z_V`` / ``Z_max`` seen from the true camera (perception left out). Errors of the completed
    heightmap against the true terrain over all its cells, its seen and its occluded cells, next
    to two constant maps on the same cells (:func:`_completion_errors`)."""
    from pixels2peaks.camera import surface_height
    from pixels2peaks.diffusion.completion import CompletionConfig, complete
    from pixels2peaks.diffusion.model import load_default_model
    from pixels2peaks.perception.pipeline import VisibleOptions
    from pixels2peaks.pipeline.run import RunConfig, run_photo

    model = load_default_model()
    rows = []
    for label, z, dx, res in synthetic_photos(n, size):
        cam = res.camera
        zr = (float(np.nanmin(res.z_visible)), float(np.nanmax(res.z_visible)))
        slope = true_mean_slope(z, dx, res.visible_mask)
        row = {"photo": label, "variants": {}}
        priors = {"builtin + true priors": {"mean_slope_deg": slope, "elevation_range_m": zr}, "builtin + builtin priors": {}}
        for name, given in priors.items():
            t0 = time.perf_counter()
            vo = VisibleOptions(geometry="builtin", segmentation="builtin", priors="builtin",
                                fov_x_deg=cam.fov_x_deg, **given)
            r = run_photo(res.image, RunConfig(size_cells=cells, perception=vo), model=model)
            zt = true_heights(r.z.shape, r.dx_m, r.visible.camera, cam, z, dx)
            row["variants"][name] = _completion_errors(r.z, zt, r.known, ("all", "seen", "occluded"))
            row["variants"][name]["seconds"] = round(time.perf_counter() - t0, 1)
        if max(z.shape) <= max_truth_cells:
            t0 = time.perf_counter()
            c = complete(np.nan_to_num(res.z_visible), res.visible_mask, res.z_max, res.dx_m, CompletionConfig(), model=model)
            hh, ww = c.z.shape
            rr, cc = np.mgrid[0:hh, 0:ww]  # the completion's grid is the true DEM's (finer by the polish)
            zt = surface_height(z, dx, (cc + 0.5) * c.dx_m, (hh - rr - 0.5) * c.dx_m)
            row["variants"]["true Z_V (completion only)"] = {
                **_completion_errors(c.z, zt, c.known, ("all", "occluded")),
                "upsample": int(hh // z.shape[0]), "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(f"  completion {label[:34]:34s} " + " | ".join(
            f"{k}: all {v['all']['mean_abs_m']:.0f} m (flat {v['all']['flat_baseline_m']:.0f}, "
            f"seen mean {v['all']['seen_mean_baseline_m']:.0f})"
            for k, v in row["variants"].items()), flush=True)
    return rows


# ----------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------


def _median(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(xs) if xs else float("nan")


def summarise(depth_rows, sky_rows, synth_rows, completion_rows=()) -> dict:
    s: dict = {}
    if depth_rows:
        by = {}
        for r in depth_rows:
            by.setdefault(r["backend"], []).append(r)
        s["depth_geopose3k_mean"] = {
            b: {sp: {k: float(np.mean([r[sp][k] for r in rs])) for k in ("abs_rel", "delta_1.25")}
                for sp in ("depth", "relative", "disparity")} for b, rs in by.items()}
    if sky_rows:
        by = {}
        for r in sky_rows:
            if r["set"] == "skyseg":
                by.setdefault(r["method"], []).append(r["terrain_iou"])
        s["skyseg_terrain_iou_mean"] = {m: float(np.mean(v)) for m, v in by.items()}
        s["skyseg_terrain_iou_min"] = {m: float(np.min(v)) for m, v in by.items()}
    if synth_rows:
        keys = sorted({k for r in synth_rows for k in r["variants"] if "pitch_error_deg" in r["variants"][k]})
        s["synthetic_photos"] = len(synth_rows)
        s["pitch_error_median_deg"] = {k: _median([r["variants"][k]["pitch_error_deg"] for r in synth_rows
                                                   if k in r["variants"]]) for k in keys}
        zk = [k for k in keys if k != "pitch 0 baseline"]
        s["zv_mean_abs_per_seen_cell_median_m"] = {k: _median([r["variants"][k]["mean_abs_per_seen_cell_m"]
                                                              for r in synth_rows if k in r["variants"]]) for k in zk}
        s["vve_median_m"] = {k: _median([r["variants"][k]["vve_m"] for r in synth_rows if k in r["variants"]])
                             for k in zk}
        s["flat_baseline_per_seen_cell_median_m"] = _median(
            [r["variants"]["gt-geometry + true slope"]["flat_baseline_per_seen_cell_m"] for r in synth_rows])
        s["synthetic_terrain_iou_mean"] = float(np.mean([r["terrain_iou"] for r in synth_rows]))
        dk = sorted({k for r in synth_rows for k in r["variants"] if k.endswith(" depth")})
        s["synthetic_depth_median"] = {k: {sp: {m: _median([r["variants"][k][sp][m] for r in synth_rows])
                                                for m in ("abs_rel", "delta_1.25")}
                                           for sp in ("depth", "relative", "disparity")} for k in dk}
    if completion_rows:
        keys = sorted({k for r in completion_rows for k in r["variants"]})
        s["completion_photos"] = len(completion_rows)
        s["completion_median_m"] = {
            k: {part: {m: _median([r["variants"][k][part][m] for r in completion_rows if k in r["variants"]])
                       for m in ("mean_abs_m", "flat_baseline_m", "seen_mean_baseline_m")}
                for part in ("all", "seen", "occluded") if part in next(r["variants"][k] for r in completion_rows
                                                                         if k in r["variants"])}
            for k in keys}
        for base in ("flat_baseline_m", "seen_mean_baseline_m"):
            s[f"completion_beats_{base[:-2]}"] = {
                k: f"{sum(r['variants'][k]['all']['mean_abs_m'] < r['variants'][k]['all'][base] for r in completion_rows if k in r['variants'])}"
                   f"/{sum(k in r['variants'] for r in completion_rows)}" for k in keys}
    return s


def main(argv: list[str] | None = None) -> None:
    from pixels2peaks.perception.depth_net import DEFAULT_WEIGHTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 384))
    ap.add_argument("--parts", nargs="+", default=["depth", "sky", "synth"],
                    choices=["depth", "sky", "synth", "completion"])
    ap.add_argument("--completion-photos", type=int, default=12)
    ap.add_argument("--completion-cells", type=int, default=256, help="side of the p2p run result (cells)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--depth-weights", type=Path, default=DEFAULT_WEIGHTS,
                    help="stem of depth-network weights to evaluate instead of the shipped ones")
    a = ap.parse_args(argv)
    _threads()
    if not SHARED.is_dir():
        print(f"{SHARED} not found: the perception benchmark needs ../shared/data")
        sys.exit(1)
    t0 = time.time()
    load0 = os.getloadavg()
    depth_rows = part_depth(a.depth_weights) if "depth" in a.parts else []
    sky_rows = part_sky(a.depth_weights) if "sky" in a.parts else []
    synth_rows = part_synth(a.photos, tuple(a.size), a.depth_weights) if "synth" in a.parts else []
    completion_rows = (part_completion(a.completion_photos, tuple(a.size), a.completion_cells)
                       if "completion" in a.parts else [])
    summary = summarise(depth_rows, sky_rows, synth_rows, completion_rows)
    print(json.dumps(summary, indent=1))
    from pixels2peaks.perception.depth_net import weights_available

    card = None
    if weights_available(a.depth_weights):
        c = json.loads(a.depth_weights.with_suffix(".json").read_text())
        card = {"weights": str(a.depth_weights), **{k: c.get(k) for k in ("parameters", "steps", "minutes", "final_val")}}
    out = {
        "command": "python benchmarks/perception.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "threads": 1,
                    "loadavg_start": load0, "loadavg_end": os.getloadavg()},
        "seconds": round(time.time() - t0, 1),
        "depth_net": card,
        "summary": summary,
        "depth": depth_rows,
        "sky": sky_rows,
        "synthetic": synth_rows,
        "completion": completion_rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1, default=float) + "\n")
    tmp.replace(a.out)
    print(f"wrote {a.out} ({out['seconds']} s)")


if __name__ == "__main__":
    main()
