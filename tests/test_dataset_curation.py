import json

import numpy as np
import pytest

from pixels2peaks.training.synthetic import flat_noise_tile, flat_texture_tile, fractal, mountain, void_tile
from pixels2peaks.errors import InputError
from pixels2peaks.training.data import TileSet, dihedral
from pixels2peaks.training.dataset import CurationConfig, build_dataset, curate_tile, resample_to, texture_score

CFG = CurationConfig(tile_cells=64, stride_cells=32, dx_levels_m=(30.0, 60.0), thumb_patch_cells=16)


def test_curation_drops_void_and_flat_keeps_mountain():
    assert curate_tile(mountain(), 30.0, CFG) is None
    assert curate_tile(void_tile(), 30.0, CFG) == "void"
    assert curate_tile(flat_noise_tile(), 30.0, CFG) == "low_relief"
    assert curate_tile(flat_texture_tile(), 30.0, CFG) == "flat"
    assert texture_score(mountain(), 16) > CFG.texture_min > texture_score(flat_texture_tile(), 16)


def test_relief_threshold_grows_with_extent():
    assert CFG.min_relief_m(960.0) > CFG.min_relief_m(30.0)


def test_resample_block_mean_and_nan_propagation():
    z = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(resample_to(z, 30.0, 60.0), [[2.5, 4.5], [10.5, 12.5]])
    z[0, 0] = np.nan
    r = resample_to(z, 30.0, 60.0)
    assert np.isnan(r[0, 0]) and np.isfinite(r[1:, :]).all() and np.isfinite(r[0, 1])
    r = resample_to(np.ones((30, 30), np.float32), 30.0, 45.0)  # non-integer factor
    assert r.shape == (20, 20) and np.allclose(r, 1.0)


def test_dihedral_gives_8_distinct_views():
    a = np.arange(9).reshape(3, 3)
    assert len({dihedral(a, k).tobytes() for k in range(8)}) == 8


def _write(path, z, dx=30.0):
    from pixels2peaks.io import write_geotiff

    write_geotiff(path, z, dx_m=dx)


def _make_source(tmp_path):
    src = tmp_path / "dems"
    src.mkdir()
    _write(src / "a_mountain.tif", fractal(192, 3, 2500.0))
    _write(src / "b_mountain.tif", fractal(160, 4, 2500.0))
    _write(src / "c_small.tif", mountain(20, 5))  # smaller than one tile
    (src / "d_broken.tif").write_bytes(b"not a tiff at all")
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(src / "e_nodata.tif", "w", driver="GTiff", width=80, height=80, count=1, dtype="float32",
                       nodata=-9999.0, crs="EPSG:32611", transform=from_origin(0, 2400, 30, 30)) as d:
        d.write(np.full((1, 80, 80), -9999.0, np.float32))
    return src


def test_build_dataset_skips_bad_inputs_and_holds_out_a_region(tmp_path):
    src = _make_source(tmp_path)
    out = tmp_path / "ds"
    m = build_dataset([str(src)], out, CFG)
    # small, broken, all-nodata: warned and counted, not fatal
    assert m["skipped_inputs"] == {"too_small": 1, "unreadable": 1, "all_nodata": 1}
    assert len(m["warnings"]) == 3
    region = m["heldout_regions"]["dems"]
    assert region["kind"] == "file" and region["file"] == "b_mountain.tif"  # last usable raster
    assert m["n_train"] > 0 and m["n_val"] > 0
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["counts"] == m["counts"]
    tr = TileSet(out, "train")
    assert len(tr) == m["n_train"] and set(tr.levels) <= {30.0, 60.0}
    with np.load(out / m["shards"][0]) as f:
        prov = json.loads(str(f["prov"][0]))
        assert f["z"].shape[1:] == (64, 64) and np.isfinite(f["z"]).all()
    assert {"source", "file", "window_rc", "dx_m"} <= set(prov)
    x0, dx = tr.batch(np.random.default_rng(0), 4, 32, lambda dx: 1.2)
    assert x0.shape == (4, 1, 32, 32) and dx.shape == (4,)
    with pytest.raises(InputError):  # refuses to overwrite a dataset
        build_dataset([str(src)], out, CFG)


def test_held_out_file_goes_to_val_only(tmp_path):
    src = tmp_path / "dems"
    src.mkdir()
    _write(src / "a.tif", fractal(160, 3, 2500.0))
    _write(src / "b.tif", fractal(160, 4, 2500.0))
    m = build_dataset([str(src)], tmp_path / "ds", CFG)
    assert m["heldout_regions"]["dems"] == {"kind": "file", "file": "b.tif",
                                             "note": "whole raster held out for validation"}
    val = TileSet(tmp_path / "ds", "val")
    for rel in m["shards"]:
        with np.load(tmp_path / "ds" / rel) as f:
            files = {json.loads(str(p))["file"] for p in f["prov"]}
        assert files == ({"b.tif"} if rel.startswith("val/") else {"a.tif"})
    assert len(val) == m["n_val"] > 0


def test_single_raster_east_strip(tmp_path):
    src = tmp_path / "one.tif"
    _write(src, fractal(256, 7, 2500.0))
    m = build_dataset([str(src)], tmp_path / "ds", CFG)
    assert m["heldout_regions"]["one.tif"]["kind"] == "east_strip"
    assert m["n_val"] > 0 and m["n_train"] > 0


def test_bad_source_is_input_error(tmp_path):
    with pytest.raises(InputError):
        build_dataset([str(tmp_path / "nope")], tmp_path / "ds", CFG)
