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
    # the same files again: refused without --overwrite (untouched), replaced with it; other files stay
    (tmp_path / "out" / "mine.txt").write_text("keep")
    before = tifs[0].read_bytes()
    args = ["sample", "--dx", "60", "--size", "32", "-n", "2", "--steps", "2", "--weights", str(wp),
            "-o", str(tmp_path / "out"), "--base-m", "5"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "exists; pass --overwrite" in r.output and tifs[0].read_bytes() == before
    r = CliRunner().invoke(app, [*args, "--overwrite"])
    assert r.exit_code == 0, r.output
    assert np.nanmin(read_dem(tifs[0]).z) == pytest.approx(5.0) and (tmp_path / "out" / "mine.txt").exists()
    # an output folder that cannot be made fails before sampling, in one line
    r = CliRunner().invoke(app, ["sample", "--dx", "60", "--size", "32", "--steps", "2", "--weights", str(wp),
                                 "-o", str(tmp_path / "missing" / "out")])
    assert r.exit_code == 2 and "output folder" in r.output and "does not exist" in r.output


def test_sample_cli_bad_input(app, tmp_path):
    r = CliRunner().invoke(app, ["sample", "--dx", "0", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "error: --dx must be in (0, " in r.output
    assert not (tmp_path / "o").exists()
    for bad in (["--dx", "1e308"], ["--dx", "60", "--base-m", "nan"], ["--dx", "60", "--size", "100000"]):
        r = CliRunner().invoke(app, ["sample", *bad, "-o", str(tmp_path / "o")])
        assert r.exit_code == 2 and "error: " in r.output and not (tmp_path / "o").exists(), r.output
    for bad in (["--seed", "-1"], ["--seed", str(2**40)], ["--threads", "0"], ["--threads", "100000"]):
        r = CliRunner().invoke(app, ["sample", "--dx", "60", *bad, "-o", str(tmp_path / "o")])
        assert r.exit_code == 2 and "Invalid value" in r.output and not (tmp_path / "o").exists(), r.output
    r = CliRunner().invoke(app, ["train", str(tmp_path / "missing.toml"), "--max-steps", "-1"])
    assert r.exit_code == 2 and "Invalid value" in r.output
    r = CliRunner().invoke(app, ["train", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "training config not found" in r.output
    r = CliRunner().invoke(app, ["dataset", "build", str(tmp_path / "nope"), "-o", str(tmp_path / "ds")])
    assert r.exit_code == 2 and not (tmp_path / "ds").exists()
    # every input unreadable: an error, and no empty dataset folder left behind
    (tmp_path / "junk.tif").write_text("not a raster")
    r = CliRunner().invoke(app, ["dataset", "build", str(tmp_path / "junk.tif"), "-o", str(tmp_path / "ds")])
    assert r.exit_code == 2 and "no tiles kept" in r.output and not (tmp_path / "ds").exists()
    r = CliRunner().invoke(app, ["dataset", "build", str(tmp_path / "junk.tif"), "-o", str(tmp_path / "ds"),
                                 "--dx", "nan"])
    assert r.exit_code == 2 and "--dx" in r.output and not (tmp_path / "ds").exists()
    r = CliRunner().invoke(app, ["dataset", "build", str(tmp_path / "junk.tif"), "-o", str(tmp_path / "junk.tif")])
    assert r.exit_code == 2 and "not a directory" in r.output
