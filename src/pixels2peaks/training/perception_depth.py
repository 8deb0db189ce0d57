"""Training data and training loop of the builtin learned depth/sky network
(:mod:`pixels2peaks.perception.depth_net`).

Data: synthetic photos (:func:`pixels2peaks.camera.render_image`) of the **training** tiles of a
prior dataset (``p2p dataset build globe shared -o DIR``: GLOBE outside the held-out Caucasus box,
the shared DEMs except ``front_range_srtm3.asc``), random cameras (:func:`random_camera`) and
randomised lighting, haze, snow and exposure. Each example stores the image, ``ln`` of the
distance along the pixel-centre ray (metres, NaN = sky) and the terrain mask.

Training: scale-invariant log-depth loss (Eigen et al. 2014, fully shift-invariant in ``ln d``)
plus a multi-scale gradient-matching term on ``ln d``, and a binary cross-entropy on the sky
mask; photometric augmentation (colour/gamma/contrast jitter, blur, noise) and random
aspect-changing crops, so the network sees real photos' aspect ratios. The saved weights are an
exponential moving average (``TrainConfig.ema_decay``).

Slope calibration: the network's pointmaps show terrain flatter than it is (it smooths depth
across steep faces), which biases the pitch search (Eq. 1). :func:`measure_slope_gain` renders
photos of training tiles with known cameras and measures ``g = median tan(s_points) / tan(s_true)``
at the true pitch; the card's ``slope_gain`` makes the search match ``atan(g tan s_prior)``.

Usage::

    python -m pixels2peaks.training.perception_depth render runs/data/prior_v1 -o runs/perception/data.npz
    python -m pixels2peaks.training.perception_depth render runs/data/prior_v1 --foreground \\
        -o runs/perception/foreground_1.npz --examples 1000 --seed 1   # cameras on the ground
    # --trees 0.5: half of the photos get trees (pixels2peaks.training.trees)
    python -m pixels2peaks.training.perception_depth train runs/perception/data.npz \\
        -o src/pixels2peaks/weights/perception/depth_net --minutes 25
    python -m pixels2peaks.training.perception_depth calibrate runs/data/prior_v1 \\
        --weights src/pixels2peaks/weights/perception/depth_net
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from pixels2peaks.camera.synth import RandomCameraRanges
from pixels2peaks.errors import InputError
from pixels2peaks.training.trees import TreeConfig, add_trees

__all__ = ["RenderConfig", "FOREGROUND", "TrainConfig", "CalibrationConfig", "render_examples", "train",
           "calibration_terrains", "seen_mean_slope_deg", "measure_slope_gain", "write_slope_gain", "main"]


_TRAINING_CAMERAS = RandomCameraRanges(width=192, height=144, fov_x_deg=(35.0, 85.0), pitch_deg=(-20.0, 12.0),
                                       agl_m=(2.0, 40.0), agl_cells=(0.3, 2.0), candidates=16)


@dataclass(frozen=True)
class RenderConfig:
    """Synthetic training photos (distances in metres): ``camera`` = the cameras and photo size
    (pixels, degrees) of :func:`random_camera`."""

    examples: int = 2400
    camera: RandomCameraRanges = _TRAINING_CAMERAS
    antialias: int = 2
    haze_m: tuple[float, float] = (8000.0, 120000.0)  # log-uniform; else the renderer's auto haze
    auto_haze_fraction: float = 0.6
    min_relief_m: float = 1000.0  # tiles of coarse levels (dx >= 500 m) need this relief (p98 - p2)
    fine_fraction: float = 0.5  # fraction of examples from fine levels (dx < 500 m)
    #: "tiles": the dataset's 256-cell tiles; "whole": :func:`calibration_terrains` (whole training
    #: rasters + coarse GLOBE tiles: long views, for photographers standing on the ground)
    terrains: Literal["tiles", "whole"] = "tiles"
    #: share of the photos that get trees (:func:`pixels2peaks.training.trees.add_trees`; drawn
    #: from a generator of their own, so the views are the same with or without trees)
    trees_fraction: float = 0.0
    trees: TreeConfig = TreeConfig()
    seed: int = 0


FOREGROUND = RenderConfig(camera=replace(_TRAINING_CAMERAS, agl_m=(1.5, 30.0), agl_cells=(0.0, 0.0), clearance_cells=0,
                                         near_weight=0.0, rise_weight=0.5, candidates=32, pitch_deg=(-15.0, 8.0)),
                          terrains="whole")
"""The ``render --foreground`` preset: cameras 1.5-30 m above the ground of whole landscapes, so
the bottom of the frame is tens of metres away and the ranges tens of kilometres (real photos;
the default cameras stand 0.3-2 cells up, so their nearest ground is hundreds of metres to
kilometres away and the network learned a compressed near-far ratio)."""


def _tiles(data_dir: str | Path, cfg: RenderConfig) -> tuple[list[tuple[np.ndarray, float]], np.ndarray]:
    """Training tiles and their sampling probabilities: ``fine_fraction`` of the mass on levels
    with ``dx < 500 m``, the rest on coarse tiles with at least ``min_relief_m`` of relief."""
    from pixels2peaks.training.data import TileSet

    ts = TileSet(data_dir, "train")
    tiles, fine = [], []
    for d in ts.levels:
        for t in ts.tiles[d]:
            lo, hi = np.percentile(t, [2, 98])
            if d >= 500.0 and hi - lo < cfg.min_relief_m:
                continue
            tiles.append((t, float(d)))
            fine.append(d < 500.0)
    fine = np.array(fine)
    if not fine.any() or fine.all():
        return tiles, np.full(len(tiles), 1.0 / max(len(tiles), 1))
    p = np.where(fine, cfg.fine_fraction / fine.sum(), (1.0 - cfg.fine_fraction) / (~fine).sum())
    return tiles, p


def render_examples(data_dir: str | Path, out: str | Path, cfg: RenderConfig = RenderConfig(),
                    *, progress: bool = True) -> Path:
    """Render ``cfg.examples`` synthetic photos of training tiles into ``out`` (``.npz``:
    ``image`` uint8 ``(N, h, w, 3)``, ``log_depth`` float16 ``(N, h, w)`` = ln(ray distance in
    metres), NaN for sky, ``terrain`` bool, ``meta`` JSON strings)."""
    from pixels2peaks.camera import Heightfield, random_camera, random_shading, render_image
    from pixels2peaks.camera.shading import sun_direction

    if not 0.0 <= cfg.trees_fraction <= 1.0:  # before any reading
        raise InputError(f"trees fraction must be in [0, 1], got {cfg.trees_fraction}")
    if cfg.terrains == "whole":
        tiles, probs = calibration_terrains(data_dir, CalibrationConfig(min_relief_m=cfg.min_relief_m,
                                                                       fine_fraction=cfg.fine_fraction))
    elif cfg.terrains == "tiles":
        tiles, probs = _tiles(data_dir, cfg)
    else:
        raise InputError(f"unknown terrains {cfg.terrains!r}; choose tiles or whole")
    if not tiles:
        raise InputError(f"no training tiles in {data_dir}")
    rng = np.random.default_rng(cfg.seed)
    n, h, w = cfg.examples, cfg.camera.height, cfg.camera.width
    images = np.zeros((n, h, w, 3), np.uint8)
    logd = np.full((n, h, w), np.nan, np.float16)
    terrain = np.zeros((n, h, w), bool)
    meta: list[str] = []
    t0 = time.time()
    i = 0
    while i < n:
        k = int(rng.choice(len(tiles), p=probs))
        z, dx = tiles[k]
        z = np.rot90(z, int(rng.integers(4))).copy()
        seed = int(rng.integers(2**31))
        try:
            hf = Heightfield(z, dx)
            cam = random_camera(hf, seed, cfg.camera)
            sh = random_shading(seed)
            haze = None if rng.random() < cfg.auto_haze_fraction else float(math.exp(rng.uniform(*np.log(cfg.haze_m))))
            sh = replace(sh, haze_m=haze, snow=float(rng.uniform(0.0, 1.0)),
                         exposure=float(rng.uniform(1.0, 1.9)))
            img, res = render_image(hf, cam, sh, antialias=cfg.antialias)
        except InputError:
            continue
        if res.hit.mean() < 0.2:
            continue
        hit, depth = res.hit, res.depth
        trees = np.random.default_rng([seed, 7])
        treed = bool(trees.random() < cfg.trees_fraction)
        if treed:
            img, depth, hit = add_trees(img, res, sun_direction(sh), trees, cfg.trees)
        images[i] = img
        d = np.where(hit, depth, np.nan)
        logd[i] = np.log(np.maximum(d, 1e-3)).astype(np.float16)
        terrain[i] = hit
        meta.append(json.dumps({"tile": k, "dx_m": dx, "seed": seed, "camera": cam.to_dict(),
                                "haze_m": haze, **({"trees": True} if treed else {})}))
        i += 1
        if progress and (i % 50 == 0 or i == n):
            el = time.time() - t0
            print(f"rendered {i}/{n} ({el:.0f} s, {el / i:.2f} s each)", flush=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, image=images, log_depth=logd, terrain=terrain, meta=np.array(meta),
             config=json.dumps(asdict(cfg)), source=str(data_dir))
    tmp.replace(out)
    return out


# ----------------------------------------------------------------------------------------------
# slope calibration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationConfig:
    """Photos for :func:`measure_slope_gain` (pixels, degrees): the cameras of
    ``benchmarks/perception.py`` (``random_camera`` defaults, 0.3-2 cells above ground), views
    kept if >= 30 % terrain, >= 200 seen cells and a seen mean slope >= ``min_slope_deg``."""

    photos: int = 32
    camera: RandomCameraRanges = RandomCameraRanges(width=512, height=384, agl_cells=(0.3, 2.0), candidates=24)
    min_relief_m: float = 1000.0
    fine_fraction: float = 0.5
    min_slope_deg: float = 3.0
    seed: int = 0


def calibration_terrains(data_dir: str | Path, cfg: CalibrationConfig = CalibrationConfig()
                         ) -> tuple[list[tuple[np.ndarray, float]], np.ndarray]:
    """Training terrains for :func:`measure_slope_gain` and their probabilities: the coarse
    training tiles of the dataset (``dx >= 500 m``, i.e. 250-500 km GLOBE windows, relief >=
    ``cfg.min_relief_m``) and, for the fine levels, the **whole** training rasters of its
    ``shared`` source (the manifest's held-out file excluded; voids filled with the nearest valid height): a
    photo sees a whole landscape, not the world's edge a few km away in a 256-cell tile.
    Half the mass (``cfg.fine_fraction``) on the whole rasters when there are any."""
    import warnings

    from pixels2peaks.io import read_dem
    from pixels2peaks.perception.depth_net import fill_void
    from pixels2peaks.training.data import read_manifest

    coarse, _ = _tiles(data_dir, RenderConfig(min_relief_m=cfg.min_relief_m, fine_fraction=0.0))
    coarse = [t for t in coarse if t[1] >= 500.0]
    man = read_manifest(data_dir)
    folder = man.get("sources", {}).get("shared")
    held = man.get("heldout_regions", {}).get("shared", {}).get("file")
    whole: list[tuple[np.ndarray, float]] = []
    if folder and Path(folder).is_dir():
        for f in sorted(Path(folder).iterdir()):
            if f.name == held or f.suffix.lower() not in (".tif", ".tiff", ".asc", ".bil"):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dem = read_dem(f, square="resample", nan="nodata")
            except InputError:
                continue
            z = np.asarray(dem.z, np.float64)
            if np.isfinite(z).mean() < 0.3 or np.nanpercentile(z, 98) - np.nanpercentile(z, 2) < 200.0:
                continue  # mostly void or low relief (a lidar mesa): no mountain photo to take
            whole.append((fill_void(z, ~np.isfinite(z)), float(dem.dx_m)))  # no walls at void edges
    tiles = whole + coarse
    if not whole or not coarse:
        return tiles, np.full(len(tiles), 1.0 / max(len(tiles), 1))
    p = np.array([cfg.fine_fraction / len(whole)] * len(whole) + [(1.0 - cfg.fine_fraction) / len(coarse)] * len(coarse))
    return tiles, p


def seen_mean_slope_deg(z: np.ndarray, dx_m: float, seen: np.ndarray) -> float:
    """Mean slope (degrees, central differences at ``dx_m``) of heightmap ``z`` over the bool
    mask ``seen``; NaN heights are filled with the mean first."""
    from pixels2peaks.terrain.attributes import slope

    z = np.asarray(z, dtype=np.float64)
    s = np.asarray(slope(np.where(np.isfinite(z), z, np.nanmean(z)), dx_m, unit="deg"))
    return float(s[np.asarray(seen, dtype=bool)].mean())


def measure_slope_gain(tiles: list[tuple[np.ndarray, float]], probs: np.ndarray, geometry: Any,
                       cfg: CalibrationConfig = CalibrationConfig(), *, progress: bool = True) -> dict[str, Any]:
    """Slope gain of a geometry backend: render ``cfg.photos`` photos of ``tiles`` (``(z, dx_m)``
    drawn with ``probs``), segment them with the builtin sky segmentation, build the backend
    ``geometry(fov_x_deg)``, run it with the terrain mask, and compare the mean slope of its DBSCAN-cleaned
    pointmap at the **true** pitch (Eq. 1's slope, :func:`search_pitch` with one candidate) with
    the true mean slope of the seen cells: ``g_i = tan s_points / tan s_true``. Returns
    ``{"value": median g_i, "iqr": [q25, q75], "photos": n, "per_photo": [...], "config": ...}``."""
    from pixels2peaks.camera import Heightfield, random_camera, random_shading, synthesize
    from pixels2peaks.perception.builtin import SkySegmentation
    from pixels2peaks.perception.geometry import clean_points, search_pitch

    if not tiles:
        raise InputError("no tiles to calibrate on")
    rng = np.random.default_rng(cfg.seed)
    rows: list[dict[str, Any]] = []
    tries = 0
    while len(rows) < cfg.photos:
        tries += 1
        if tries > 20 * cfg.photos:
            raise InputError(f"only {len(rows)} usable views in {tries - 1} tries; check the tiles")
        z, dx = tiles[int(rng.choice(len(tiles), p=probs))]
        seed = int(rng.integers(2**31))
        try:
            hf = Heightfield(z, dx)
            cam = random_camera(hf, seed, cfg.camera)
            res = synthesize(hf, dx, cam, shading=random_shading(seed))
        except InputError:
            continue
        if res.render.hit.mean() < 0.3 or res.visible_mask.sum() < 200:
            continue
        s_true = seen_mean_slope_deg(z, dx, res.visible_mask)
        if s_true < cfg.min_slope_deg:
            continue
        terrain = SkySegmentation().segment(res.image)
        g = geometry(cam.fov_x_deg).estimate(res.image, terrain)
        ok = g.valid & terrain
        p = g.points[ok].astype(np.float64)
        if p.shape[0] < 64:
            continue
        p = p[clean_points(p)]
        try:
            s_pts = float(search_pitch(p, s_true, pitch_range_deg=(cam.pitch_deg, cam.pitch_deg)).slopes_deg[0])
        except InputError:
            continue
        if not math.isfinite(s_pts):
            continue
        ratio = math.tan(math.radians(s_pts)) / math.tan(math.radians(s_true))
        rows.append({"dx_m": dx, "seed": seed, "pitch_deg": cam.pitch_deg, "true_slope_deg": round(s_true, 3),
                     "pointmap_slope_deg": round(s_pts, 3), "ratio": round(ratio, 4)})
        if progress:
            print(f"calibration photo {len(rows)}/{cfg.photos}: dx {dx:g} m, pitch {cam.pitch_deg:5.1f}, "
                  f"slope true {s_true:5.1f} / pointmap {s_pts:5.1f} deg", flush=True)
    r = np.array([row["ratio"] for row in rows])
    return {"value": round(float(np.median(r)), 4), "iqr": [round(float(q), 4) for q in np.percentile(r, [25, 75])],
            "photos": len(rows), "per_photo": rows, "config": asdict(cfg)}


def write_slope_gain(stem: str | Path, result: dict[str, Any], source: str) -> Path:
    """Store ``result`` (from :func:`measure_slope_gain`) as ``slope_gain`` in the card
    ``stem.json`` (atomic rewrite); ``source`` says which tiles it was measured on."""
    card_path = Path(stem).with_suffix(".json")
    if not card_path.is_file():
        raise InputError(f"no depth-network card at {card_path}")
    card = json.loads(card_path.read_text())
    card["slope_gain"] = {**result, "source": source,
                          "meaning": "median tan(pointmap slope) / tan(true slope) at the true pitch"}
    tmp = card_path.with_name(card_path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(card_path)
    return card_path


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Training of :class:`pixels2peaks.perception.depth_net.DepthNet`."""

    minutes: float = 25.0
    batch: int = 12
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_weight: float = 0.5
    sky_weight: float = 0.3
    val_fraction: float = 0.05
    seed: int = 0
    threads: int = 1
    #: decay of the exponential moving average of the weights that is saved (0 = save the
    #: last weights); it starts after ``lr`` warm-up, at step 100
    ema_decay: float = 0.999


def _augment(rng: np.random.Generator, img: np.ndarray, logd: np.ndarray, terr: np.ndarray,
             size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random aspect-changing crop resized to ``size`` (w, h), flip, photometric jitter."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    h, w = img.shape[:2]
    ow, oh = size
    cw = int(rng.uniform(0.6, 1.0) * w)
    ch = int(np.clip(cw * (h / w) * math.exp(rng.uniform(-0.35, 0.35)), 0.5 * h, h))
    c0 = int(rng.integers(0, w - cw + 1))
    r0 = int(rng.integers(0, h - ch + 1))
    rr = r0 + (np.arange(oh) + 0.5) * ch / oh - 0.5
    cc = c0 + (np.arange(ow) + 0.5) * cw / ow - 0.5
    if rng.random() < 0.5:
        cc = cc[::-1]
    R, C = np.meshgrid(rr, cc, indexing="ij")
    x = np.stack([map_coordinates(img[..., k].astype(np.float32) / 255.0, [R, C], order=1, mode="nearest")
                  for k in range(3)], -1)
    Ri, Ci = np.rint(R).astype(int).clip(0, h - 1), np.rint(C).astype(int).clip(0, w - 1)
    ld = logd[Ri, Ci].astype(np.float32)
    tm = terr[Ri, Ci]
    # photometric: per-channel gain, gamma, contrast, saturation, blur, noise
    gain = np.exp(rng.normal(0.0, 0.12, 3))
    x = np.clip(x * gain, 0, 1) ** math.exp(rng.normal(0.0, 0.2))
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * math.exp(rng.normal(0.0, 0.25))
    x = grey.mean() + (x - grey.mean()) * math.exp(rng.normal(0.0, 0.2))
    if rng.random() < 0.3:
        x = gaussian_filter(x, (rng.uniform(0.3, 1.0),) * 2 + (0,))
    x = x + rng.normal(0.0, rng.uniform(0.0, 0.02), x.shape)
    return np.clip(x, 0, 1).astype(np.float32), ld, tm


def _losses(pred_logd, pred_sky, logd, terr, grad_weight: float, sky_weight: float):
    import torch
    import torch.nn.functional as F

    valid = torch.isfinite(logd) & terr
    tgt = torch.where(valid, logd, torch.zeros_like(logd))
    vf = valid.float()
    n = vf.sum(dim=(1, 2, 3)).clamp(min=1.0)
    diff = (pred_logd - tgt) * vf
    mean = diff.sum(dim=(1, 2, 3)) / n
    si = ((diff * diff).sum(dim=(1, 2, 3)) / n - mean * mean).mean()  # scale-invariant (lambda = 1)
    g = pred_logd.new_zeros(())
    d = (pred_logd - tgt - mean[:, None, None, None]) * vf
    v = vf
    for _ in range(3):
        gx = (d[..., :, 1:] - d[..., :, :-1]).abs() * v[..., :, 1:] * v[..., :, :-1]
        gy = (d[..., 1:, :] - d[..., :-1, :]).abs() * v[..., 1:, :] * v[..., :-1, :]
        g = g + (gx.sum() + gy.sum()) / v.sum().clamp(min=1.0)
        d, v = F.avg_pool2d(d, 2), (F.avg_pool2d(v, 2) > 0.99).float()
        d = d * v
    bce = F.binary_cross_entropy_with_logits(pred_sky, (~terr).float())
    return si + grad_weight * g + sky_weight * bce, {"si": float(si.detach()), "grad": float(g.detach()), "bce": float(bce.detach())}


def _load_examples(data: str | Path | Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Images, log depths and terrain masks of one or several :func:`render_examples` files
    (concatenated; same photo size), and a provenance record per file."""
    files = [data] if isinstance(data, (str, Path)) else list(data)
    if not files:
        raise InputError("no training data file given")
    parts, info = [], []
    for p in files:
        f = np.load(p)
        parts.append((f["image"], f["log_depth"], f["terrain"]))
        info.append({"file": str(p), "examples": int(len(f["image"])),
                     "render": json.loads(str(f["config"])), "source": str(f["source"])})
    if len({a[0].shape[1:] for a in parts}) > 1:
        raise InputError("training data files hold photos of different sizes")
    images, logd, terr = (np.concatenate([a[k] for a in parts]) for k in range(3))
    return images, logd, terr, info


def train(data: str | Path | Sequence[str | Path], out_stem: str | Path, cfg: TrainConfig = TrainConfig(),
          net_cfg=None, *, init: str | Path | None = None, progress: bool = True) -> dict:
    """Train on the rendered examples (one or several :func:`render_examples` files) for
    ``cfg.minutes`` wall-clock minutes; write ``out_stem.safetensors`` + ``out_stem.json`` (network
    config, training config, data, metrics). ``init``: stem of earlier weights to continue from
    (their network config is used)."""
    import torch

    from pixels2peaks.perception.depth_net import DepthNet, DepthNetConfig, save_depth_net
    from pixels2peaks.training.train import ema_update

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    images, logd, terr, files = _load_examples(data)
    n = len(images)
    idx = rng.permutation(n)
    nv = max(1, int(round(cfg.val_fraction * n)))
    val, tr = idx[:nv], idx[nv:]
    prior_card = None
    if init is not None:
        from pixels2peaks.perception.depth_net import load_depth_net

        net, prior_card = load_depth_net(init)
        ncfg = net.cfg
    else:
        ncfg = net_cfg or DepthNetConfig()
        net = DepthNet(ncfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    size = (ncfg.width, ncfg.height)
    ema = copy.deepcopy(net).eval() if cfg.ema_decay > 0 else net

    def batch(ids, augment=True):
        xs, ds, ts = [], [], []
        for j in ids:
            if augment:
                x, d, t = _augment(rng, images[j], logd[j], terr[j], size)
            else:
                x, d, t = _augment(np.random.default_rng(int(j)), images[j], logd[j], terr[j], size)
            xs.append(x), ds.append(d), ts.append(t)
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
        d = torch.from_numpy(np.stack(ds))[:, None]
        t = torch.from_numpy(np.stack(ts))[:, None]
        return x, d, t

    vx, vd, vt = batch(val, augment=False)
    budget = cfg.minutes * 60.0
    t0 = time.time()
    step, hist = 0, []
    total_steps_est = None
    while True:
        el = time.time() - t0
        if el > budget:
            break
        if step == 50:
            total_steps_est = int(budget / (el / 50))
        frac = el / budget
        lr = cfg.lr * (min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * frac)))
        for gp in opt.param_groups:
            gp["lr"] = lr
        x, d, t = batch(rng.choice(tr, cfg.batch, replace=False))
        net.train()
        ld, sky = net(x)
        loss, parts = _losses(ld, sky, d, t, cfg.grad_weight, cfg.sky_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        if ema is not net:
            ema_update(ema, net, cfg.ema_decay if step > 100 else 0.0)
        if progress and step % 100 == 0:
            net.eval()
            with torch.no_grad():
                vl, vp = _losses(*ema(vx), vd, vt, cfg.grad_weight, cfg.sky_weight)
            hist.append({"step": step, "seconds": round(time.time() - t0, 1), "train": parts,
                         "val_loss": float(vl), "val": vp})
            print(f"step {step} ({time.time() - t0:.0f} s, ~{total_steps_est} total) loss {float(loss.detach()):.4f} "
                  f"val {float(vl):.4f} si {vp['si']:.4f} bce {vp['bce']:.4f}", flush=True)
    if ema is not net:  # BatchNorm statistics of the averaged weights (as for SWA)
        torch.optim.swa_utils.update_bn((batch(rng.choice(tr, cfg.batch, replace=False))[0] for _ in range(50)), ema)
    net.eval()
    ema.eval()
    with torch.no_grad():
        vl, vp = _losses(*ema(vx), vd, vt, cfg.grad_weight, cfg.sky_weight)
    card = {
        "format": "pixels2peaks.depth_net/1",
        "net": asdict(ncfg),
        "train": asdict(cfg),
        "data": {"files": files, "examples": int(n), "val_examples": int(nv)},
        "steps": step + (prior_card or {}).get("steps", 0),
        "minutes": round((time.time() - t0) / 60.0 + (prior_card or {}).get("minutes", 0.0), 2),
        "stages": [*(prior_card or {}).get("stages", []),
                   {"steps": step, "minutes": round((time.time() - t0) / 60.0, 2), "lr": cfg.lr,
                    "init": str(init) if init else None}],
        "final_val": {"loss": float(vl), **vp},
        "history": hist[-20:],
        "parameters": int(sum(p.numel() for p in net.parameters())),
    }
    save_depth_net(ema, out_stem, card)
    return card


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pixels2peaks.training.perception_depth")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="render synthetic training photos")
    r.add_argument("data_dir")
    r.add_argument("-o", "--out", required=True)
    r.add_argument("--examples", type=int, default=RenderConfig.examples)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--foreground", action="store_true",
                   help="cameras standing 1.5-30 m above the ground of whole landscapes (FOREGROUND)")
    r.add_argument("--trees", type=float, default=0.0, metavar="FRACTION",
                   help="share of the photos with trees standing on the terrain (default 0)")
    t = sub.add_parser("train", help="train the network")
    t.add_argument("data", nargs="+", help="one or several rendered .npz files")
    t.add_argument("-o", "--out", required=True, help="output stem (.safetensors/.json added)")
    t.add_argument("--minutes", type=float, default=TrainConfig.minutes)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--lr", type=float, default=TrainConfig.lr)
    t.add_argument("--ema", type=float, default=TrainConfig.ema_decay,
                   help="EMA decay of the saved weights (0 = the last weights)")
    t.add_argument("--init", default=None, help="stem of weights to continue from")
    t.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=None,
                   help="network input size in pixels for a new network (default 128 96)")
    c = sub.add_parser("calibrate", help="measure the slope gain of the network's pointmaps on renders of training tiles")
    c.add_argument("data_dir")
    c.add_argument("--weights", required=True, help="stem of the weights whose card gets slope_gain")
    c.add_argument("--photos", type=int, default=CalibrationConfig.photos)
    c.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    import numba
    import torch

    if a.cmd == "render":
        numba.set_num_threads(1)
        base = FOREGROUND if a.foreground else RenderConfig()
        render_examples(a.data_dir, a.out, replace(base, examples=a.examples, seed=a.seed, trees_fraction=a.trees))
    elif a.cmd == "calibrate":
        from pixels2peaks.perception.depth_net import LearnedGeometry

        numba.set_num_threads(1)
        torch.set_num_threads(1)
        cfg = CalibrationConfig(photos=a.photos, seed=a.seed)
        tiles, probs = calibration_terrains(a.data_dir, cfg)
        res = measure_slope_gain(tiles, probs, lambda fov: LearnedGeometry(fov, weights=a.weights), cfg)
        write_slope_gain(a.weights, res, f"training terrains of {a.data_dir} (calibration_terrains)")
        print(json.dumps({k: res[k] for k in ("value", "iqr", "photos")}))
    else:
        torch.set_num_threads(a.threads)
        from pixels2peaks.perception.depth_net import DepthNetConfig

        net_cfg = DepthNetConfig(width=a.size[0], height=a.size[1]) if a.size else None
        card = train(a.data, a.out, TrainConfig(minutes=a.minutes, threads=a.threads, lr=a.lr, ema_decay=a.ema), net_cfg, init=a.init)
        print(json.dumps(card["final_val"]))


if __name__ == "__main__":
    main()
