"""`p2p analyze` and `p2p hydro`: outputs, JSON contract, and bad input -> one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from typer.testing import CliRunner

from pixels2peaks.cli.main import app
from pixels2peaks.io import read_dem, write_geotiff
from pixels2peaks.terrain.hydrology import fill_depressions

runner = CliRunner()

ANALYZE_KEYS = {
    "width", "height", "dx_m", "elevation_min_m", "elevation_max_m", "mean_slope_deg",
    "mean_curvature", "mdd_m", "depression_fraction",
}


def _crater(n: int = 33) -> np.ndarray:
    """A cone-shaped pit in a tilted plane: one closed depression."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    r = np.hypot(x - n // 2, y - n // 2)
    return (100.0 + 0.5 * x + np.minimum(r, 8.0) * 2.0).astype(np.float32)


@pytest.fixture()
def dem_path(tmp_path):
    return write_geotiff(tmp_path / "crater.tif", _crater(), dx_m=10.0, crs="EPSG:32632")


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_analyze_json_contract(dem_path):
    res = _run("analyze", dem_path, "--json")
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    assert ANALYZE_KEYS <= set(stats)
    z = _crater()
    assert (stats["width"], stats["height"], stats["dx_m"]) == (33, 33, 10.0)
    assert stats["elevation_min_m"] == pytest.approx(float(z.min()))
    # MDD: the independent oracle is the filled grid computed by the library function
    assert stats["mdd_m"] == pytest.approx(float((fill_depressions(z).astype(np.float64) - z).mean()), rel=1e-6)
    assert stats["mdd_m"] > 0.1 and 0 < stats["depression_fraction"] < 1


def test_analyze_text(dem_path):
    res = _run("analyze", dem_path)
    assert res.exit_code == 0 and "MDD" in res.stdout and "mean slope" in res.stdout


@pytest.mark.parametrize("op", ["fill", "breach"])
def test_hydro_writes_conditioned_dem(tmp_path, dem_path, op):
    out, png = tmp_path / f"{op}.tif", tmp_path / f"{op}.png"
    res = _run("hydro", op, dem_path, "-o", out, "--depressions", png)
    assert res.exit_code == 0, res.output
    back = read_dem(out)
    assert back.dx_m == 10.0 and png.stat().st_size > 0
    res2 = _run("analyze", out, "--json")
    assert json.loads(res2.stdout)["mdd_m"] == pytest.approx(0.0, abs=1e-9)
    z = _crater()
    assert (back.z >= z).all() if op == "fill" else (back.z <= z).all()
    # refuses to overwrite without --overwrite
    res3 = _run("hydro", op, dem_path, "-o", out)
    assert res3.exit_code == 2 and "--overwrite" in res3.stderr


def _bad_inputs(tmp_path):
    t = Affine(10.0, 0, 500000, 0, -10.0, 4000000)

    def tif(name, a, crs="EPSG:32632", nodata=None):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", width=a.shape[1], height=a.shape[0],
                           count=1, dtype=a.dtype, crs=crs, transform=t, nodata=nodata) as ds:
            ds.write(a, 1)
        return tmp_path / name

    text = tmp_path / "notes.tif"
    text.write_text("this is not a raster\n")
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    nan = np.arange(16, dtype=np.float32).reshape(4, 4)
    nan[2, 2] = np.nan
    inf = np.arange(16, dtype=np.float32).reshape(4, 4)
    inf[1, 1] = np.inf
    return {
        "non-raster": text,
        "empty file": empty,
        "1xN": tif("row.tif", np.arange(8, dtype=np.float32)[None]),
        "all-nodata": tif("nodata.tif", np.full((4, 4), -9999, np.float32), nodata=-9999),
        "NaN cells": tif("nan.tif", nan),
        "inf cells": tif("inf.tif", inf),
        "flat": tif("flat.tif", np.full((5, 5), 7.0, np.float32)),
        "unknown CRS": tif("nocrs.tif", np.arange(25, dtype=np.float32).reshape(5, 5), crs=None),
        "missing": tmp_path / "nope.tif",
    }


@pytest.mark.parametrize("case", [
    "non-raster", "empty file", "1xN", "all-nodata", "NaN cells", "inf cells", "flat",
    "unknown CRS", "missing",
])
@pytest.mark.parametrize("command", ["analyze", "fill", "breach"])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, case, command):
    path = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out" / "result.tif"
    out.parent.mkdir()
    args = ["analyze", path] if command == "analyze" else ["hydro", command, path, "-o", out]
    res = _run(*args)
    assert res.exit_code == 2, (case, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    assert list(out.parent.iterdir()) == []


def test_nan_cells_accepted_as_nodata_on_request(tmp_path):
    path = _bad_inputs(tmp_path)["NaN cells"]
    res = _run("analyze", path, "--json", "--nan-nodata")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["valid_fraction"] == pytest.approx(15 / 16)


def test_unwritable_output_and_binary_camera_are_one_line_errors(tmp_path, dem_path):
    # /proc takes no new files, even for root: the OS's refusal becomes one line naming the path
    res = _run("hydro", "fill", dem_path, "-o", "/proc/p2p_test.tif")
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write /proc/p2p_test.tif"), res.stderr
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not text")
    res = _run("render", dem_path, "--camera", photo, "-o", tmp_path / "r.png")
    assert res.exit_code == 2 and "is not a camera.json" in res.stderr and not (tmp_path / "r.png").exists()


def test_messages_name_the_real_problem(tmp_path, dem_path):
    # a truncated GeoTIFF: GDAL's pointer to an unseen traceback is dropped
    trunc = tmp_path / "trunc.tif"
    data = Path(dem_path).read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    res = _run("analyze", trunc)
    assert res.exit_code == 2 and "previous exception" not in res.stderr
    # an output folder that is a file
    (tmp_path / "file").write_text("x")
    res = _run("hydro", "fill", dem_path, "-o", tmp_path / "file" / "h.tif")
    assert res.exit_code == 2 and "is a file, not a folder" in res.stderr
    res = _run("synth", dem_path, "--random", "--width", "100000", "-o", tmp_path / "s")
    assert res.exit_code == 2 and "--width/--height must be in [1, 16384]" in res.stderr
    assert not (tmp_path / "s").exists()
