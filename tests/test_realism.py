"""Realism evaluation: closed-form cases of every statistic, the fBm baseline, the verdict and the CLI."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from pixels2peaks.errors import InputError
from pixels2peaks.evaluation.drainage import (
    DrainageConfig,
    concavity,
    drainage_area_cells,
    drainage_samples,
    exceedance_exponent,
    log_binned_fit,
)
from pixels2peaks.evaluation.fractal import fbm, matched_fbm
from pixels2peaks.evaluation.realism import (
    STATISTICS,
    RealismConfig,
    crop_tiles,
    distances,
    evaluate_level,
    hypsometric_integral,
    plan_levels,
    psd_slope,
    relief,
    set_statistics,
    verdict,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------------------------
# closed-form surfaces
# ----------------------------------------------------------------------------------------------
def east_flowing(width: int, rows: int, drop_per_col) -> np.ndarray:
    """Identical rows falling eastwards: the drop between columns c and c+1 is drop_per_col(c)."""
    drops = np.array([drop_per_col(c) for c in range(width - 1)], np.float64)
    z = np.concatenate([np.cumsum(drops[::-1])[::-1], [0.0]])
    return np.tile(z, (rows, 1))


def test_hypsometric_integral_pyramid_and_plane():
    R = 100
    i = np.arange(-R, R + 1)
    pyramid = R - np.maximum(np.abs(i)[:, None], np.abs(i)[None, :]).astype(np.float64)
    # mean of max(|i|, |j|) over the (2R+1)^2 grid is 4R(R+1) / (3(2R+1)): HI -> 1/3 for large R
    exact = 1.0 - 4.0 * (R + 1) / (3.0 * (2 * R + 1))
    assert hypsometric_integral(pyramid) == pytest.approx(exact, rel=1e-12)
    assert abs(exact - 1 / 3) < 4e-3
    plane = np.add.outer(np.arange(50.0), 2.0 * np.arange(70.0))
    assert hypsometric_integral(plane) == pytest.approx(0.5, rel=1e-12)
    assert relief(plane) == pytest.approx(49.0 + 138.0)
    assert np.isnan(hypsometric_integral(np.ones((4, 4))))


@pytest.mark.parametrize("beta", [2.0, 3.0, 4.0])
def test_psd_slope_recovers_fbm_exponent(beta):
    rng = np.random.default_rng(1)
    est = [psd_slope(fbm((256, 256), beta, rng)) for _ in range(4)]
    assert np.mean(est) == pytest.approx(-beta, abs=0.15)


def test_psd_slope_ignores_planes_and_scale():
    z = fbm((128, 128), 3.0, np.random.default_rng(2))
    ramp = np.add.outer(np.arange(128.0), 0.5 * np.arange(128.0))
    a = psd_slope(z, (4, 32))
    assert psd_slope(50.0 * z + 7.0 * ramp + 300.0, (4, 32)) == pytest.approx(a, abs=1e-6)


def test_fbm_is_zero_mean_unit_std_and_seeded():
    a = fbm((64, 80), 2.5, np.random.default_rng(3))
    b = fbm((64, 80), 2.5, np.random.default_rng(3))
    assert a.shape == (64, 80) and np.array_equal(a, b)
    assert abs(a.mean()) < 1e-12 and a.std() == pytest.approx(1.0)
    with pytest.raises(InputError):
        fbm((64, 64), 0.0, np.random.default_rng(0))


def test_matched_fbm_copies_spectrum_slope_and_amplitude():
    rng = np.random.default_rng(4)
    refs = [1000.0 + s * fbm((256, 256), b, rng) for s, b in ((300.0, 2.4), (80.0, 3.4))]
    noise = matched_fbm(refs, 6, np.random.default_rng(5), psd_slope)
    assert noise.shape == (6, 256, 256)
    by_std = {round(float(z.std())): psd_slope(z) for z in noise}
    assert set(by_std) == {300, 80}  # every tile copies one reference's std (and mean)
    assert all(z.mean() == pytest.approx(1000.0) for z in noise)
    assert by_std[300] == pytest.approx(psd_slope(refs[0]), abs=0.25)
    assert by_std[80] == pytest.approx(psd_slope(refs[1]), abs=0.25)


def test_matched_fbm_slope_rms_amplitude():
    from pixels2peaks.terrain.attributes import slope

    ref = 40.0 * fbm((128, 128), 2.6, np.random.default_rng(8))
    noise = matched_fbm([ref], 2, np.random.default_rng(9), lambda z: psd_slope(z, (4, 32)), amplitude="slope_rms")
    rms = [np.sqrt(np.mean(slope(z, 30.0, "tan") ** 2)) for z in (ref, *noise)]
    assert rms[1] == pytest.approx(rms[0], rel=1e-9) and rms[2] == pytest.approx(rms[0], rel=1e-9)
    with pytest.raises(InputError):
        matched_fbm([ref], 1, np.random.default_rng(0), psd_slope, amplitude="range")


# ----------------------------------------------------------------------------------------------
# drainage area, tau, theta
# ----------------------------------------------------------------------------------------------
def test_drainage_area_of_a_tilted_plane():
    """Plane falling east: border cells are outlets, so interior cell (r, c) drains c cells."""
    H, W = 12, 40
    z = east_flowing(W, H, lambda c: 1.0)
    a = drainage_samples(z, 10.0).area_cells.reshape(H, W)
    expected = np.ones((H, W))
    expected[1:-1, 1:] = np.arange(1, W)[None, :]
    assert np.array_equal(a, expected)


def test_drainage_area_cells_on_a_receiver_tree():
    #   0 <- 1 <- 2, 3 -> 1, 4 (root)
    rec = np.array([0, 0, 1, 1, 4])
    assert drainage_area_cells(rec).tolist() == [4.0, 3.0, 1.0, 1.0, 1.0]


def scheidegger_receivers(rows: int, cols: int, seed: int) -> np.ndarray:
    """Scheidegger's random directed network: each cell drains to the row below, one column
    left or right at random (periodic in columns); the last row are outlets."""
    rng = np.random.default_rng(seed)
    r, c = np.divmod(np.arange(rows * cols), cols)
    step = rng.choice([-1, 1], size=rows * cols)
    rec = (r + 1) * cols + (c + step) % cols
    rec[r == rows - 1] = np.arange(rows * cols)[r == rows - 1]
    return rec


def test_tau_of_scheidegger_network_is_four_thirds():
    a = drainage_area_cells(scheidegger_receivers(1200, 1024, 0))
    tau = exceedance_exponent(a, DrainageConfig(tau_range_cells=(10, 1000)))
    assert tau == pytest.approx(4.0 / 3.0, abs=0.04)


def test_tau_fit_of_an_exact_power_law():
    # P(A >= a) = a^(1 - tau) for the quantiles of a Pareto law
    tau = 1.45
    u = (np.arange(200000) + 0.5) / 200000
    a = u ** (1.0 / (1.0 - tau))
    assert exceedance_exponent(a, DrainageConfig(tau_range_cells=(10, 1000))) == pytest.approx(tau, abs=5e-3)


def test_theta_zero_on_a_plane():
    z = east_flowing(400, 8, lambda c: 3.0)
    s = drainage_samples(z, 30.0)
    assert s.channel_area_cells.min() >= 32 and s.channel_slope == pytest.approx(0.1)
    assert concavity(s.channel_area_cells, s.channel_slope) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("theta", [0.3, 0.5])
def test_theta_of_a_surface_built_with_flints_law(theta):
    dx, k = 30.0, 0.4
    # interior column c drains c cells: drop over the next cell = dx * k * c^-theta
    z = east_flowing(600, 6, lambda c: dx * k * max(c, 1) ** -theta)
    exact = drainage_samples(z, dx, DrainageConfig(reach_cells=1))
    assert exact.channel_slope == pytest.approx(k * exact.channel_area_cells.astype(np.float64) ** -theta, rel=1e-5)
    assert concavity(exact.channel_area_cells, exact.channel_slope) == pytest.approx(theta, abs=1e-5)
    reach = drainage_samples(z, dx)  # default 4-cell reach: a local mean of the same law
    assert concavity(reach.channel_area_cells, reach.channel_slope) == pytest.approx(theta, abs=0.02)


def test_theta_skips_depressions_and_is_small_on_noise():
    rng = np.random.default_rng(6)
    tiles = [500.0 * fbm((128, 128), 3.0, rng) for _ in range(3)]
    st = set_statistics(tiles, 30.0, RealismConfig(tile_cells=128))
    assert abs(st.theta) < 0.2
    assert 1.3 < st.tau < 1.7


def test_log_binned_fit_exact_line():
    x = np.logspace(0, 4, 500)
    slope, icpt = log_binned_fit(x, 3.0 * x**-0.7, 5)
    assert slope == pytest.approx(-0.7, abs=1e-9) and icpt == pytest.approx(np.log(3.0), abs=1e-9)


# ----------------------------------------------------------------------------------------------
# set comparison and verdict
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_sets():
    rng = np.random.default_rng(7)
    real = np.stack([1000 + 200 * fbm((64, 64), 3.2, rng) for _ in range(5)])
    other = np.stack([1000 + 60 * fbm((64, 64), 2.2, rng) for _ in range(5)])
    return real, other


def test_distances_of_identical_sets_are_zero(small_sets):
    real, other = small_sets
    cfg = RealismConfig(tile_cells=64)
    a = set_statistics(real, 60.0, cfg)
    d = distances(a, a)
    assert set(d) == set(STATISTICS) | {"local_relief_m", "geomorphons"} and all(v == 0.0 for v in d.values())
    b = set_statistics(other, 60.0, cfg)
    d2 = distances(b, a)
    assert d2["relief_m"] > 0 and d2["slope_deg"] > 0 and d2["psd_slope"] > 0.5
    # W1 of per-tile values equals the sorted-pairs formula for equal set sizes
    assert d2["relief_m"] == pytest.approx(np.mean(np.abs(np.sort(a.tiles["relief_m"]) - np.sort(b.tiles["relief_m"]))))


def test_verdict_counts():
    d_model = dict.fromkeys(STATISTICS, 1.0)
    d_noise = dict.fromkeys(STATISTICS, 2.0)
    d_floor = dict.fromkeys(STATISTICS, 1.0)
    d_noise["psd_slope"] = d_noise["relief_m"] = 0.5  # noise wins on two
    d_floor["mdd_m"] = d_floor["tau"] = d_floor["theta"] = 0.4  # model > 2x floor on three
    v = verdict(d_model, d_noise, d_floor, 1.50, 1.45, 0.3, 0.5)
    assert v["n_closer_than_noise"] == 6 and v["n_within_floor"] == 5
    assert v["tau_ok"] and v["theta_ok"] and v["pass"]
    # the floor's own score on the first check: it beats the noise where the noise is at 2.0
    # and loses on psd_slope / relief_m (noise 0.5 < floor 1.0)
    assert v["floor_n_closer_than_noise"] == 6
    assert not v["floor_closer_than_noise"]["psd_slope"] and v["floor_closer_than_noise"]["mdd_m"]
    v = verdict(d_model, d_noise, d_floor, 1.60, 1.45, 0.3, 0.5)
    assert not v["tau_ok"] and not v["pass"]
    v = verdict(d_model, d_noise, d_floor, 1.45, 1.45, 0.2, 0.5)
    assert not v["theta_ok"] and not v["pass"]
    d_noise["mdd_m"] = 1.0  # a tie is not "closer"
    assert not verdict(d_model, d_noise, d_floor, 1.45, 1.45, 0.5, 0.5)["pass"]


def test_evaluate_level_real_copy_beats_noise(small_sets):
    real, other = small_sets
    cfg = RealismConfig(tile_cells=64)
    res = evaluate_level(60.0, real.copy(), real, other, cfg)
    assert res["n_tiles"] == {"reference": 5, "model": 5, "noise": 5, "floor": 5}
    assert all(v == 0.0 for v in res["distances"]["model"].values())
    assert res["verdict"]["n_within_floor"] == 8
    assert res["verdict"]["n_closer_than_noise"] >= 6
    # issue [hidden-terrain]'s rule: a copy of the held-out tiles has their geomorphons exactly
    # and cannot be told from them (accuracy at most chance; too few crops for much more)
    assert res["distances"]["model"]["geomorphons"] == 0.0 and res["verdict"]["geomorphon_ok"]
    assert res["two_sample_accuracy"]["model"] <= 0.6 and set(res["two_sample_accuracy"]) == {"model", "noise", "floor"}
    assert json.loads(json.dumps(res))["dx_m"] == 60.0
    with pytest.raises(InputError, match="held-out"):
        evaluate_level(60.0, real, real[:2], other, cfg)


def test_crop_tiles():
    t = np.arange(2 * 130 * 200, dtype=np.float64).reshape(2, 130, 200)
    c = crop_tiles(t, 64)
    assert c.shape == (2 * 2 * 3, 64, 64)
    assert np.array_equal(c[1], t[0, :64, 64:128])
    assert crop_tiles(t, 256).shape == (0, 256, 256)


# ----------------------------------------------------------------------------------------------
# dataset plan and CLI
# ----------------------------------------------------------------------------------------------
def write_dataset(root, tiles):
    """A minimal prior dataset: {(split, dx): (N, T, T)} -> shards + manifest."""
    shards = []
    for (split, dx), z in tiles.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        rel = f"{split}/dx{dx:g}_000.npz"
        np.savez(root / rel, z=z.astype(np.float32), dx_m=np.full(len(z), dx), prov=np.array(["{}"] * len(z)))
        shards.append(rel)
    (root / "manifest.json").write_text(json.dumps({"shards": shards}))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, small_sets):
    real, other = small_sets
    root = tmp_path_factory.mktemp("ds")
    return write_dataset(root, {("val", 60.0): real, ("train", 60.0): other, ("train", 30.0): other[:2],
                                ("val", 30.0): real[:1]})


def test_plan_levels(dataset):
    cfg = RealismConfig(tile_cells=64)
    plan = plan_levels(dataset, None, cfg)
    assert list(plan.reference) == [60.0] and len(plan.train[60.0]) == 5
    assert "30" in plan.skipped
    assert plan_levels(dataset, [60.0], cfg).skipped == {"30": "1 held-out tile(s) of 64^2 (minimum 4)"}
    with pytest.raises(InputError, match="only 1 held-out"):
        plan_levels(dataset, [30.0], cfg)
    with pytest.raises(InputError, match="only 0 held-out"):
        plan_levels(dataset, [960.0], cfg)


@pytest.fixture()
def app():
    from pixels2peaks.cli.evaluate import register

    a = typer.Typer()
    register(a)
    return a


def test_evaluate_realism_cli_from_sample_folder(app, dataset, small_sets, tmp_path):
    from pixels2peaks.io import write_geotiff

    real, other = small_sets
    folder = tmp_path / "samples"
    folder.mkdir()
    for i, z in enumerate(other):
        write_geotiff(folder / f"s{i}.tif", z.astype(np.float32), dx_m=60.0)
    out = tmp_path / "realism.json"
    r = CliRunner().invoke(app, ["evaluate", "realism", "--data", str(dataset), "--samples", str(folder),
                                 "--tile", "64", "-n", "4", "-o", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    lev = rep["levels"]["60"]
    assert lev["n_tiles"]["model"] == 4 and lev["n_tiles"]["reference"] == 5
    assert set(lev["distances"]["model"]) == set(STATISTICS) | {"local_relief_m", "geomorphons"}
    assert rep["skipped_levels"] == {"30": "1 held-out tile(s) of 64^2 (minimum 4)"}
    assert "closer than noise" in r.output and "model<noise?" in r.output
    d = lev["distances"]
    n_floor = sum(d["floor"][k] < d["noise"][k] for k in STATISTICS)
    assert lev["verdict"]["floor_n_closer_than_noise"] == n_floor
    assert f"real training terrain: closer than noise {n_floor}/8" in " ".join(r.output.split())
    # same run again without --overwrite: refused, report untouched
    before = out.read_text()
    r = CliRunner().invoke(app, ["evaluate", "realism", "--data", str(dataset), "--samples", str(folder),
                                 "--tile", "64", "-o", str(out)])
    assert r.exit_code == 2 and "exists" in r.output and out.read_text() == before


def test_evaluate_realism_cli_samples_with_a_tiny_prior(app, dataset, tmp_path):
    import torch

    from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, save_prior
    from tiny_diffusion import TINY

    torch.manual_seed(0)
    wp, _ = save_prior(TerrainPrior(PriorConfig(**TINY)), tmp_path / "w" / "p.safetensors")
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["evaluate", "realism", "--data", str(dataset), "--weights", str(wp), "--dx", "60",
                                 "--tile", "64", "-n", "2", "--steps", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["levels"]["60"]["n_tiles"]["model"] == 2 and rep["model"]["steps"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{tmp}/nope"], "no dataset manifest"),
        (["--dx", "30"], "only 1 held-out"),
        (["-n", "0"], "-n and --steps must be >= 1"),
        (["--tile", "16"], "tile_cells must be >= 32"),
        (["--samples", "{tmp}/empty"], "no GeoTIFF samples"),
    ],
)
def test_evaluate_realism_cli_bad_input(app, dataset, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "r.json"
    base = ["evaluate", "realism", "--data", str(dataset), "--tile", "64", "-o", str(out)]
    r = CliRunner().invoke(app, base + [a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert f"error: {message}" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_acceptance_of_issue_hidden_terrain():
    from pixels2peaks.evaluation.realism import acceptance

    d = {"geomorphons": 0.10}
    ok = acceptance(d, {"geomorphons": 0.40}, {"geomorphons": 0.06}, {"model": 0.7}, 1.5, 1.45, 0.3, 0.5)
    assert ok["pass"] and ok["geomorphon_ok"] and ok["c2st_ok"]
    assert not acceptance(d, {"geomorphons": 0.25}, {"geomorphons": 0.06}, {"model": 0.7}, 1.5, 1.45, 0.3, 0.5)["pass"]
    assert not acceptance(d, {"geomorphons": 0.40}, {"geomorphons": 0.04}, {"model": 0.7}, 1.5, 1.45, 0.3, 0.5)["pass"]
    assert not acceptance(d, {"geomorphons": 0.40}, {"geomorphons": 0.06}, {"model": 0.85}, 1.5, 1.45, 0.3, 0.5)["pass"]
    assert not acceptance(d, {"geomorphons": 0.40}, {"geomorphons": 0.06}, {}, 1.5, 1.45, 0.3, 0.5)["c2st_ok"]
    assert not acceptance(d, {"geomorphons": 0.40}, {"geomorphons": 0.06}, {"model": 0.7}, 1.6, 1.45, 0.3, 0.5)["pass"]
