import numpy as np
import pytest

from pixels2peaks.camera import Camera, Heightfield
from pixels2peaks.errors import InputError
from pixels2peaks.training.trees import TreeConfig, add_trees


def _flat_view():
    """A camera 2 m above flat ground at z = 0, looking north horizontally."""
    hf = Heightfield(np.zeros((300, 300)), 1.0)
    cam = Camera(400, 300, 60.0, (150.0, 20.0, 2.0))
    return cam, hf.render(cam)


def test_one_tree_stands_on_the_ground_with_its_height_and_in_front():
    cam, res = _flat_view()
    img = np.full((300, 400, 3), 90, np.uint8)
    cfg = TreeConfig(count=(1, 1), groves=(1, 1), height_m=(10.0, 10.0), crown_ratio=(0.2, 0.2),
                     crown_depth=(0.4, 0.4), min_distance_m=30.0, max_distance_m=60.0)
    before = (img.copy(), res.depth.copy(), res.hit.copy())
    out, depth, hit = add_trees(img, res, np.array([0.0, -0.6, 0.8]),
                                np.random.default_rng(3), cfg)
    assert all(np.array_equal(a, b) for a, b in zip((img, res.depth, res.hit), before))  # inputs untouched
    changed = depth != res.depth
    assert changed.any() and np.all(depth[changed] < res.depth[changed])  # depth-tested: only in front
    assert np.array_equal(hit, res.hit | changed)
    rows = np.flatnonzero(changed.any(axis=1))
    cy, f = cam.height / 2.0, cam.focal_px
    # the painted rows span the ground at the foot (2 m below the eye) to the top (8 m above it):
    # (cy - top) / (foot - cy) = 8 / 2, whatever the tree's distance D (30-60 m)
    d = float(np.max(depth[changed]))
    assert 30.0 - 2.0 <= d <= 62.0
    top, foot = rows.min(), rows.max() + 1
    assert (cy - top) / (foot - cy) == pytest.approx(4.0, rel=0.15)
    assert f * 10.0 / (foot - top) == pytest.approx(d, rel=0.15)
    assert np.any(out != img)


def test_no_ground_in_range_leaves_the_photo_alone():
    cam, res = _flat_view()
    img = np.zeros((300, 400, 3), np.uint8)
    out, depth, hit = add_trees(img, res, np.array([0.0, 0.0, 1.0]),
                                np.random.default_rng(0), TreeConfig(min_distance_m=5000.0, max_distance_m=6000.0))
    assert np.array_equal(out, img) and np.array_equal(depth, res.depth) and np.array_equal(hit, res.hit)


def test_render_examples_with_trees_keeps_the_views_and_only_brings_depth_closer(tmp_path):
    import json
    from dataclasses import replace

    from pixels2peaks.io import write_geotiff
    from pixels2peaks.training.dataset import CurationConfig, build_dataset
    from pixels2peaks.training.perception_depth import RenderConfig, render_examples
    from pixels2peaks.training.synthetic import fractal

    (tmp_path / "dems").mkdir()
    write_geotiff(tmp_path / "dems" / "m.tif", fractal(192, 10, 800.0), dx_m=30.0)
    build_dataset([str(tmp_path / "dems")], tmp_path / "ds",
                  CurationConfig(tile_cells=64, stride_cells=32, dx_levels_m=(30.0,), thumb_patch_cells=16))
    base = RenderConfig(examples=4, camera=replace(RenderConfig().camera, width=64, height=48), antialias=1)
    runs = {}
    for frac in (0.0, 1.0):
        out = render_examples(tmp_path / "ds", tmp_path / f"r{frac}.npz", replace(base, trees_fraction=frac), progress=False)
        runs[frac] = np.load(out)
    plain, treed = runs[0.0], runs[1.0]
    assert [json.loads(m)["camera"] for m in plain["meta"]] == [json.loads(m)["camera"] for m in treed["meta"]]
    assert all(json.loads(m).get("trees") for m in treed["meta"]) and not any("trees" in m for m in plain["meta"])
    a, b = plain["log_depth"].astype(float), treed["log_depth"].astype(float)
    both = np.isfinite(a) & np.isfinite(b)
    assert np.all(b[both] <= a[both] + 1e-2) and (b[both] < a[both] - 0.05).any()
    assert np.array_equal(treed["terrain"], plain["terrain"] | np.isfinite(b))
    with pytest.raises(InputError, match="trees fraction"):
        render_examples(tmp_path / "ds", tmp_path / "bad.npz", replace(base, trees_fraction=1.5), progress=False)
    assert not (tmp_path / "bad.npz").exists()
