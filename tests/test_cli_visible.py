"""`p2p visible`: the `p2p synth` ground-truth file set (same formats) + priors.json,
perception.json, preview.png; stage cache; stdin."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixels2peaks.camera import SYNTH_FILES, Camera, project_pointmap, view_bound
from pixels2peaks.cli.main import app
from pixels2peaks.errors import InputError
from pixels2peaks.io import read_dem
from pixels2peaks.perception.pipeline import OUTPUT_FILES
from test_perception_builtin import synthetic_photo

FAST = ["--geometry", "builtin", "--segmentation", "builtin", "--priors", "builtin", "--cells", "48",
        "--pitch-step", "4", "-q"]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    p = tmp_path_factory.mktemp("vis") / "photo.png"
    Image.fromarray(synthetic_photo(96, 128)[0]).save(p)
    return p


def _cli(args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def test_visible_writes_the_synth_contract(photo, tmp_path):
    out = tmp_path / "out"
    r = _cli(["visible", photo, "-o", out, *FAST, "--cache-dir", tmp_path / "cache"])
    assert r.exit_code == 0, r.output
    assert set(SYNTH_FILES) <= set(OUTPUT_FILES)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    cam = Camera.load(out / "camera.json")
    zv = read_dem(out / "visible.tif", nan="nodata")
    assert cam.dx_m == pytest.approx(zv.dx_m) and max(zv.shape) == 48
    assert (cam.width, cam.height) == (128, 96)
    mask = np.asarray(Image.open(out / "visible_mask.png")) == 255
    # meshing pointmap.npy (cut at the photo's ridgelines) and filling its enclosed pits
    # reproduces visible.tif and visible_mask.png bit for bit; every cell a point falls in is seen
    from pixels2peaks.perception.contours import ridgelines
    from pixels2peaks.perception.surface import mesh_heightmap

    pm = np.load(out / "pointmap.npy")
    assert pm.shape == (96, 128, 3) and pm.dtype == np.float32
    image = np.asarray(Image.open(out / "image.png").convert("RGB"))
    terrain_px = np.asarray(Image.open(out / "terrain_mask.png")) == 255
    z2, m2 = mesh_heightmap(pm, zv.shape, zv.dx_m, cam.position_m, ridgelines(image, terrain_px))
    assert np.array_equal(m2, mask) and np.array_equal(np.isnan(zv.z), ~mask)
    from pixels2peaks.terrain.hydrology import fill_enclosed

    z2 = fill_enclosed(np.where(mask, z2, np.nan), mask)  # then its enclosed pits are filled
    assert np.array_equal(z2[mask], zv.z[mask])
    _, m_points = project_pointmap(pm, zv.shape, zv.dx_m)
    assert (m_points <= mask).all() and mask.sum() >= m_points.sum()
    # zmax.tif = view_bound(Z_V) cast with the photo's sky (NaN = unbounded), Z_V on the seen cells
    zmax = read_dem(out / "zmax.tif", nan="nodata").z
    ref = view_bound(np.where(mask, zv.z, np.nan), zv.dx_m, cam, sky=~terrain_px)
    assert np.array_equal(np.isnan(zmax), ~np.isfinite(ref))
    assert np.array_equal(zmax[np.isfinite(ref)], ref[np.isfinite(ref)]) and np.isfinite(zmax).sum() > mask.sum()
    # depth.npy: distance along the ray to the point; +inf for sky
    depth = np.load(out / "depth.npy")
    terrain = np.asarray(Image.open(out / "terrain_mask.png")) == 255
    has = np.isfinite(pm).all(axis=2)
    assert np.isposinf(depth[~terrain]).all() and (has <= terrain).all()
    np.testing.assert_allclose(depth[has], np.linalg.norm(pm[has] - np.array(cam.position_m), axis=1), rtol=1e-5)
    assert np.array_equal(np.asarray(Image.open(out / "image.png")), np.asarray(Image.open(photo)))
    priors = json.loads((out / "priors.json").read_text())
    assert 0 < priors["mean_slope_deg"] < 90 and priors["sources"]["mean_slope_deg"].startswith("builtin")
    assert priors["backend"]["name"] == "builtin"
    rep = json.loads((out / "perception.json").read_text())
    assert rep["visible_cells"] == int(mask.sum()) and rep["pitch_deg"] == cam.pitch_deg
    prev = np.asarray(Image.open(out / "preview.png"))
    assert prev.ndim == 3 and prev.shape[0] == 384


def test_visible_cache_and_prior_change(photo, tmp_path):
    cache = ["--cache-dir", tmp_path / "cache"]
    r = _cli(["visible", photo, "-o", tmp_path / "a", *FAST, *cache])
    assert r.exit_code == 0, r.output
    r = _cli(["visible", photo, "-o", tmp_path / "b", *FAST, *cache])
    assert r.exit_code == 0, r.output
    st = json.loads((tmp_path / "b" / "perception.json").read_text())["stages"]
    assert all(s["cached"] for s in st.values())
    for name in ("visible.tif", "zmax.tif", "pointmap.npy", "camera.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # a new slope prior re-runs the projection and Z_max, not segmentation / geometry / DBSCAN
    r = _cli(["visible", photo, "-o", tmp_path / "c", *FAST, *cache, "--slope", "12"])
    assert r.exit_code == 0, r.output
    st = json.loads((tmp_path / "c" / "perception.json").read_text())["stages"]
    assert [k for k, s in st.items() if not s["cached"]] == ["projection", "zmax"]
    # --no-cache computes everything
    r = _cli(["visible", photo, "-o", tmp_path / "d", *FAST, "--no-cache"])
    st = json.loads((tmp_path / "d" / "perception.json").read_text())["stages"]
    assert r.exit_code == 0 and not any(s["cached"] for s in st.values())


def test_visible_stdin_and_bad_input(photo, tmp_path):
    r = _cli(["visible", "-", "-o", tmp_path / "s", *FAST, "--no-cache"], input=photo.read_bytes())
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s" / "perception.json").read_text())["image"] == "<stdin>"
    r = _cli(["visible", "-", "-o", tmp_path / "t", *FAST, "--no-cache"], input=b"not an image")
    assert r.exit_code == 2 and "<stdin> is not an image" in r.output and not (tmp_path / "t").exists()
    r = _cli(["visible", "-", "-o", tmp_path / "u", *FAST, "--no-cache"], input=b"")
    assert r.exit_code == 2 and "no image data" in r.output
    # option values that used to end in a traceback: one line, exit 2, nothing written
    for bad, said in ((["--fov", "0"], "--fov must be in (0, 180)"), (["--fov", "inf"], "--fov must be in (0, 180)"),
                      (["--pitch-step", "1e-9"], "--pitch-step must be in"),
                      (["--priors", "vlm", "--vlm-url", "http://[::1"], "bad VLM URL"),
                      (["--z-min", "-1e30", "--z-max", "1e30"], "elevations must be finite metres"),
                      (["--priors", "vlm", "--vlm-url", "http://127.0.0.1:99999/v1"], "Port out of range"),
                      (["--priors", "vlm", "--vlm-url", "http://127.0.0.1:9/v1", "--vlm-timeout", "nan"],
                       "--vlm-timeout must be a positive number")):
        r = _cli(["visible", photo, "-o", tmp_path / "v", *FAST, "--no-cache", *bad])
        assert r.exit_code == 2 and said in r.output and "Traceback" not in r.output, (bad, r.output)
        assert not (tmp_path / "v").exists()


def test_visible_converts_modes_and_refuses_huge(photo, tmp_path, monkeypatch):
    rgb = np.asarray(Image.open(photo))
    # 16-bit grayscale PNG
    g16 = tmp_path / "g16.png"
    Image.fromarray(rgb.mean(axis=2).astype(np.uint16) * 257).save(g16)
    r = _cli(["visible", g16, "-o", tmp_path / "g", *FAST, "--no-cache"])
    assert r.exit_code == 0, r.output
    # CMYK JPEG displayed rotated by EXIF: the camera has the displayed size
    cmyk = tmp_path / "rot.jpg"
    im = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).convert("CMYK")  # stored on its side
    exif = im.getexif()
    exif[0x0112] = 6  # displayed rotated 90 deg clockwise = upright
    im.save(cmyk, exif=exif, quality=95)
    r = _cli(["visible", cmyk, "-o", tmp_path / "c", *FAST, "--no-cache"])
    assert r.exit_code == 0, r.output
    cam = Camera.load(tmp_path / "c" / "camera.json")
    assert (cam.width, cam.height) == (128, 96)
    # more than the pixel limit: one line, nothing written
    import pixels2peaks.perception.image as image_mod

    monkeypatch.setattr(image_mod, "MAX_PIXELS", 10_000)
    r = _cli(["visible", photo, "-o", tmp_path / "h", *FAST, "--no-cache"])
    assert r.exit_code == 2 and "megapixels" in r.output and r.output.count("\n") == 1
    assert not (tmp_path / "h").exists()


def test_visible_pitch_and_elevation_range_overrides_win(photo, tmp_path):
    out = tmp_path / "out"
    r = _cli(["visible", photo, "-o", out, *FAST, "--no-cache", "--pitch", "7.5", "--elevation-range", "800", "2400"])
    assert r.exit_code == 0, r.output
    cam = Camera.load(out / "camera.json")
    assert cam.pitch_deg == 7.5
    priors = json.loads((out / "priors.json").read_text())
    assert priors["elevation_range_m"] == [800.0, 2400.0] and priors["sources"]["elevation_range_m"] == "user"
    zv = read_dem(out / "visible.tif", nan="nodata").z
    assert np.nanmax(zv) == pytest.approx(2400.0, abs=1e-2) and np.nanmin(zv) >= 800.0 - 1e-2
    for bad, msg in ((["--pitch", "95"], "--pitch must be in"),
                     (["--elevation-range", "800", "2400", "--z-min", "0", "--z-max", "10"], "elevation range once")):
        r = _cli(["visible", photo, "-o", tmp_path / "bad", *FAST, "--no-cache", *bad])
        assert r.exit_code == 2 and msg in r.output and not (tmp_path / "bad").exists()


def test_limits_name_the_option_and_fail_before_perception(photo, tmp_path, monkeypatch):
    """--size / --cells over the grid limit fail before any stage runs; a --dx too small for the
    scene is reported in one line that names --dx, with no progress rows or blank line before it."""
    import pixels2peaks.perception.pipeline as pp

    def no_stage(*a, **k):
        raise AssertionError("perception ran")

    with monkeypatch.context() as m:
        m.setattr(pp, "estimate_visible", no_stage)
        r = _cli(["visible", photo, "-o", tmp_path / "a", "--cells", "100000"])
        assert r.exit_code == 2 and "--cells" in r.output and "8192" in r.output
    from pixels2peaks.pipeline.run import RunConfig

    with pytest.raises(InputError, match="--size"):
        RunConfig(size_cells=100000)
    r = CliRunner().invoke(app, ["visible", str(photo), "-o", str(tmp_path / "b"), "--dx", "0.00001"])
    assert r.exit_code == 2
    assert r.output.startswith("error: --dx is too small") and r.output.count("\n") == 1, r.output


def test_output_below_a_file_says_it_is_a_file(photo, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = _cli(["visible", photo, "-o", f / "out" / "deeper"])
    assert r.exit_code == 2 and r.output.strip() == f"error: {f} is a file, not a folder"
