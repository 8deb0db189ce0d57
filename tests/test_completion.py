"""Guided completion end to end (paper §5): initialization, polishing, complete(), `p2p complete`."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pixels2peaks.training.synthetic import fractal
from pixels2peaks.diffusion.completion import (
    CompletionConfig,
    CompletionResult,
    GuidanceConfig,
    PolishConfig,
    complete,
    ove,
    resample_inputs,
    vve,
)
from pixels2peaks.diffusion.guidance import HydrologyGuidance
from pixels2peaks.diffusion.initialization import laplacian_init, procedural_init
from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, save_prior
from pixels2peaks.diffusion.polishing import back_projected_upsample, block_mean, coarse_projection, upsample_nearest
from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology import mean_depression_depth
from tiny_diffusion import TINY

FAST = CompletionConfig(
    steps=3, tile_cells=32, tile_min_edge_cells=16, init_octaves=3,
    polish=PolishConfig(ts=(0.05, 0.02), steps=1),
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TerrainPrior(PriorConfig(**TINY)).eval()


def _case(h=40, w=56, seed=3):
    z = fractal(max(h, w), seed, 800.0).astype(np.float64)[:h, :w]
    yy, xx = np.mgrid[0:h, 0:w]
    m = (xx + 0.5 * yy) < 0.55 * w  # the west part is visible
    z_v = np.where(m, z, np.nan)
    zmax = np.where(m, z + 5.0, float(np.nanmax(z_v)) + 50.0)
    zmax[:4, -4:] = np.inf  # some unbounded cells
    return z, z_v, m, zmax


# ---------------------------------------------------------------------------------------------
# initialization (Algorithm 3) and polishing helpers (Algorithm 4)
# ---------------------------------------------------------------------------------------------
def test_procedural_init_respects_known_cells_and_view_bound():
    z, z_v, m, zmax = _case()
    zi = procedural_init(z_v, m, zmax, seed=0)
    assert zi.shape == z.shape and np.isfinite(zi).all()
    assert np.array_equal(zi[m], z_v[m])
    assert (zi[~m] <= zmax[~m] + 1e-9).all()
    assert np.array_equal(zi, procedural_init(z_v, m, zmax, seed=0))
    assert not np.array_equal(zi, procedural_init(z_v, m, zmax, seed=1))
    lap = laplacian_init(z_v, m)
    assert np.array_equal(lap[m], z_v[m]) and np.isfinite(lap).all()


def test_procedural_init_drains_occluded_region():
    """Known cells are walls: the occluded depressions are breached towards the open border."""
    n = 32
    yy, xx = np.mgrid[0:n, 0:n]
    z = 100.0 + 40.0 * np.hypot(yy - 16, xx - 16) / n  # a bowl
    m = xx < 8
    zi = procedural_init(np.where(m, z, np.nan), m, None, seed=0, noise_gain=0.0)
    depth_before = mean_depression_depth(z)
    assert mean_depression_depth(np.where(m, 1e4, zi)) < 0.05 * depth_before


def test_back_projected_upsample_preserves_block_means():
    z = fractal(24, 0, 300.0).astype(np.float64)
    up = back_projected_upsample(z, 2)
    assert up.shape == (48, 48)
    assert np.abs(block_mean(up, 2) - z).max() < 1e-6


def test_coarse_projection_only_lowers_and_reduces_depressions():
    n = 32
    yy, xx = np.mgrid[0:n, 0:n]
    z = 100.0 + 30.0 * np.hypot(yy - 16, xx - 16) / n + 0.1 * xx
    p = coarse_projection(z, 2)
    assert mean_depression_depth(p) < 0.5 * mean_depression_depth(z)
    with pytest.raises(InputError):
        coarse_projection(z, 2, method="nope")


def test_view_metrics():
    z_v = np.array([[1.0, np.nan], [3.0, np.nan]])
    m = np.array([[True, False], [True, False]])
    z = np.array([[2.0, 5.0], [3.0, 1.0]])
    assert vve(z, z_v, m) == pytest.approx(0.25)
    assert ove(z, np.array([[0.0, 4.0], [0.0, np.inf]]), m) == pytest.approx(0.25)
    assert ove(z, None, m) == 0.0


# ---------------------------------------------------------------------------------------------
# complete()
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results(tiny):
    _, z_v, m, zmax = _case()
    calls = []
    out = {
        # the ablation's stages are read off the full run before its final drainage
        "nopolish": complete(z_v, m, zmax, 60.0, FAST.replace(polish=PolishConfig(enabled=False), drain=False),
                             model=tiny),
        "full": complete(z_v, m, zmax, 60.0, FAST, model=tiny, progress=lambda *a: calls.append(a)),
        "full_again": complete(z_v, m, zmax, 60.0, FAST, model=tiny),
        "nodrain": complete(z_v, m, zmax, 60.0, FAST.replace(drain=False), model=tiny),
        "other_seed": complete(z_v, m, zmax, 60.0, FAST.replace(seed=1), model=tiny),
        "noproj": complete(z_v, m, zmax, 60.0, FAST.replace(polish=PolishConfig(ts=(0.05, 0.02), final_projection=False),
                                                            drain=False), model=tiny),
    }
    out["calls"] = calls
    return out


def test_known_cells_come_back_exactly(results):
    _, z_v, m, _ = _case()
    r = results["nopolish"]
    assert isinstance(r, CompletionResult)
    assert r.z.shape == z_v.shape and r.dx_m == 60.0 and r.upsample == 1
    assert np.array_equal(r.z[m], z_v[m].astype(np.float32))
    assert np.isfinite(r.z).all()
    assert r.metrics["vve_m"] == pytest.approx(0.0, abs=1e-4)


def test_polish_upsamples_and_keeps_known_block_means(results):
    _, z_v, m, _ = _case()
    r = results["full"]
    assert r.upsample == 2 and r.z.shape == (80, 112) and r.dx_m == 30.0
    assert r.known.shape == r.z.shape and r.known[::2, ::2].sum() == m.sum()
    relief = float(np.ptp(z_v[m]))
    # without the final drainage, every known block averages to z_v
    nd = results["nodrain"]
    err = np.abs(block_mean(nd.z.astype(np.float64), 2) - z_v)[m]
    assert err.max() <= 1e-4 + 1e-6 * relief + 1e-3  # float32 output rounding included
    assert nd.metrics["known_max_abs_err_m"] == pytest.approx(err.max(), abs=1e-3)
    # the drainage only raises known cells, in the pits the upsampling made, and counts them
    k = r.known
    rise = (r.z.astype(np.float64) - nd.z)[k]
    assert rise.min() >= -1e-3 and int((rise > 0.01).sum()) == r.metrics["drain_known_filled_cells"]
    assert r.metrics["drain_known_fill_max_m"] == pytest.approx(rise.max(), abs=1e-2)
    assert r.metrics["known_max_abs_err_m"] <= rise.max() + 1e-3
    # what is left of the depressions lies in the case's own pits among the known cells
    from pixels2peaks.terrain.hydrology import depression_depth, fill_enclosed

    own = upsample_nearest(np.nan_to_num(fill_enclosed(z_v, m) - z_v) > 1e-3, 2)
    d_nd, d_r = depression_depth(nd.z), depression_depth(r.z)
    assert d_nd[~own].mean() > 0.1 and d_r[~own].mean() < 0.02 * d_nd[~own].mean(), (d_nd[~own].mean(), d_r[~own].mean())
    for k in ("mdd_m", "vve_m", "ove_m", "mdd_main_m"):
        assert np.isfinite(r.metrics[k])
    assert set(r.timings) >= {"init_s", "diffusion_s", "polish_s", "total_s"}
    assert "unet" in r.profile and "breach" in r.profile


def test_same_seed_same_heightmap(results):
    assert np.array_equal(results["full"].z, results["full_again"].z)
    assert not np.array_equal(results["full"].z, results["other_seed"].z)


def test_stages_of_a_full_run_are_the_shorter_runs(results):
    """benchmarks/ablation.py reads the no-polishing and no-final-projection configurations off the
    full run: its main diffusion must be the no-polishing run and its map before the final
    projection the run without it, bit for bit (same seed, generator and tile shifts)."""
    full, nopolish, noproj = results["full"], results["nopolish"], results["noproj"]
    assert np.array_equal(full.z_main, nopolish.z)
    assert full.z_before_projection is not None and nopolish.z_before_projection is None
    assert noproj.z_before_projection is None
    assert np.array_equal(full.z_before_projection, noproj.z)
    assert not np.array_equal(full.z, noproj.z)  # the projection did something (early tiny prior)


def test_progress_reports_every_step(results):
    calls = results["calls"]
    assert calls[0][1] == 0
    done = [c[1] for c in calls]
    assert done == sorted(done) and done[-1] == calls[-1][2]
    assert {c[0] for c in calls} >= {"init", "diffusion", "polish"}


def test_config_round_trip_and_validation():
    from pixels2peaks.diffusion.guidance import GeomorphGuidance

    c = FAST.replace(guidance=GuidanceConfig(hydrology=HydrologyGuidance(weight=3.0),
                                             geomorph=GeomorphGuidance(slope_factor=2, curvature_factor=1, mask="soft")))
    d = json.loads(json.dumps(c.to_dict()))
    assert CompletionConfig.from_dict(d) == c
    with pytest.raises(InputError):
        CompletionConfig.from_dict({"nope": 1})
    for bad in (dict(steps=0), dict(t_start=0.0), dict(init="x"), dict(guidance={"gradient_mode": "x"}),
                dict(device="tpu"), dict(guidance={"hydrology": {"method": "x"}}),
                dict(guidance={"geomorph": {"curvature": "x"}}), dict(guidance={"geomorph": {"mask": "x"}}),
                dict(guidance={"geomorph": {"slope_factor": 0}}), dict(guidance={"geomorph": {"curvature_factor": 2.5}})):
        with pytest.raises(InputError):
            CompletionConfig(**bad)
    with pytest.raises(InputError):
        PolishConfig(ts=(0.01, 0.05))


def test_ablation_modes_run(tiny):
    _, z_v, m, zmax = _case(32, 32)
    nop = PolishConfig(enabled=False)
    for cfg in (FAST.replace(init="noise", polish=nop, steps=2), FAST.replace(init="laplacian", polish=nop, steps=2),
                FAST.replace(guidance=GuidanceConfig(gradient_mode="unet", hydrology=HydrologyGuidance(method="fill")),
                             polish=nop, steps=2),
                FAST.replace(guidance=GuidanceConfig(scale=0.0), polish=nop, steps=2)):
        r = complete(z_v, m, zmax, 60.0, cfg, model=tiny)
        assert np.isfinite(r.z).all() and np.array_equal(r.z[m], z_v[m].astype(np.float32))


def test_default_tile_is_the_priors_tile(tiny):
    _, z_v, m, zmax = _case(48, 48)
    cfg = FAST.replace(tile_cells=None, polish=PolishConfig(enabled=False), steps=1)
    r = complete(z_v, m, zmax, 60.0, cfg, model=tiny)
    assert r.config.tile_cells == tiny.cfg.sample_size == 32  # resolved, and saved resolved
    assert CompletionConfig.from_dict(r.config.to_dict()).tile_cells == 32


@pytest.mark.parametrize(
    "mutate, msg",
    [
        (lambda z, m, zm: (z, np.zeros_like(m), zm), "no visible cell"),
        (lambda z, m, zm: (z, np.ones_like(m), zm), "every cell visible"),
        (lambda z, m, zm: (np.where(m & (np.arange(m.shape[1]) == 0), np.nan, z), m, zm), "no finite height"),
        (lambda z, m, zm: (z, m, np.where(m, z - 10.0, zm)), "zmax is below"),
        (lambda z, m, zm: (z, m[:, :-1], zm), "differ in shape"),
        (lambda z, m, zm: (z[:4, :4], m[:4, :4], None), "too small"),
    ],
)
def test_bad_inputs(tiny, mutate, msg):
    _, z_v, m, zmax = _case()
    z2, m2, zm2 = mutate(z_v, m, zmax)
    with pytest.raises(InputError, match=msg):
        complete(z2, m2, zm2, 60.0, FAST, model=tiny)
    with pytest.raises(InputError, match="dx"):
        complete(z_v, m, zmax, -1.0, FAST, model=tiny)


def test_resample_inputs():
    _, z_v, m, zmax = _case(40, 56)
    z2, m2, zm2, dx2 = resample_inputs(z_v, m, zmax, 60.0, 28)
    assert z2.shape == (20, 28) and m2.shape == (20, 28) and zm2.shape == (20, 28)
    assert dx2 == pytest.approx(120.0)
    assert np.isfinite(z2[m2]).all() and (zm2[m2] >= z2[m2]).all()
    assert resample_inputs(z_v, m, zmax, 60.0, 56)[3] == 60.0
    with pytest.raises(InputError):
        resample_inputs(z_v, m, zmax, 60.0, 2)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def cli_inputs(tmp_path, tiny):
    from PIL import Image

    from pixels2peaks.io import write_geotiff

    _, z_v, m, zmax = _case(36, 44)
    write_geotiff(tmp_path / "visible.tif", z_v.astype(np.float32), dx_m=50.0)
    write_geotiff(tmp_path / "zmax.tif", np.where(np.isfinite(zmax), zmax, np.nan).astype(np.float32), dx_m=50.0)
    Image.fromarray((m * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    wp, _ = save_prior(tiny, tmp_path / "w" / "p.safetensors", dtype=torch.float32)
    return tmp_path, wp, z_v, m


def _args(tmp, wp, out, *extra):
    return ["complete", str(tmp / "visible.tif"), "--mask", str(tmp / "mask.png"), "--zmax", str(tmp / "zmax.tif"),
            "-o", str(out), "--weights", str(wp), "--steps", "2", "--quiet", "--threads", "1", *extra]


def test_cli_complete_no_polish_same_grid(complete_app, cli_inputs):
    from pixels2peaks.io import read_dem

    tmp, wp, z_v, m = cli_inputs
    out = tmp / "out"
    r = CliRunner().invoke(complete_app, _args(tmp, wp, out, "--no-polish"))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["heightmap.tif", "hillshade.png", "report.json"]
    d = read_dem(out / "heightmap.tif")
    assert d.shape == z_v.shape and d.dx_m == pytest.approx(50.0)
    assert np.array_equal(d.z[m], z_v[m].astype(np.float32))
    rep = json.loads((out / "report.json").read_text())
    for k in ("mdd_m", "vve_m", "ove_m", "dx_m", "timings_s", "config"):
        assert k in rep
    assert rep["config"]["polish"]["enabled"] is False and rep["dx_m"] == pytest.approx(50.0)
    # a second run into the non-empty folder needs --overwrite
    r2 = CliRunner().invoke(complete_app, _args(tmp, wp, out, "--no-polish"))
    assert r2.exit_code == 2 and "not empty" in r2.output


def test_cli_complete_polish_halves_dx_and_size_option(complete_app, cli_inputs):
    from pixels2peaks.io import read_dem

    tmp, wp, z_v, m = cli_inputs
    out = tmp / "out2"
    r = CliRunner().invoke(complete_app, _args(tmp, wp, out, "--size", "22"))
    assert r.exit_code == 0, r.output
    d = read_dem(out / "heightmap.tif")
    assert d.shape == (36, 44) and d.dx_m == pytest.approx(50.0)  # 18x22 at 100 m, polished x2
    rep = json.loads((out / "report.json").read_text())
    assert rep["output"]["upsample"] == 2 and any("upsampled" in n for n in rep["notes"])
    assert any("--size" in n for n in rep["notes"])


def test_cli_complete_bad_mask(complete_app, cli_inputs):
    from PIL import Image

    tmp, wp, z_v, m = cli_inputs
    Image.fromarray(np.zeros(m.shape, np.uint8)).save(tmp / "mask.png")
    r = CliRunner().invoke(complete_app, _args(tmp, wp, tmp / "o"))
    assert r.exit_code == 2 and "no visible cell" in r.output
    assert not (tmp / "o").exists()
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp / "mask.png")
    r = CliRunner().invoke(complete_app, _args(tmp, wp, tmp / "o"))
    assert r.exit_code == 2 and "3x3" in r.output


# ---------------------------------------------------------------------------------------------
# the LEM start (issue [hidden-terrain])
# ---------------------------------------------------------------------------------------------
def test_local_relief_closed_form():
    from pixels2peaks.terrain.attributes import local_relief, median_local_relief

    z = np.add.outer(np.zeros(20), 3.0 * np.arange(30))  # a ramp: 3 m per cell eastward
    r = local_relief(z, 5)
    assert np.allclose(r[5:-5, 5:-5], 12.0)  # max - min over 5 cells = 4 x 3 m
    assert median_local_relief(np.full((16, 16), 7.0)) == 0.0
    half = np.zeros(z.shape, bool)
    half[:, :10] = True  # only the western 10 columns count
    assert np.nanmax(local_relief(z, 41, half)) == pytest.approx(27.0)
    assert np.isnan(median_local_relief(z, np.zeros(z.shape, bool)))


def test_lem_init_keeps_known_cells_bound_and_the_visible_relief():
    pytest.importorskip("fastscapelib")
    from pixels2peaks.diffusion.initialization import lem_init
    from pixels2peaks.terrain.attributes import median_local_relief

    z, z_v, m, zmax = _case(64, 64)
    zmax = np.where(m, zmax, np.inf)
    zi = lem_init(z_v, m, zmax, dx_m=60.0, coarse_cells=32, seed=0)
    assert np.isfinite(zi).all() and np.array_equal(zi[m], z_v[m])
    assert np.array_equal(zi, lem_init(z_v, m, zmax, dx_m=60.0, coarse_cells=32, seed=0))
    ratio = median_local_relief(zi, ~m) / median_local_relief(z_v, m)
    lap = laplacian_init(z_v, m)
    flat = median_local_relief(lap, ~m) / median_local_relief(z_v, m)
    assert 0.6 < ratio < 1.6 and flat < 0.6 * ratio  # the harmonic fill is far flatter
    bound = np.where(m, np.inf, float(np.median(z_v[m])))
    zb = lem_init(z_v, m, bound, dx_m=60.0, coarse_cells=32, seed=0)
    assert (zb[~m] <= bound[~m] + 1e-9).all()


def test_lem_start_without_fastscapelib_falls_back_to_algorithm_3(tiny, monkeypatch):
    import pixels2peaks.diffusion.completion as completion

    _, z_v, m, zmax = _case(32, 32)
    nop = PolishConfig(enabled=False)
    monkeypatch.setattr(completion, "fastscapelib_available", lambda: False)
    with pytest.warns(UserWarning, match="needs fastscapelib"):
        a = complete(z_v, m, zmax, 60.0, FAST.replace(init="lem", polish=nop, steps=2), model=tiny)
    b = complete(z_v, m, zmax, 60.0, FAST.replace(init="procedural", polish=nop, steps=2), model=tiny)
    assert np.array_equal(a.z, b.z)


def test_tile_overlap_is_fitted_to_the_prior_and_saved():
    from pixels2peaks.diffusion.completion import _fit_overlap

    assert _fit_overlap(16, 256, 16) == 16  # the shipped prior: 2 x 16 is a multiple of 16
    assert _fit_overlap(16, 16, 4) == 4  # a tiny prior's 16-cell tile: a quarter of it
    assert _fit_overlap(5, 64, 4) == 4  # 2 x overlap must be a multiple of 4
    assert _fit_overlap(16, 64, 3) == 15 and _fit_overlap(0, 256, 16) == 0
