"""`p2p complete` on bad input (issue #5): one `error:` line on stderr, exit 2, nothing written;
and the documented behaviour for sizes that are not a multiple of the tile."""

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, save_prior
from pixels2peaks.io import read_dem, write_geotiff
from pixels2peaks.training.synthetic import fractal
from tiny_diffusion import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, W = 37, 45  # neither a multiple of the tile (256) nor of the U-Net's downsampling (16)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    wp, _ = save_prior(TerrainPrior(PriorConfig(**TINY)).eval(), tmp_path_factory.mktemp("w") / "p.safetensors",
                       dtype=torch.float32)
    return wp


def _write(tmp, z_v, m, zmax):
    write_geotiff(tmp / "visible.tif", z_v.astype(np.float32), dx_m=50.0)
    write_geotiff(tmp / "zmax.tif", np.where(np.isfinite(zmax), zmax, np.nan).astype(np.float32), dx_m=50.0)
    Image.fromarray((np.asarray(m) * 255).astype(np.uint8)).save(tmp / "mask.png")


@pytest.fixture()
def inputs(tmp_path):
    z = fractal(64, 5, 600.0).astype(np.float64)[:H, :W]
    m = np.zeros((H, W), bool)
    m[:, : W // 2] = True
    z_v = np.where(m, z, np.nan)
    zmax = np.where(m, z, float(z.max()) + 30.0)
    _write(tmp_path, z_v, m, zmax)
    return tmp_path, z, m, zmax


def _run(app, tmp, weights, *extra):
    args = ["complete", str(tmp / "visible.tif"), "--mask", str(tmp / "mask.png"), "--zmax", str(tmp / "zmax.tif"),
            "-o", str(tmp / "out"), "--weights", str(weights), "--steps", "2", "--quiet", "--threads", "1", *extra]
    return CliRunner().invoke(app, args)


def _one_error(res, needle):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    "case, needle",
    [
        ("mask_all_black", "no visible cell"),
        ("mask_all_white", "nothing to complete"),
        ("zmax_below_visible", "zmax is below"),
        ("nan_in_visible", "NaN"),
        ("zmax_other_size", "--zmax is"),
    ],
)
def test_bad_input_one_error_line_nothing_written(complete_app, weights, inputs, case, needle):
    tmp, z, m, zmax = inputs
    if case == "mask_all_black":
        _write(tmp, np.where(m, z, np.nan), np.zeros_like(m), zmax)
    elif case == "mask_all_white":
        _write(tmp, z, np.ones_like(m), np.maximum(zmax, z))
    elif case == "zmax_below_visible":
        _write(tmp, np.where(m, z, np.nan), m, np.where(m, z - 25.0, zmax))
    elif case == "nan_in_visible":
        z_v = np.where(m, z, np.nan)
        z_v[5, 3] = np.nan  # a white mask cell without a height
        _write(tmp, z_v, m, zmax)
    else:
        write_geotiff(tmp / "zmax.tif", zmax[:-1].astype(np.float32), dx_m=50.0)
    res = _run(complete_app, tmp, weights)
    _one_error(res, needle)
    assert not (tmp / "out").exists()


def test_size_not_a_multiple_of_the_tile_is_completed(complete_app, weights, inputs):
    """Documented behaviour (docs/guided-completion.md): any size works, tiles are padded; the
    output keeps the input grid (no polishing) and the visible cells exactly."""
    tmp, z, m, _ = inputs
    res = _run(complete_app, tmp, weights, "--no-polish")
    assert res.exit_code == 0, res.output
    d = read_dem(tmp / "out" / "heightmap.tif")
    assert d.shape == (H, W) and np.isfinite(d.z).all()
    assert np.array_equal(d.z[m], z[m].astype(np.float32))


def test_outputs_appear_together_or_not_at_all(complete_app, weights, inputs):
    """A folder named like one output (report.json) is in the way: one error line naming it, and
    neither heightmap.tif nor hillshade.png is written; afterwards a clean run writes all three."""
    tmp, _, _, _ = inputs
    (tmp / "out" / "report.json").mkdir(parents=True)
    res = _run(complete_app, tmp, weights, "--no-polish", "--overwrite")
    _one_error(res, "report.json: a folder of that name is in the way")
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["report.json"]
    (tmp / "out" / "report.json").rmdir()
    res = _run(complete_app, tmp, weights, "--no-polish", "--overwrite")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["heightmap.tif", "hillshade.png", "report.json"]


def test_mask_that_is_a_folder_says_so(complete_app, weights, inputs):
    tmp, _, _, _ = inputs
    (tmp / "mask.png").unlink()
    (tmp / "mask.png").mkdir()
    _one_error(_run(complete_app, tmp, weights), "is a folder, not a PNG file")
    assert not (tmp / "out").exists()
