"""`p2p synth` / `p2p render`: files, ground-truth consistency (pointmap -> Z_V exactly), atomic
output folders, bad input."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from pixels2peaks.camera import (
    SYNTH_FILES,
    Camera,
    Heightfield,
    RandomCameraRanges,
    project_pointmap,
    random_camera,
    view_bound,
)
from pixels2peaks.cli.main import app
from pixels2peaks.io import read_dem, write_geotiff

runner = CliRunner()
DEMS = Path("/work/shared/data/dems")


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _mountains(n: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = gaussian_filter(rng.normal(size=(n, n)), 4.0)
    return (1500 + z / z.std() * 300).astype(np.float32)


@pytest.fixture(scope="module")
def dem_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("dem")
    return write_geotiff(d / "mountains.tif", _mountains(), dx_m=30.0, crs="EPSG:32611")


@pytest.fixture(scope="module")
def synth_dir(dem_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "view"
    res = _run("synth", dem_path, "-o", out, "--random", "--seed", 4, "--width", 96, "--height", 72,
               "--antialias", 1)
    assert res.exit_code == 0, res.output
    return out


def test_synth_writes_every_file(synth_dir):
    assert sorted(os.listdir(synth_dir)) == sorted(SYNTH_FILES)
    cam = Camera.load(synth_dir / "camera.json")
    assert (cam.width, cam.height, cam.dx_m) == (96, 72, 30.0)
    assert 40 <= cam.fov_x_deg <= 80 and -15 <= cam.pitch_deg <= 10
    img = Image.open(synth_dir / "image.png")
    assert img.mode == "RGB" and img.size == (96, 72)
    depth = np.load(synth_dir / "depth.npy")
    pm = np.load(synth_dir / "pointmap.npy")
    assert depth.dtype == np.float32 and depth.shape == (72, 96)
    assert pm.dtype == np.float32 and pm.shape == (72, 96, 3)
    mask = np.asarray(Image.open(synth_dir / "terrain_mask.png")) == 255
    sky = ~mask
    assert mask.any() and sky.any()
    assert np.isinf(depth[sky]).all() and np.isnan(pm[sky]).all()
    assert np.isfinite(depth[mask]).all() and np.isfinite(pm[mask]).all()
    # depth is the distance along the ray to the point
    np.testing.assert_allclose(cam.world_to_depth(pm[mask].astype(np.float64)), depth[mask], rtol=1e-5)
    u, v = cam.pixel_centres()
    np.testing.assert_allclose(cam.pixel_to_world(u[mask], v[mask], depth[mask]), pm[mask], rtol=1e-5, atol=0.05)


def test_pointmap_reprojection_reproduces_visible_heights_exactly(synth_dir):
    vis = read_dem(synth_dir / "visible.tif")
    assert vis.dx_m == 30.0 and vis.z.shape == (96, 96)
    m_v = np.asarray(Image.open(synth_dir / "visible_mask.png")) == 255
    zv, mv = project_pointmap(np.load(synth_dir / "pointmap.npy"), vis.z.shape, vis.dx_m)
    np.testing.assert_array_equal(mv, m_v)
    np.testing.assert_array_equal(np.isfinite(vis.z), m_v)
    np.testing.assert_array_equal(zv[m_v], vis.z[m_v])  # bit for bit
    # Z_V is terrain seen in the cell: the bilinear surface over a cell footprint lies between
    # the lowest and highest centre heights of the 3x3 cells around it
    from scipy.ndimage import maximum_filter, minimum_filter

    z = _mountains().astype(np.float64)
    lo, hi = minimum_filter(z, 3, mode="nearest"), maximum_filter(z, 3, mode="nearest")
    assert (vis.z[m_v] >= lo[m_v] - 1e-3).all() and (vis.z[m_v] <= hi[m_v] + 1e-3).all()


def test_zmax_file_matches_algorithm_2(synth_dir):
    cam = Camera.load(synth_dir / "camera.json")
    vis = read_dem(synth_dir / "visible.tif")
    zmax = read_dem(synth_dir / "zmax.tif", nan="nodata").z
    expected = view_bound(vis.z, vis.dx_m, cam)
    np.testing.assert_array_equal(np.isnan(zmax), np.isinf(expected))  # NaN on disk = unbounded
    fin = np.isfinite(expected)
    np.testing.assert_array_equal(zmax[fin], expected[fin])
    seen = np.isfinite(vis.z)
    np.testing.assert_array_equal(zmax[seen], vis.z[seen])


def test_synth_with_camera_and_output_grid(dem_path, tmp_path):
    cam = Camera(80, 60, 60.0, (1440.0, 300.0, 2600.0), yaw_deg=5.0, pitch_deg=-12.0, dx_m=30.0)
    cam.save(tmp_path / "camera.json")
    out = tmp_path / "coarse"
    res = _run("synth", dem_path, "-o", out, "--camera", tmp_path / "camera.json", "--dx", 45,
               "--antialias", 1)
    assert res.exit_code == 0, res.output
    vis = read_dem(out / "visible.tif")
    assert vis.dx_m == pytest.approx(45.0) and vis.z.shape == (64, 64)
    zv, mv = project_pointmap(np.load(out / "pointmap.npy"), (64, 64), 45.0)
    np.testing.assert_array_equal(zv[mv], vis.z[mv])
    saved = Camera.load(out / "camera.json")
    assert saved.dx_m == 45.0 and saved.position_m == cam.position_m
    # georeference: same CRS and south-west corner as the DEM
    src = read_dem(dem_path)
    assert vis.crs == src.crs
    assert vis.transform.c == src.transform.c
    assert vis.transform.f + vis.transform.e * 64 == pytest.approx(src.transform.f + src.transform.e * 96)


def test_random_camera_is_deterministic_and_above_ground():
    hf = Heightfield(_mountains(64, seed=2), 30.0)
    rr = RandomCameraRanges(width=64, height=48, candidates=8)
    a, b = random_camera(hf, 7, rr), random_camera(hf, 7, rr)
    assert a == b
    assert a != random_camera(hf, 8, rr)
    x, y, z = a.position_m
    assert 0 <= x <= 64 * 30 and 0 <= y <= 64 * 30
    assert z > float(hf.height_at(x, y))


def test_random_camera_clearance_and_ground_level():
    """Rough mountains, 30 m cells, 5-10 m above ground: with the default clearance (1 cell) the
    camera clears the highest node of its 3x3 block by 1 m (so mostly stands far above the
    ground); with ``clearance_cells=0`` it stands exactly ``agl_m`` above the ground under it."""
    z = _mountains(64, seed=3)
    hf = Heightfield(z, 30.0)
    rr = RandomCameraRanges(width=64, height=48, agl_m=(5.0, 10.0), agl_cells=(0.0, 0.0), candidates=6)
    lifts, cleared = [], []
    for seed in range(6):
        x, y, zc = random_camera(hf, seed, rr).position_m
        i, j = int(64 - y / 30), int(x / 30)
        cleared.append(zc >= z[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].max() + 1.0 - 1e-3)
        x0, y0, z0 = random_camera(hf, seed, replace(rr, clearance_cells=0)).position_m
        lifts.append(z0 - float(hf.height_at(x0, y0)))
    assert all(cleared)
    assert all(5.0 - 1e-3 <= a <= 10.0 + 1e-3 for a in lifts)


def test_random_camera_rise_weight_prefers_terrain_above_eye_level():
    """Same candidates (same seed), bonus for terrain above eye level: the pick's share of such
    terrain cannot fall (argmax of f + w r vs argmax of f), and rises on these scenes."""
    hf = Heightfield(_mountains(96, seed=4), 30.0)
    rr = RandomCameraRanges(width=64, height=48, agl_m=(2.0, 5.0), agl_cells=(0.0, 0.0), clearance_cells=0,
                            near_weight=0.0, candidates=12)

    def rise(cam: Camera) -> float:
        res = hf.render(cam)
        u, v = cam.pixel_centres()
        return float((res.hit & (cam.pixel_to_ray(u, v)[..., 2] > 0.0)).mean())

    plain = [rise(random_camera(hf, s, rr)) for s in range(4)]
    up = [rise(random_camera(hf, s, replace(rr, rise_weight=5.0))) for s in range(4)]
    assert all(b >= a - 0.02 for a, b in zip(plain, up))  # the probe is 64 px, the check full size
    assert sum(up) > sum(plain) + 0.05


def _nadir_share(cam: Camera, extent_m: float) -> float:
    """Share of a flat square grid seen by a camera looking (nearly) straight down from height
    ``z``: its ground footprint, ``2 z tan(fov_x / 2)`` by that times ``height / width``."""
    w = 2.0 * cam.position_m[2] * math.tan(math.radians(cam.fov_x_deg) / 2.0)
    return w * w * cam.height / cam.width / extent_m**2


@pytest.mark.parametrize("lo, hi", [(0.02, 0.04), (0.10, 0.12)])
def test_random_camera_seen_fraction_picks_the_asked_share(lo, hi):
    """Flat ground, cameras looking down from 100-700 m, footprints inside the grid: the share
    seen is the footprint's area (known). Unscored, the pick is a high camera (far view, ~20 %);
    with ``seen_fraction`` it sees the asked share. The probe estimate counts partly covered
    coarse cells, so it runs high (by up to ~50 % for the smallest footprints here): the true
    share may fall to ~2/3 of ``lo``."""
    n, dx = 128, 10.0
    hf = Heightfield(np.zeros((n, n), np.float32), dx)
    rr = RandomCameraRanges(width=64, height=48, fov_x_deg=(60.0, 60.0), pitch_deg=(-89.0, -89.0),
                            agl_m=(100.0, 700.0), agl_cells=(0.0, 0.0), margin=0.45, candidates=30,
                            seen_weight=1000.0)
    unscored = _nadir_share(random_camera(hf, 0, rr), n * dx)
    share = _nadir_share(random_camera(hf, 0, replace(rr, seen_fraction=(lo, hi))), n * dx)
    assert unscored > 0.15
    assert 0.6 * lo <= share <= hi


@pytest.mark.skipif(not (DEMS / "gabilan.bil").exists(), reason="shared DEMs not available")
def test_synth_real_dem_crop(tmp_path):
    dem = read_dem(DEMS / "Mega_divide.bil")
    crop = tmp_path / "crop.tif"
    write_geotiff(crop, dem.z[400:560, 800:960], dx_m=dem.dx_m)
    out = tmp_path / "real"
    res = _run("synth", crop, "-o", out, "--random", "--seed", 1, "--width", 64, "--height", 48)
    assert res.exit_code == 0, res.output
    vis = read_dem(out / "visible.tif")
    zv, mv = project_pointmap(np.load(out / "pointmap.npy"), vis.z.shape, vis.dx_m)
    np.testing.assert_array_equal(zv[mv], vis.z[mv])
    assert mv.sum() > 20


def test_output_folder_rules(dem_path, synth_dir, tmp_path):
    # non-empty without --overwrite: refused, nothing touched
    before = {n: (synth_dir / n).stat().st_mtime_ns for n in SYNTH_FILES}
    res = _run("synth", dem_path, "-o", synth_dir, "--random", "--width", 32, "--height", 24)
    assert res.exit_code == 2 and "not empty" in res.output
    assert {n: (synth_dir / n).stat().st_mtime_ns for n in SYNTH_FILES} == before
    # empty folder: fine; --overwrite replaces
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "keep.txt").write_text("x")
    res = _run("synth", dem_path, "-o", empty, "--random", "--width", 32, "--height", 24, "--overwrite",
               "--antialias", 1)
    assert res.exit_code == 0, res.output
    assert (empty / "keep.txt").exists() and (empty / "zmax.tif").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left behind
    # a file in the way
    (tmp_path / "afile").write_text("x")
    assert _run("synth", dem_path, "-o", tmp_path / "afile", "--random").exit_code == 2


def test_synth_bad_input(dem_path, tmp_path):
    bad_cam = tmp_path / "cam.json"
    bad_cam.write_text(json.dumps({"width": 10, "height": 10, "fov_x_deg": 200, "yaw_deg": 0,
                                   "pitch_deg": 0, "position_m": [0, 0, 5000]}))
    cases = [
        ("synth", dem_path, "-o", tmp_path / "a"),  # neither --camera nor --random
        ("synth", dem_path, "-o", tmp_path / "b", "--random", "--camera", bad_cam),
        ("synth", dem_path, "-o", tmp_path / "c", "--camera", bad_cam),
        ("synth", tmp_path / "missing.tif", "-o", tmp_path / "d", "--random"),
        ("synth", dem_path, "-o", tmp_path / "e", "--random", "--antialias", 0),
    ]
    for args in cases:
        res = _run(*args)
        assert res.exit_code == 2, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("error:")
        assert not (tmp_path / str(args[3])).exists() or args[3] == dem_path
    # camera under the terrain
    under = Camera(10, 10, 60.0, (1440.0, 1440.0, 0.0), dx_m=30.0)
    under.save(tmp_path / "under.json")
    res = _run("synth", dem_path, "-o", tmp_path / "f", "--camera", tmp_path / "under.json")
    assert res.exit_code == 2 and "below the terrain" in res.output
    assert not (tmp_path / "f").exists()


def test_render_command(dem_path, tmp_path):
    cam = Camera(48, 36, 60.0, (1440.0, 300.0, 2600.0), yaw_deg=5.0, pitch_deg=-12.0, dx_m=30.0)
    cam.save(tmp_path / "camera.json")
    res = _run("render", dem_path, "--camera", tmp_path / "camera.json", "-o", tmp_path / "img.png",
               "--depth", tmp_path / "d.npy")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "img.png").size == (48, 36)
    d = np.load(tmp_path / "d.npy")
    assert d.shape == (36, 48) and d.dtype == np.float32 and np.isfinite(d).any()
    # refuses to overwrite, rejects bad suffixes
    res = _run("render", dem_path, "--camera", tmp_path / "camera.json", "-o", tmp_path / "img.png")
    assert res.exit_code == 2 and "exists" in res.output
    res = _run("render", dem_path, "--camera", tmp_path / "camera.json", "-o", tmp_path / "img.tif")
    assert res.exit_code == 2
    res = _run("render", dem_path, "--camera", tmp_path / "camera.json", "-o", tmp_path / "i2.png",
               "--depth", tmp_path / "d.txt")
    assert res.exit_code == 2 and not (tmp_path / "i2.png").exists()
