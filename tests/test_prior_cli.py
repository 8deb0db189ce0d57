import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from pixels2peaks.training.synthetic import fractal
from pixels2peaks.cli.prior import register
from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, save_prior


@pytest.fixture()
def app():
    a = typer.Typer()
    register(a)
    return a


def test_dataset_build_cli(app, tmp_path):
    from pixels2peaks.io import write_geotiff

    src = tmp_path / "dems"
    src.mkdir()
    write_geotiff(src / "a.tif", fractal(160, 1, 2500.0), dx_m=30.0)
    write_geotiff(src / "b.tif", fractal(160, 2, 2500.0), dx_m=30.0)
    (src / "junk.asc").write_text("nonsense\n")
    r = CliRunner().invoke(app, ["dataset", "build", str(src), "-o", str(tmp_path / "ds"), "--tile", "64",
                                 "--stride", "32", "--dx", "30", "--dx", "60"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert m["n_train"] > 0 and m["skipped_inputs"] == {"unreadable": 1}


def test_sample_cli_writes_geotiffs(app, tmp_path):
    from pixels2peaks.io import read_dem

    torch.manual_seed(0)
    m = TerrainPrior(PriorConfig(block_out_channels=(32, 32), attention_levels=(1,)))
    wp, _ = save_prior(m, tmp_path / "w" / "p.safetensors")
    r = CliRunner().invoke(app, ["sample", "--dx", "60", "--size", "32", "-n", "2", "--steps", "2",
                                 "--weights", str(wp), "-o", str(tmp_path / "out"), "--base-m", "100"])
    assert r.exit_code == 0, r.output
    tifs = sorted((tmp_path / "out").glob("*.tif"))
    assert len(tifs) == 2
    d = read_dem(tifs[0])
    assert d.shape == (32, 32) and d.dx_m == pytest.approx(60.0)
    assert np.nanmin(d.z) == pytest.approx(100.0)


def test_sample_cli_bad_input(app, tmp_path):
    r = CliRunner().invoke(app, ["sample", "--dx", "0", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "error: --dx must be > 0" in r.output
    assert not (tmp_path / "o").exists()
    r = CliRunner().invoke(app, ["train", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "training config not found" in r.output
    r = CliRunner().invoke(app, ["dataset", "build", str(tmp_path / "nope"), "-o", str(tmp_path / "ds")])
    assert r.exit_code == 2 and not (tmp_path / "ds").exists()
