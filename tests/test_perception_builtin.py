import json
from pathlib import Path

import numpy as np
import pytest

from pixels2peaks.errors import InputError
from pixels2peaks.perception import protocols
from pixels2peaks.perception.builtin import (
    ClassicalGeometry,
    DefaultPriors,
    SkySegmentation,
    dark_channel,
    horizon_rows,
    sky_mask,
)
from pixels2peaks.perception.protocols import (
    BackendSpec,
    GeometryBackend,
    GeometryResult,
    Priors,
    PriorsBackend,
    SegmentationBackend,
    select,
)


def synthetic_photo(h=96, w=128, seed=0):
    """Blue gradient sky above a textured brown ridge whose skyline is a sine."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3))
    rows = np.arange(h)[:, None]
    sky_col = (0.30 * h + 0.10 * h * np.sin(np.arange(w) / w * 2 * np.pi)).astype(int)
    img[...] = [0.55, 0.70, 0.95]
    img[..., :] += (rows / h * 0.05)[..., None]
    ground = rows >= sky_col[None, :]
    tex = rng.uniform(-0.15, 0.15, (h, w))
    rock = np.stack([0.45 + tex, 0.38 + tex, 0.30 + tex], -1)
    img = np.where(ground[..., None], rock, img)
    # a blue, smooth lake below the skyline must stay terrain
    img[int(0.8 * h):int(0.9 * h), 40:80] = [0.50, 0.65, 0.90]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), sky_col


def test_sky_segmentation_finds_skyline_and_keeps_lake():
    img, sky_col = synthetic_photo()
    terrain = SkySegmentation().segment(img)
    hz = horizon_rows(~terrain)
    assert np.abs(hz - sky_col).max() <= 2
    assert terrain[int(0.85 * img.shape[0]), 60]  # the lake is not sky
    assert isinstance(SkySegmentation(), SegmentationBackend)


def test_sky_mask_connected_to_top_only():
    img = np.full((40, 40, 3), 100, np.uint8)
    img[20:30, 10:30] = [140, 180, 240]  # a blue patch not touching the top
    assert not sky_mask(img).any()
    img[:5] = [140, 180, 240]
    assert sky_mask(img)[:3].all()  # (the boundary row is textured)


def test_classical_geometry_depth_increases_upwards():
    img, _ = synthetic_photo()
    terrain = SkySegmentation().segment(img)
    g = ClassicalGeometry(fov_x_deg=50.0).estimate(img, terrain)
    assert isinstance(ClassicalGeometry(), GeometryBackend)
    assert g.points.shape == img.shape and g.points.dtype == np.float32
    assert g.fov_x_deg == 50.0 and np.array_equal(g.valid, terrain)
    z = g.points[..., 2]
    assert (z > 0).all() and np.isfinite(g.points).all()
    assert (np.diff(z, axis=0) <= 1e-4 * z[1:]).all()  # non-increasing downwards
    # camera-frame back-projection: x/z and y/z follow the pinhole model
    f = 64 / np.tan(np.radians(25.0))
    assert g.points[0, -1, 0] / z[0, -1] == pytest.approx((127.5 - 64) / f, rel=1e-4)
    assert g.points[-1, 0, 1] / z[-1, 0] == pytest.approx((95.5 - 48) / f, rel=1e-4)


def test_dark_channel_bounds():
    img, _ = synthetic_photo()
    dc = dark_channel(img)
    assert dc.shape == img.shape[:2] and dc.min() >= 0 and dc.max() <= 1


def test_default_priors_record_sources():
    img, _ = synthetic_photo()
    terrain = SkySegmentation().segment(img)
    p = DefaultPriors().estimate(img, terrain)
    assert isinstance(DefaultPriors(), PriorsBackend)
    assert p.mean_slope_deg == 25.0
    assert 200.0 <= p.relief_m <= 3000.0 and p.elevation_range_m[0] == 1000.0
    assert set(p.sources) == {"mean_slope_deg", "elevation_range_m"}
    assert "builtin" in p.sources["elevation_range_m"]


def test_priors_and_geometry_validation():
    with pytest.raises(InputError):
        Priors(95.0, (0, 1))
    with pytest.raises(InputError):
        Priors(20.0, (100.0, 50.0))
    with pytest.raises(InputError):
        GeometryResult(np.zeros((4, 4, 2)), 60.0, np.ones((4, 4), bool))
    g = GeometryResult(np.full((2, 2, 3), np.nan), 60.0, np.ones((2, 2), bool))
    assert not g.valid.any()
    with pytest.raises(InputError):
        ClassicalGeometry().estimate(np.zeros((10, 10)))


def test_auto_selection_explains_choice(monkeypatch):
    monkeypatch.setattr(protocols, "module_available", lambda m: m != "moge")
    import pixels2peaks.perception._defaults as d

    monkeypatch.setattr(d, "module_available", lambda m: m != "moge")
    monkeypatch.setattr(d, "hf_weights_cached", lambda repo, filename="config.json": False)
    sel = select("geometry")
    assert sel.name == "builtin"
    assert sel.reason.startswith("moge not installed; transformers present but no local Depth Anything weights")
    assert sel.reason.endswith("using builtin")
    assert isinstance(sel.backend, GeometryBackend)
    sel = select("priors", options={})
    assert sel.name == "builtin" and "vlm_url" in sel.reason
    assert select("segmentation").name == "builtin"
    with pytest.raises(InputError, match="not available"):
        select("geometry", "depth_anything")
    with pytest.raises(InputError, match="unknown geometry backend"):
        select("geometry", "nope")
    with pytest.raises(InputError):
        select("colour")


def test_registry_prefers_available_custom_backend():
    class Fixed:
        name = "fixed"

        def segment(self, image):
            return np.ones(image.shape[:2], bool)

    protocols.register(BackendSpec("segmentation", "fixed", lambda o: Fixed(), lambda o: (True, ""), 1))
    try:
        sel = select("segmentation")
        assert sel.name == "fixed" and sel.reason == "using fixed"
    finally:
        protocols.unregister("segmentation", "fixed")


# ----------------------------------------------------------------------------------------------
# skyline segmentation
# ----------------------------------------------------------------------------------------------


def test_skyline_dp_is_exact_against_brute_force():
    import itertools

    from pixels2peaks.perception.skyline import skyline_dp

    rng = np.random.default_rng(0)
    for _ in range(5):
        u = rng.normal(0, 1, (5, 4))
        lam, tau = 0.4, 0.9

        def energy(b):
            return sum(u[c, b[c]] for c in range(5)) + sum(min(lam * abs(b[c] - b[c - 1]), tau) for c in range(1, 5))

        best = min(itertools.product(range(4), repeat=5), key=energy)
        got = skyline_dp(u, lam, tau)
        assert energy(got) == pytest.approx(energy(best), abs=1e-12)


def deep_blue_photo(h=120, w=160, seed=1):
    """A dark, saturated blue sky (old threshold heuristic: no sky at all) above a snowy ridge
    with a white snow band right below the skyline and dark forest below."""
    rng = np.random.default_rng(seed)
    rows = np.arange(h)[:, None]
    sky_row = (0.35 * h + 0.12 * h * np.sin(np.arange(w) / w * 3 * np.pi)).astype(int)
    img = np.empty((h, w, 3))
    img[...] = [0.05, 0.22, 0.55]
    img += (rows / h * 0.15)[..., None] * np.array([1.0, 1.0, 0.6])
    snow = (rows >= sky_row) & (rows < sky_row + 0.15 * h)
    tex = rng.normal(0, 0.06, (h, w))
    img = np.where(snow[..., None], np.stack([0.85 + tex, 0.88 + tex, 0.92 + tex], -1), img)
    forest = rows >= sky_row + 0.15 * h
    img = np.where(forest[..., None], np.stack([0.10 + tex, 0.16 + tex, 0.08 + tex], -1), img)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), rows >= sky_row[None, :]


def test_skyline_segments_deep_blue_sky_and_snow():
    from pixels2peaks.evaluation.view_metrics import mask_iou

    img, truth = deep_blue_photo()
    assert not sky_mask(img).any()  # the old threshold heuristic finds no sky here
    terrain = SkySegmentation().segment(img)
    assert mask_iou(terrain, truth) >= 0.97
    assert mask_iou(~terrain, ~truth) >= 0.95


def test_border_void_keeps_textured_shadows():
    from pixels2peaks.perception.skyline import border_void

    img, truth = deep_blue_photo()
    img = img.copy()
    yy, xx = np.mgrid[0:120, 0:160]
    corner = (xx / 25.0) ** 2 + (yy / 18.0) ** 2 < 1.0  # curved black corner (panorama crop)
    img[corner] = 0
    rng = np.random.default_rng(0)
    shadow = (yy > 100) & (xx > 120)  # a dark but textured shadow touching the border
    img[shadow] = rng.integers(3, 13, (shadow.sum(), 3))
    void = border_void(img)
    assert void[corner].all() and not void[shadow].any()
    terrain = SkySegmentation().segment(img)
    assert not terrain[corner].any() and terrain[shadow].mean() > 0.95


# ----------------------------------------------------------------------------------------------
# depth metrics
# ----------------------------------------------------------------------------------------------


def test_depth_metrics_affine_invariance_and_closed_forms():
    from pixels2peaks.perception.depth_metrics import align_scale_shift, delta_accuracy, depth_errors

    rng = np.random.default_rng(0)
    d = rng.uniform(50.0, 20000.0, 500)
    for sp, pred in (("depth", 0.01 * d + 3.0), ("relative", 7.0 * d - 20.0), ("disparity", 1.0 / (2e-3 / d + 1e-6))):
        e = depth_errors(pred, d, spaces=(sp,))
        assert e[sp]["abs_rel"] < 1e-9 and e[sp]["delta_1.25"] == 1.0
    # two prediction levels: the least-squares line passes through the group means
    p4, d4 = np.array([1.0, 1.0, 2.0, 2.0]), np.array([1.0, 3.0, 4.0, 6.0])
    assert np.allclose(align_scale_shift(p4, d4, "depth"), [2.0, 2.0, 5.0, 5.0])
    assert depth_errors(p4, d4, spaces=("depth",))["depth"]["abs_rel"] == pytest.approx((1 + 1 / 3 + 1 / 4 + 1 / 6) / 4)
    assert delta_accuracy(np.array([1.0, 1.3, -1.0]), np.array([1.0, 1.0, 1.0])) == pytest.approx(1 / 3)
    with pytest.raises(InputError):
        depth_errors(np.ones(3), np.ones(4))


# ----------------------------------------------------------------------------------------------
# learned depth network (tiny random weights; no shipped weights needed)
# ----------------------------------------------------------------------------------------------


def test_ray_pointmap_matches_camera_rays():
    from pixels2peaks.camera import Camera
    from pixels2peaks.perception.depth_net import ray_pointmap

    d = np.random.default_rng(0).uniform(10, 1000, (6, 8))
    p = ray_pointmap(d, 70.0).astype(np.float64)
    assert np.allclose(np.linalg.norm(p, axis=2), d, rtol=1e-6)
    cam = Camera(8, 6, 70.0, (0.0, 0.0, 0.0), yaw_deg=0.0, pitch_deg=0.0)
    u, v = cam.pixel_centres()
    world = cam.pixel_to_world(u, v, d)
    assert np.allclose(cam.world_to_camera(world), p, rtol=1e-5, atol=1e-4)


def test_depth_net_save_load_and_backend(tmp_path, one_torch_thread):
    import torch

    from pixels2peaks.perception import _defaults
    from pixels2peaks.perception.depth_net import (
        DepthNet,
        DepthNetConfig,
        LearnedGeometry,
        load_depth_net,
        predict_log_depth,
        save_depth_net,
        weights_available,
    )

    cfg = DepthNetConfig(width=32, height=16, channels=(4, 6, 8))
    torch.manual_seed(0)
    net = DepthNet(cfg).eval()
    stem = tmp_path / "w" / "net"
    assert not weights_available(stem)
    save_depth_net(net, stem, {"net": {"width": 32, "height": 16, "channels": [4, 6, 8]}, "parameters": 1})
    loaded, card = load_depth_net(stem)
    x = torch.rand(1, 3, 16, 32)
    with torch.no_grad():
        assert torch.equal(net(x)[0], loaded(x)[0])
    img, _ = synthetic_photo(40, 50)
    ld, sky = predict_log_depth(img, loaded)
    assert ld.shape == sky.shape == (40, 50) and np.isfinite(ld).all() and (0 <= sky).all() and (sky <= 1).all()
    terrain = np.zeros((40, 50), bool)
    terrain[20:] = True
    g = LearnedGeometry(fov_x_deg=50.0, weights=stem).estimate(img, terrain)
    assert isinstance(LearnedGeometry(), GeometryBackend)
    assert g.points.shape == (40, 50, 3) and np.array_equal(g.valid, terrain) and g.fov_x_deg == 50.0
    ld_backend, _ = predict_log_depth(img, loaded, LearnedGeometry().upsample)  # the backend's upsampling
    assert np.allclose(np.linalg.norm(g.points, axis=2), np.exp(ld_backend - np.median(ld_backend)), rtol=1e-5)
    # the builtin backend falls back to the classical cues without shipped weights
    import pixels2peaks.perception.depth_net as dn

    orig = dn.weights_available
    try:
        dn.weights_available = lambda stem=dn.DEFAULT_WEIGHTS: False
        assert isinstance(_defaults._builtin_geometry({}), ClassicalGeometry)
        dn.weights_available = lambda stem=dn.DEFAULT_WEIGHTS: True
        assert isinstance(_defaults._builtin_geometry({}), LearnedGeometry)
    finally:
        dn.weights_available = orig
    assert isinstance(select("geometry", "classical").backend, ClassicalGeometry)
    # other weights by option; missing ones fall back to the classical cues
    assert _defaults._builtin_geometry({"depth_weights": stem}).weights == stem
    assert isinstance(_defaults._builtin_geometry({"depth_weights": tmp_path / "none"}), ClassicalGeometry)


def test_depth_training_loss_is_shift_invariant_and_train_writes_weights(tmp_path, one_torch_thread):
    import torch

    from pixels2peaks.perception.depth_net import DepthNetConfig, load_depth_net
    from pixels2peaks.training.perception_depth import TrainConfig, _losses, train

    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 1, 16, 16, generator=g)
    tgt = torch.randn(2, 1, 16, 16, generator=g)
    tgt[0, 0, :3] = float("nan")  # sky
    terr = torch.isfinite(tgt)
    sky = torch.zeros(2, 1, 16, 16)
    a, pa = _losses(pred, sky, tgt, terr, 0.5, 0.3)
    b, pb = _losses(pred + 3.7, sky, tgt, terr, 0.5, 0.3)
    assert pa["si"] == pytest.approx(pb["si"], abs=1e-5) and pa["grad"] == pytest.approx(pb["grad"], abs=1e-5)
    c, pc = _losses(tgt.nan_to_num(0.0) - 1.0, sky, tgt, terr, 0.5, 0.3)
    assert pc["si"] < 1e-10 and pc["grad"] < 1e-6
    # a few seconds of training on a tiny fake data set writes loadable weights and a card
    rng = np.random.default_rng(0)
    n, h, w = 6, 24, 32
    logd = np.log(rng.uniform(100, 1000, (n, h, w))).astype(np.float16)
    logd[:, :6] = np.nan

    def save(name: str, k: int, shape: tuple[int, int] = (h, w)) -> Path:
        f = tmp_path / name
        np.savez(f, image=rng.integers(0, 255, (k, *shape, 3), dtype=np.uint8), log_depth=logd[:k, : shape[0], : shape[1]],
                 terrain=np.isfinite(logd[:k, : shape[0], : shape[1]]), meta=np.array(["{}"] * k),
                 config=json.dumps({"examples": k}), source=name)
        return f

    data, more = save("d.npz", n), save("fg.npz", 4)
    card = train([data, more], tmp_path / "out" / "net", TrainConfig(minutes=0.02, batch=2),
                 DepthNetConfig(width=32, height=16, channels=(4, 6, 8)), progress=False)
    assert card["steps"] >= 1 and card["data"]["examples"] == n + 4
    assert [f["examples"] for f in card["data"]["files"]] == [n, 4] and card["data"]["files"][1]["source"] == "fg.npz"
    with pytest.raises(InputError, match="different sizes"):
        train([data, save("small.npz", 2, (h, w - 8))], tmp_path / "bad" / "net", TrainConfig(minutes=0.01, batch=2),
              DepthNetConfig(width=32, height=16, channels=(4, 6, 8)), progress=False)
    assert not (tmp_path / "bad").exists()
    net, card2 = load_depth_net(tmp_path / "out" / "net")
    assert card2["net"]["channels"] == [4, 6, 8]


def test_gmm_fit_recovers_components_and_scores_like_scipy():
    from scipy.stats import multivariate_normal

    from pixels2peaks.perception.skyline import gmm_fit, gmm_score

    rng = np.random.default_rng(0)
    a = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], 3000)
    b = rng.multivariate_normal([6, -4], [[0.4, 0.0], [0.0, 2.0]], 1000)
    w, mu, cov = gmm_fit(np.vstack([a, b]), 2, np.random.default_rng(1))
    order = np.argsort(mu[:, 0])
    assert np.allclose(w[order], [0.75, 0.25], atol=0.02)
    assert np.allclose(mu[order], [[0, 0], [6, -4]], atol=0.1)
    assert np.allclose(cov[order[0]], [[1.0, 0.3], [0.3, 0.5]], atol=0.1)
    x = rng.normal(0, 3, (50, 2))
    ref = np.log(sum(w[j] * multivariate_normal(mu[j], cov[j]).pdf(x) for j in range(2)))
    assert np.allclose(gmm_score(x, (w, mu, cov)), ref, rtol=1e-8, atol=1e-8)


def test_fill_void_copies_the_nearest_valid_value_in_2d_and_3d():
    from pixels2peaks.perception.depth_net import fill_void

    z = np.arange(30, dtype=float).reshape(5, 6)  # z[i, j] = 6 i + j
    void = np.zeros_like(z, bool)
    void[:, 4:] = True  # the two right columns: nearest valid is column 3 of the same row
    out = fill_void(np.where(void, np.nan, z), void)
    np.testing.assert_array_equal(out[:, 4], z[:, 3])
    np.testing.assert_array_equal(out[:, 5], z[:, 3])
    np.testing.assert_array_equal(out[~void], z[~void])
    rgb = np.stack([z, -z, 2 * z], -1)
    np.testing.assert_array_equal(fill_void(rgb, void)[:, 5], rgb[:, 3])


def test_render_examples_rejects_an_unknown_terrain_source(tmp_path):
    from dataclasses import replace

    from pixels2peaks.training.perception_depth import FOREGROUND, render_examples

    with pytest.raises(InputError, match="unknown terrains 'hills'"):
        render_examples(tmp_path, tmp_path / "out.npz", replace(FOREGROUND, terrains="hills"))
    assert not (tmp_path / "out.npz").exists()


def _hazy_horizon_photo() -> np.ndarray:
    """Smooth sky (rows < 80) over terrain whose haze fades it to the horizon's own colour: at
    the skyline only its texture (local std ~0.012) tells it from the sky (~0.001)."""
    rng = np.random.default_rng(0)
    h, w = 200, 300
    rows = np.arange(h)[:, None, None] / h
    img = np.broadcast_to(np.array([0.70, 0.78, 0.88]) + 0.08 * rows, (h, w, 3)).copy()
    img += rng.normal(0, 0.001, (h, w, 1))
    t = np.clip((rows[80:] - 0.4) / 0.5, 0, 1)  # transmission rises toward the camera
    img[80:] = (1 - t) * img[79] + t * np.array([0.30, 0.42, 0.25])
    img[80:] += rng.normal(0, 1, (h - 80, w, 1)) * (0.012 + 0.05 * t)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_hazy_far_terrain_is_not_sky():
    from pixels2peaks.perception.skyline import SkylineOptions, segment_terrain

    img = _hazy_horizon_photo()
    first = np.argmax(segment_terrain(img), axis=0)  # the skyline row of every column
    assert abs(np.median(first) - 80) <= 8 and first.max() <= 95
    # session 13's loose seeds (texture <= 0.03) grew down into the haze and called it sky
    loose = np.argmax(segment_terrain(img, SkylineOptions(seed_texture=(0.03, 0.0, 0.03))), axis=0)
    assert np.median(loose) > 100
