"""`p2p sample` beyond one model tile (SpotDiffusion tiling) with a tiny random prior."""

import numpy as np
import pytest
import torch
import typer
from tiny_diffusion import TINY
from typer.testing import CliRunner

from pixels2peaks.cli.prior import register
from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, sample, save_prior
from pixels2peaks.errors import InputError
from pixels2peaks.evaluation.unconditional import is_single_tile, sample_heightmaps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TerrainPrior(PriorConfig(**TINY)).eval()


@pytest.fixture()
def app():
    a = typer.Typer()
    register(a)
    return a


def test_single_tile_equals_model_sample(tiny):
    """Maps of one tile are not tiled and reproduce `diffusion.model.sample` exactly."""
    assert is_single_tile(tiny, 32) and not is_single_tile(tiny, 64) and not is_single_tile(tiny, 31)
    z = sample_heightmaps(tiny, 3, 32, 60.0, steps=3, seed=5, batch=2, polish=None)
    ref = sample(tiny, 3, 32, 60.0, steps=3, seed=5)[:, 0].double().numpy() * tiny.cfg.normalization(60.0).scale_m
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_tiled_sample_is_seeded_and_uses_tiles(tiny):
    calls = []
    a = sample_heightmaps(tiny, 2, 72, 60.0, steps=3, seed=1, polish=None, on_step=lambda k, n: calls.append((k, n)))
    b = sample_heightmaps(tiny, 2, 72, 60.0, steps=3, seed=1, polish=None)
    c = sample_heightmaps(tiny, 2, 72, 60.0, steps=3, seed=2, polish=None)
    assert a.shape == (2, 72, 72) and np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert calls[-1] == (6, 6)  # 3 steps x 2 maps, one map at a time


def test_fluvial_polish_is_algorithm_4_with_erosion_on_the_raw_sample(tiny):
    """The default polish = the polish loop (stream-power step, breach, short walk) applied to the
    raw sample; progress counts its walks; it is seeded; super-resolution is refused."""
    from pixels2peaks.diffusion.polishing import PolishConfig
    from pixels2peaks.evaluation.unconditional import FLUVIAL_POLISH, unconditional_polish

    assert FLUVIAL_POLISH == unconditional_polish(0.3) and FLUVIAL_POLISH.upsample == 1
    calls = []
    raw = sample_heightmaps(tiny, 2, 32, 60.0, steps=3, seed=4, polish=None)
    pol = sample_heightmaps(tiny, 2, 32, 60.0, steps=3, seed=4, on_step=lambda k, n: calls.append((k, n)))
    again = sample_heightmaps(tiny, 2, 32, 60.0, steps=3, seed=4)
    no_ero = sample_heightmaps(tiny, 2, 32, 60.0, steps=3, seed=4, polish=unconditional_polish(0.0))
    assert np.array_equal(pol, again) and np.isfinite(pol).all()
    assert not np.allclose(pol, raw) and not np.allclose(pol, no_ero)
    n_walk = 3 * 2  # 3 iterations x 2 DDIM steps per map
    assert calls[-1][0] == calls[-1][1] == 3 + 2 * n_walk  # one batch of 2 maps x 3 steps, then the walks
    with pytest.raises(InputError, match="upsample must be 1"):
        sample_heightmaps(tiny, 1, 32, 60.0, steps=2, polish=PolishConfig(upsample=2))
    assert np.array_equal(sample_heightmaps(tiny, 1, 32, 60.0, steps=2, seed=4, polish=PolishConfig(enabled=False)),
                          sample_heightmaps(tiny, 1, 32, 60.0, steps=2, seed=4, polish=None))


def test_sample_cli_two_tiles_writes_geotiffs(app, tiny, tmp_path):
    from pixels2peaks.io import read_dem

    wp, _ = save_prior(tiny, tmp_path / "w" / "p.safetensors", dtype=torch.float32)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["sample", "--dx", "120", "--size", "64", "-n", "2", "--seed", "3", "--steps", "2",
                                 "--weights", str(wp), "-o", str(out), "--base-m", "500"])
    assert r.exit_code == 0, r.output
    tifs = sorted(out.glob("*.tif"))
    assert [p.name for p in tifs] == ["sample_dx120_seed3_000.tif", "sample_dx120_seed3_001.tif"]
    for p in tifs:
        d = read_dem(p)
        assert d.shape == (64, 64) and d.dx_m == pytest.approx(120.0)
        assert d.z.dtype == np.float32 and np.isfinite(d.z).all()
        assert float(d.z.min()) == pytest.approx(500.0)
    # the same map as the library call, shifted to the base height
    z = sample_heightmaps(tiny, 2, 64, 120.0, steps=2, seed=3)
    np.testing.assert_allclose(read_dem(tifs[1]).z, (z[1] - z[1].min() + 500.0).astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("args, message", [(["--size", "8"], "--size must be in [16, 8192]"),
                                           (["--dx", "-1"], "--dx must be in (0, ")])
def test_sample_cli_bad_input_writes_nothing(app, tmp_path, args, message):
    out = tmp_path / "o"
    base = {"--dx": "60", "--size": "64"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    r = CliRunner().invoke(app, ["sample", *[x for kv in base.items() for x in kv], "-o", str(out)])
    assert r.exit_code == 2 and f"error: {message}" in r.output
    assert not out.exists()


def test_sample_cli_polish_flags(app, tiny, tmp_path):
    """`--no-polish` writes the raw prior samples, `--erosion K` sets the incision of the polish."""
    from pixels2peaks.evaluation.unconditional import unconditional_polish
    from pixels2peaks.io import read_dem

    wp, _ = save_prior(tiny, tmp_path / "w" / "p.safetensors", dtype=torch.float32)
    common = ["sample", "--dx", "60", "--size", "32", "--seed", "2", "--steps", "2", "--weights", str(wp)]
    for flags, polish in ((["--no-polish"], None), (["--erosion", "1.5"], unconditional_polish(1.5))):
        out = tmp_path / flags[0].strip("-")
        r = CliRunner().invoke(app, common + flags + ["-o", str(out)])
        assert r.exit_code == 0, r.output
        z = sample_heightmaps(tiny, 1, 32, 60.0, steps=2, seed=2, polish=polish)[0]
        np.testing.assert_allclose(read_dem(out / "sample_dx60_seed2_000.tif").z, (z - z.min()).astype(np.float32),
                                   rtol=1e-6, atol=1e-6 * np.ptp(z))
    r = CliRunner().invoke(app, common + ["--erosion", "-1", "-o", str(tmp_path / "bad")])
    assert r.exit_code != 0 and "erosion_k must be >= 0" in r.output and not (tmp_path / "bad").exists()
