import json

import numpy as np
import pytest
from PIL import Image

from pixels2peaks.camera import Camera
from pixels2peaks.errors import InputError
from pixels2peaks.perception.geometry import ReconstructOptions
from pixels2peaks.perception.image import load_image
from pixels2peaks.perception.pipeline import OUTPUT_FILES, VisibleOptions, estimate_visible

from test_perception_builtin import synthetic_photo  # noqa: E402

FAST = ReconstructOptions(pitch_range_deg=(-20, 20), pitch_step_deg=2.0, search_cells=64, target_cells=96)


def save(tmp_path, name, im, **kw):
    p = tmp_path / name
    im.save(p, **kw)
    return p


def test_load_rgb_and_modes(tmp_path):
    rgb = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    li = load_image(save(tmp_path, "a.png", Image.fromarray(rgb)))
    assert li.rgb.shape == (70, 90, 3) and li.rgb.dtype == np.uint8 and np.array_equal(li.rgb, rgb)
    assert li.opaque.all() and li.fov_x_deg is None
    # grayscale
    li = load_image(save(tmp_path, "g.png", Image.fromarray(rgb[..., 0])))
    assert li.rgb.shape == (70, 90, 3) and np.array_equal(li.rgb[..., 1], rgb[..., 0])
    # 16-bit grayscale PNG
    g16 = (rgb[..., 0].astype(np.uint16) * 257)
    li = load_image(save(tmp_path, "g16.png", Image.fromarray(g16)))
    assert li.rgb.dtype == np.uint8 and np.array_equal(li.rgb[..., 0], rgb[..., 0])
    # CMYK JPEG
    li = load_image(save(tmp_path, "c.jpg", Image.fromarray(rgb).convert("CMYK")))
    assert li.rgb.shape == (70, 90, 3) and li.mode == "CMYK"
    # alpha: transparent pixels are not opaque
    rgba = np.dstack([rgb, np.full((70, 90), 255, np.uint8)])
    rgba[:10, :, 3] = 0
    li = load_image(save(tmp_path, "t.png", Image.fromarray(rgba, "RGBA")))
    assert li.rgb.shape == (70, 90, 3) and not li.opaque[:10].any() and li.opaque[10:].all()


def test_exif_rotation_applied(tmp_path):
    rgb = np.zeros((64, 100, 3), np.uint8)
    rgb[:, :10] = 255  # a white stripe on the left
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif, quality=95)
    li = load_image(p)
    assert li.rgb.shape == (100, 64, 3)
    assert li.rgb[:10].mean() > 200 and li.rgb[-10:].mean() < 50  # the stripe is now on top


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_text("not an image"), "not an image"),
        (lambda p: p.write_bytes(b""), "not an image"),
        (lambda p: None, "not found"),
    ],
)
def test_load_bad_files(tmp_path, make, match):
    p = tmp_path / "x.png"
    make(p)
    with pytest.raises(InputError, match=match):
        load_image(p)


def test_load_truncated_small_large(tmp_path, monkeypatch):
    rgb = (np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)
    p = save(tmp_path, "full.jpg", Image.fromarray(rgb))
    data = p.read_bytes()
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        load_image(trunc)
    with pytest.raises(InputError, match="at least 64 px"):
        load_image(save(tmp_path, "small.png", Image.fromarray(rgb[:63])))
    import pixels2peaks.perception.image as mod

    monkeypatch.setattr(mod, "MAX_PIXELS", 30_000)
    with pytest.raises(InputError, match="megapixels"):
        load_image(p)
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)
    f = np.zeros((70, 70), np.float32)
    with pytest.raises(InputError, match="floating-point"):
        load_image(save(tmp_path, "f.tif", Image.fromarray(f)))


@pytest.mark.parametrize(("geometry", "min_bound_m"), [("classical", 550.0), ("builtin", 700.0)])
def test_estimate_visible_builtin_end_to_end(tmp_path, geometry, min_bound_m):
    img, _ = synthetic_photo(96, 128)
    p = save(tmp_path, "photo.png", Image.fromarray(img))
    opts = VisibleOptions(
        geometry=geometry, segmentation="builtin", priors="builtin",
        elevation_range_m=(500.0, 1500.0), reconstruct=FAST,
    )
    res = estimate_visible(p, opts)
    assert res.z.dtype == np.float32 and res.z.shape == res.mask.shape
    assert max(res.z.shape) == 96 and res.mask.any()
    # the points span the range exactly; Z_V keeps the highest point of a cell, so its
    # maximum is exact (with every cell kept) and its minimum may be a little higher (more with the learned depth,
    # whose near-field points hide under farther ones on this toy photo)
    assert 500.0 - 1e-2 <= np.nanmin(res.z) <= min_bound_m
    # ...unless the highest cell is a pillar (> 5 dx above its 5 x 5 median): then it leaves M_V
    assert 1500.0 - 5.0 * res.dx_m <= np.nanmax(res.z) <= 1500.0 + 1e-2
    assert np.isnan(res.z[~res.mask]).all()
    import dataclasses

    keep_all = estimate_visible(p, dataclasses.replace(
        opts, reconstruct=dataclasses.replace(FAST, outlier_dx=None)))
    assert np.nanmax(keep_all.z) == pytest.approx(1500.0, abs=1e-2)
    assert (res.mask <= keep_all.mask).all()  # dropping outliers only removes cells
    assert res.camera.width == 128 and res.camera.height == 96 and res.camera.fov_x_deg == 60.0
    assert -20 <= res.camera.pitch_deg <= 20 and res.camera.dx_m == res.dx_m
    r = res.report
    assert r["priors"]["sources"]["elevation_range_m"] == "user"
    assert r["priors"]["sources"]["mean_slope_deg"].startswith("builtin")
    assert r["backends"]["geometry"] == {"name": geometry, "reason": f"requested {geometry}"}
    # the pitch search targets the prior corrected by the geometry's slope gain
    from pixels2peaks.perception.geometry import pointmap_slope_deg

    gain = r["pitch_search"]["slope_gain"]
    assert gain == 1.0 if geometry == "classical" else 0.0 < gain <= 1.5
    assert r["pitch_search"]["target_slope_deg"] == pytest.approx(
        pointmap_slope_deg(r["priors"]["mean_slope_deg"], gain))
    from pixels2peaks.pipeline.outputs import write_visible

    out = write_visible(tmp_path / "out", res)
    assert sorted(f.name for f in out.iterdir()) == sorted(OUTPUT_FILES)
    cam = Camera.load(out / "camera.json")
    assert cam == res.camera
    rep = json.loads((out / "perception.json").read_text())
    assert rep["visible_cells"] == int(res.mask.sum())
    import rasterio

    with rasterio.open(out / "visible.tif") as ds:
        z = ds.read(1)
        assert np.array_equal(np.isnan(z), ~res.mask)
        assert ds.transform.a == pytest.approx(res.dx_m)


def test_estimate_visible_user_priors_and_fov_skip_priors_backend():
    img, _ = synthetic_photo(80, 100)
    res = estimate_visible(img, VisibleOptions(
        geometry="builtin", segmentation="builtin", priors="vlm",  # vlm unavailable but unused
        fov_x_deg=45.0, mean_slope_deg=20.0, elevation_range_m=(0.0, 800.0), reconstruct=FAST))
    assert res.camera.fov_x_deg == 45.0 and "priors" not in res.report["backends"]
    assert res.report["fov_source"] == "user"


def test_estimate_visible_errors():
    with pytest.raises(InputError):
        estimate_visible(np.zeros((80, 80), np.uint8))
    sky = np.zeros((80, 100, 3), np.uint8)
    sky[...] = [140, 180, 240]
    with pytest.raises(InputError, match="no terrain"):
        estimate_visible(sky, VisibleOptions(segmentation="builtin", reconstruct=FAST))


def test_cli_visible(tmp_path):
    from typer.testing import CliRunner

    from pixels2peaks.cli.main import app

    img, _ = synthetic_photo(96, 128)
    p = save(tmp_path, "photo.png", Image.fromarray(img))
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["visible", str(p), "-o", str(out), "--geometry", "builtin", "--segmentation", "builtin",
            "--priors", "builtin", "--cells", "64", "--pitch-step", "3"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert sorted(f.name for f in out.iterdir()) == sorted(OUTPUT_FILES)
    r = runner.invoke(app, args)  # non-empty output folder
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = runner.invoke(app, args + ["--overwrite", "--z-min", "100"])
    assert r.exit_code == 2 and "--z-max" in r.output
    r = runner.invoke(app, ["visible", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "not found" in r.output
    assert not (tmp_path / "o2").exists()
    r = runner.invoke(app, args[:-4] + ["--geometry", "moge", "-o", str(tmp_path / "o3")])
    assert r.exit_code == 2 and "moge" in r.output


def test_geometry_cache_key_follows_the_weights_card(tmp_path, monkeypatch):
    import pixels2peaks.perception.pipeline as pl

    card = tmp_path / "net.json"
    card.write_text('{"slope_gain": {"value": 0.7}}')
    monkeypatch.setattr(pl, "_STAGE_DATA", {"geometry": (card,)})
    a = pl._backend_settings("geometry", "builtin", {})
    card.write_text('{"slope_gain": {"value": 0.6}}')
    b = pl._backend_settings("geometry", "builtin", {})
    assert a["data"] != b["data"] and a["code"] == b["code"]
    assert "data" not in pl._backend_settings("priors", "builtin", {})


def test_unavailable_requested_backend_fails_before_any_stage(monkeypatch):
    import pixels2peaks.perception.pipeline as pl

    ran = []
    monkeypatch.setattr(pl, "_segmentation", lambda *a, **k: ran.append("segmentation"))
    import pixels2peaks.perception._defaults as d

    monkeypatch.setattr(d, "module_available", lambda m: False)
    img, _ = synthetic_photo(80, 100)
    for opts, match in ((dict(geometry="moge"), "geometry backend 'moge' is not available: moge not installed"),
                        (dict(priors="gemma"), "priors backend 'gemma' is not available: transformers not installed"),
                        (dict(segmentation="nope"), "unknown segmentation backend 'nope'")):
        with pytest.raises(InputError, match=match):
            estimate_visible(img, VisibleOptions(**opts))
    assert ran == []


def test_backend_stage_keys_follow_the_chosen_backends_modules(tmp_path, monkeypatch):
    """The cache key of a backend stage is the source of the backend that runs (its
    BackendSpec.modules): a change in another backend's module leaves it, one in its own changes it."""
    import pixels2peaks.perception.pipeline as pp
    from pixels2peaks.cache import code_fingerprint

    seg = pp._backend_settings("segmentation", "builtin", {})
    assert "pixels2peaks.perception.skyline" in seg["code_modules"]  # the hand-kept list missed it
    geo = pp._backend_settings("geometry", "classical", {})
    assert geo["code_modules"] == ["pixels2peaks.perception.builtin"]
    assert geo["code"] == code_fingerprint(*pp._BACKEND_CODE, "pixels2peaks.perception.builtin")
    auto = pp._backend_settings("geometry", "auto", {})
    assert auto["code_modules"] == list(pp.choose("geometry", "auto", {})[0].modules)
    # a module of its own, edited: the key changes; another backend's module, edited: it does not
    import sys

    mod = tmp_path / "p2p_fake_backend_mod.py"
    mod.write_text("X = 1\n")
    other = tmp_path / "p2p_other_backend_mod.py"
    other.write_text("Y = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from pixels2peaks.perception.protocols import BackendSpec, register, unregister

    register(BackendSpec("geometry", "fake", lambda o: None, lambda o: (True, ""), 1, ("p2p_fake_backend_mod",)))
    try:
        k1 = pp._backend_settings("geometry", "fake", {})["code"]
        other.write_text("Y = 2\n")
        code_fingerprint.cache_clear()  # fingerprints are cached per process (code is fixed there)
        assert pp._backend_settings("geometry", "fake", {})["code"] == k1
        mod.write_text("X = 2\n")
        code_fingerprint.cache_clear()
        assert pp._backend_settings("geometry", "fake", {})["code"] != k1
    finally:
        unregister("geometry", "fake")
        sys.modules.pop("p2p_fake_backend_mod", None)
        code_fingerprint.cache_clear()
