"""`p2p sample` beyond one model tile (SpotDiffusion tiling) with a tiny random prior."""

import numpy as np
import pytest
import torch
import typer
from tiny_diffusion import TINY
from typer.testing import CliRunner

from pixels2peaks.cli.prior import register
from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, sample, save_prior
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
    z = sample_heightmaps(tiny, 3, 32, 60.0, steps=3, seed=5, batch=2)
    ref = sample(tiny, 3, 32, 60.0, steps=3, seed=5)[:, 0].double().numpy() * tiny.cfg.normalization(60.0).scale_m
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_tiled_sample_is_seeded_and_uses_tiles(tiny):
    calls = []
    a = sample_heightmaps(tiny, 2, 72, 60.0, steps=3, seed=1, on_step=lambda k, n: calls.append((k, n)))
    b = sample_heightmaps(tiny, 2, 72, 60.0, steps=3, seed=1)
    c = sample_heightmaps(tiny, 2, 72, 60.0, steps=3, seed=2)
    assert a.shape == (2, 72, 72) and np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert calls[-1] == (6, 6)  # 3 steps x 2 maps, one map at a time


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


@pytest.mark.parametrize("args, message", [(["--size", "8"], "--size must be at least 16"),
                                           (["--dx", "-1"], "--dx must be > 0")])
def test_sample_cli_bad_input_writes_nothing(app, tmp_path, args, message):
    out = tmp_path / "o"
    base = {"--dx": "60", "--size": "64"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    r = CliRunner().invoke(app, ["sample", *[x for kv in base.items() for x in kv], "-o", str(out)])
    assert r.exit_code == 2 and f"error: {message}" in r.output
    assert not out.exists()
