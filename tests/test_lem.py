"""Landscape evolution model (terrain.lem) and the simulated dataset source (training.lem_data)."""

import json

import numpy as np
import pytest

fs = pytest.importorskip("fastscapelib")

from pixels2peaks.errors import InputError
from pixels2peaks.evaluation.drainage import concavity, drainage_samples, exceedance_exponent
from pixels2peaks.terrain.lem import LEMConfig, steady_state
from pixels2peaks.training.lem_data import LEMDataConfig, lem_tiles

LOOPED = ("looped", "looped", "closed", "base")


def _receiver_slope(z, dx):
    n, m = z.shape
    grid = fs.RasterGrid([n, m], [dx, dx], fs.NodeStatus.FIXED_VALUE)
    g = fs.FlowGraph(grid, [fs.SingleFlowRouter(), fs.MSTSinkResolver()])
    g.update_routes(z)
    area = g.accumulate(1.0)
    rec = g.impl().receivers[:, 0]
    dist = g.impl().receivers_distance[:, 0]
    zf = z.ravel()
    return (zf - zf[rec]) / np.maximum(dist, 1e-12), area.ravel()


def test_detachment_limited_steady_state_closed_form():
    """Without diffusion, steady state under uniform uplift has S = (U / K) A^-m at every cell
    (Braun & Willett 2013, n = 1): S A^m equals U / K to 0.1 %."""
    cfg = LEMConfig(diffusivity_m2_yr=0.0, borders=("base",) * 4)
    res = steady_state(np.ones((48, 48)), 100.0, cfg)
    assert res.steady and res.change_ratio < cfg.steady_tol
    s, a = _receiver_slope(res.z, 100.0)
    inside = np.zeros((48, 48), bool)
    inside[1:-1, 1:-1] = True
    ks = s[inside.ravel()] * a[inside.ravel()] ** cfg.area_exp
    np.testing.assert_allclose(np.median(ks), cfg.uplift_m_yr / cfg.k_sp, rtol=1e-3)
    assert np.percentile(np.abs(ks / (cfg.uplift_m_yr / cfg.k_sp) - 1.0), 95) < 0.01


def test_steady_state_drainage_laws_of_real_terrain():
    """A tiny grid reaches steady state; its area exponent tau lies in 1.4-1.6 (real: ~1.43-1.5)
    and its concavity is positive (slope falls with area)."""
    res = steady_state(np.ones((128, 128)), 100.0, LEMConfig(borders=LOOPED))
    assert res.steady
    smp = drainage_samples(res.z, 100.0)
    assert 1.4 <= exceedance_exponent(smp.area_cells) <= 1.6
    assert 0.2 <= concavity(smp.channel_area_cells, smp.channel_slope) <= 0.6


def test_not_steady_is_reported():
    res = steady_state(np.ones((32, 32)), 100.0, LEMConfig(min_steps=5, max_steps=5, check_every=5))
    assert not res.steady and res.steps == 5 and res.change_ratio > 0.01


def test_uplift_pattern_sets_where_ranges_stand():
    """Steady relief follows uplift: the fast-uplift half stands higher than the slow half."""
    u = np.ones((64, 64))
    u[:, 32:] = 4.0
    res = steady_state(u, 100.0, LEMConfig(borders=("base",) * 4))
    assert res.z[8:56, 36:56].mean() > 1.5 * res.z[8:56, 8:28].mean()


@pytest.mark.parametrize("bad", [dict(k_sp=0.0), dict(diffusivity_m2_yr=-1.0), dict(borders=("closed",) * 4),
                                 dict(borders=("looped", "base", "base", "base")), dict(borders=("x",) * 4),
                                 dict(min_steps=10, max_steps=5), dict(check_every=0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(InputError):
        LEMConfig(**bad)


def test_bad_uplift_is_an_input_error():
    with pytest.raises(InputError):
        steady_state(-np.ones((16, 16)), 100.0)
    with pytest.raises(InputError):
        steady_state(np.ones((4, 4)), 100.0)


def test_lem_tiles_height_scale_and_reproducibility():
    """Each tile's centre crop has std(z)/dx = the real table's value times its jitter, and a
    tile's seed regenerates it exactly."""
    cfg = LEMDataConfig(train_per_dx=2, val_per_dx=1, relief_log_sigma=0.0, crop_cells=32,
                        lem=LEMConfig(max_steps=200))
    tiles = list(lem_tiles(48, (120.0, 960.0), cfg, None, None))
    assert [t[2] for t in tiles] == ["train", "train", "val"] * 2
    for z, dx, _, prov in tiles:
        assert z.shape == (48, 48) and z.dtype == np.float32 and z.min() == 0.0
        crop = z[8:40, 8:40]
        np.testing.assert_allclose(crop.std() / dx, cfg.relief_at(dx), rtol=1e-4)
        json.dumps(prov)
    again = list(lem_tiles(48, (120.0, 960.0), cfg, None, None))
    for a, b in zip(tiles, again):
        np.testing.assert_array_equal(a[0], b[0])


def test_dataset_build_lem_source(tmp_path):
    from pixels2peaks.training.dataset import CurationConfig, build_dataset

    cfg = CurationConfig(tile_cells=48, stride_cells=48, dx_levels_m=(120.0,), relief_min_m=10.0)
    lem = LEMDataConfig(train_per_dx=2, val_per_dx=1, lem=LEMConfig(max_steps=150))
    m = build_dataset(["lem"], tmp_path / "ds", cfg, lem=lem)
    assert m["counts"]["lem"]["120"] == {"train": 2, "val": 1}
    assert m["heldout_regions"]["lem"]["kind"] == "simulated"
    d = np.load(tmp_path / "ds" / "train" / "dx120_000.npz")
    assert d["z"].shape == (2, 48, 48)
    assert json.loads(str(d["prov"][0]))["source"] == "lem"
