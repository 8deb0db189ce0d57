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
    g = ClassicalGeometry(fov_x_deg=50.0, terrain=terrain).estimate(img)
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
    p = DefaultPriors(terrain=terrain).estimate(img)
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
