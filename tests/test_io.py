"""DEM reading/writing (pixels2peaks.io): round trips, nodata, CRS units, bad inputs."""

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine

from pixels2peaks.errors import InputError
from pixels2peaks.io import (
    Dem,
    metres_per_degree,
    png16_encode,
    read_dem,
    write_asc,
    write_dem,
    write_envi,
    write_geotiff,
    write_npy,
    write_npz,
    write_png16,
)


@pytest.fixture
def z():
    rng = np.random.default_rng(42)
    a = (rng.standard_normal((17, 23)) * 300 + 1500).astype(np.float32)
    a[3, 4] = np.nan
    a[0, :5] = np.nan
    return a


def _same(a, b):
    assert a.shape == b.shape and a.dtype == np.float32 == b.dtype
    assert np.array_equal(a, b, equal_nan=True)


def _write_raster(path, arr, *, driver="GTiff", crs=None, transform=None, nodata=None, dtype=None):
    arr = np.asarray(arr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(
            path, "w", driver=driver, height=arr.shape[0], width=arr.shape[1], count=1,
            dtype=dtype or arr.dtype, crs=crs, transform=transform or Affine.identity(), nodata=nodata,
        ) as ds:
            ds.write(arr.astype(dtype or arr.dtype), 1)
    return path


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", [".tif", ".tiff", ".asc", ".bil", ".npz"])
def test_round_trip_exact(tmp_path, z, ext):
    dem = Dem(z=z, dx_m=12.5, source="mem")
    out = write_dem(tmp_path / f"dem{ext}", dem)
    back = read_dem(out)  # cell size travels with the file
    _same(back.z, z)
    assert back.dx_m == 12.5
    assert back.valid.sum() == np.isfinite(z).sum()
    # twice more: stable
    back2 = read_dem(write_dem(tmp_path / f"again{ext}", back))
    _same(back2.z, z)
    assert back2.dx_m == 12.5


def test_round_trip_npy(tmp_path, z):
    out = write_npy(tmp_path / "dem.npy", z)
    _same(read_dem(out, dx_m=2.0, nan="nodata").z, z)
    assert read_dem(out, dx_m=2.0, nan="nodata").dx_m == 2.0
    with pytest.raises(InputError, match="--dx"):
        read_dem(out)
    # a .npy cannot declare nodata: its NaN cells are an error unless asked for
    with pytest.raises(InputError, match="--nan-nodata"):
        read_dem(out, dx_m=2.0)


def test_undeclared_nan_in_geotiff_is_an_error(tmp_path):
    z = np.arange(16, dtype=np.float32).reshape(4, 4)
    z[1, 2] = np.nan
    with rasterio.open(
        tmp_path / "nan.tif", "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
        crs="EPSG:32611", transform=Affine(10.0, 0, 0, 0, -10.0, 40.0),
    ) as ds:
        ds.write(z, 1)
    with pytest.raises(InputError, match="NaN"):
        read_dem(tmp_path / "nan.tif")
    assert np.isnan(read_dem(tmp_path / "nan.tif", nan="nodata").z[1, 2])


def test_round_trip_geotiff_keeps_crs_and_transform(tmp_path, z):
    t = Affine(30.0, 0, 376313.5, 0, -30.0, 3807917.5)
    write_geotiff(tmp_path / "utm.tif", z, dx_m=30.0, crs="EPSG:32611", transform=t)
    back = read_dem(tmp_path / "utm.tif")
    _same(back.z, z)
    assert back.dx_m == 30.0 and back.crs == "EPSG:32611" and tuple(back.transform)[:6] == tuple(t)[:6]
    with rasterio.open(tmp_path / "utm.tif") as ds:
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata) and ds.res == (30.0, 30.0)
    # default transform: top-left corner at (0, H*dx), conventions' world frame
    write_geotiff(tmp_path / "local.tif", z, dx_m=2.0)
    with rasterio.open(tmp_path / "local.tif") as ds:
        assert tuple(ds.transform)[:6] == (2.0, 0.0, 0.0, 0.0, -2.0, 2.0 * z.shape[0])


def test_round_trip_bil_written_by_rasterio(tmp_path, z):
    p = _write_raster(tmp_path / "x.bil", np.where(np.isnan(z), -9999, z), driver="ENVI",
                      crs="EPSG:32644", transform=Affine(88.8, 0, 290249.6, 0, -88.8, 3410073.1),
                      nodata=-9999, dtype="float32")
    assert (tmp_path / "x.hdr").exists()
    for path in (p, tmp_path / "x.hdr"):
        back = read_dem(path)
        _same(back.z, z)
        assert back.dx_m == pytest.approx(88.8) and back.crs == "EPSG:32644"


def test_png16_round_trip(tmp_path, z):
    write_png16(tmp_path / "h.png", z, dx_m=5.0)
    meta = json.loads((tmp_path / "h.json").read_text())
    assert set(meta) == {"scale", "offset", "dx_m", "nodata_value"} and meta["dx_m"] == 5.0
    with Image.open(tmp_path / "h.png") as im:
        raw = np.asarray(im).astype(np.int64)
    codes, scale, offset, nodata = png16_encode(z)
    assert np.array_equal(raw, codes.astype(np.int64))  # integer codes are exact
    assert (scale, offset, nodata) == (meta["scale"], meta["offset"], meta["nodata_value"])
    back = read_dem(tmp_path / "h.png")
    assert back.dx_m == 5.0
    assert np.array_equal(np.isnan(back.z), np.isnan(z))
    ok = np.isfinite(z)
    err = np.abs(back.z[ok].astype(np.float64) - z[ok])
    assert err.max() <= scale / 2 + 1e-4  # quantisation + float32 rounding
    # re-encoding decoded heights gives the same codes (lossless on the integer codes)
    write_dem(tmp_path / "h2.png", back)
    with Image.open(tmp_path / "h2.png") as im:
        assert np.array_equal(np.asarray(im).astype(np.int64), raw)


def test_png16_flat_and_no_nodata(tmp_path):
    flat = np.full((4, 6), 812.25, dtype=np.float32)
    write_png16(tmp_path / "f.png", flat, dx_m=1.0)
    assert "nodata_value" not in json.loads((tmp_path / "f.json").read_text())
    _same(read_dem(tmp_path / "f.png").z, flat)


def test_png_explicit_scale_without_sidecar(tmp_path):
    codes = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    Image.fromarray(codes).save(tmp_path / "raw.png")
    with pytest.raises(InputError, match="--dx"):
        read_dem(tmp_path / "raw.png")
    d = read_dem(tmp_path / "raw.png", dx_m=30.0, z_scale=0.1, z_offset=-100.0)
    np.testing.assert_allclose(d.z, codes * 0.1 - 100.0, rtol=1e-6)
    assert d.dx_m == 30.0


def test_npz_variants(tmp_path, z):
    np.savez(tmp_path / "only.npz", heights=z)
    _same(read_dem(tmp_path / "only.npz", dx_m=1.0, nan="nodata").z, z)
    np.savez(tmp_path / "withdx.npz", z=z, other=np.zeros(3), dx_m=7.5)
    assert read_dem(tmp_path / "withdx.npz", nan="nodata").dx_m == 7.5
    assert read_dem(tmp_path / "withdx.npz", dx_m=2.0, nan="nodata").dx_m == 2.0  # explicit wins
    np.savez(tmp_path / "two.npz", a=z, b=z)
    with pytest.raises(InputError, match="'z'"):
        read_dem(tmp_path / "two.npz", dx_m=1.0)
    write_npz(tmp_path / "w.npz", z, dx_m=3.0)
    assert read_dem(tmp_path / "w.npz").dx_m == 3.0


def test_z_scale_offset(tmp_path, z):
    write_geotiff(tmp_path / "a.tif", z, dx_m=1.0)
    d = read_dem(tmp_path / "a.tif", z_scale=0.3048, z_offset=10.0)
    np.testing.assert_allclose(d.z, z * 0.3048 + 10.0, rtol=1e-6)


# --------------------------------------------------------------------------- nodata


def test_nodata_sentinels_become_nan(tmp_path):
    a = np.array([[1, 2, 3], [4, -9999, 6], [7, 8, 32767]], dtype=np.int16)
    t = Affine(10, 0, 500000, 0, -10, 4000000)
    _write_raster(tmp_path / "i.tif", a, crs="EPSG:32611", transform=t, nodata=-9999)
    d = read_dem(tmp_path / "i.tif")
    assert d.z.dtype == np.float32 and np.isnan(d.z[1, 1]) and d.valid.sum() == 8
    _write_raster(tmp_path / "j.tif", a, crs="EPSG:32611", transform=t, nodata=32767)
    assert np.isnan(read_dem(tmp_path / "j.tif").z[2, 2])
    # NaN cells in a float raster without declared nodata count as nodata when asked to
    f = a.astype(np.float32)
    f[0, 0] = np.nan
    _write_raster(tmp_path / "f.tif", f, crs="EPSG:32611", transform=t)
    d = read_dem(tmp_path / "f.tif", nan="nodata")
    assert np.isnan(d.z[0, 0]) and not d.valid[0, 0] and d.valid.sum() == 8


def test_asc_nodata(tmp_path):
    text = "ncols 3\nnrows 2\nxllcorner 0\nyllcorner 0\ncellsize 5\nNODATA_value -9999\n1 2 -9999\n4 5 6\n"
    (tmp_path / "g.asc").write_text(text)
    d = read_dem(tmp_path / "g.asc", dx_m=5.0)  # no .prj: cell size unit unknown
    assert np.isnan(d.z[0, 2]) and d.z[1, 2] == 6.0
    with pytest.raises(InputError, match="--dx"):
        read_dem(tmp_path / "g.asc")


# --------------------------------------------------------------------------- CRS / units


def test_geographic_cells_in_metres(tmp_path):
    h, w = 20, 20
    res = 1 / 1200
    # centred on 45 N
    t = Affine(res, 0, 7.0, 0, -res, 45.0 + h / 2 * res)
    a = np.arange(h * w, dtype=np.float32).reshape(h, w)
    _write_raster(tmp_path / "geo.tif", a, crs="EPSG:4326", transform=t)
    m_lon, m_lat = metres_per_degree(45.0)
    assert m_lat * res == pytest.approx(92.6, abs=0.1)
    assert m_lon * res == pytest.approx(65.6, abs=0.2)
    with pytest.raises(InputError, match="resample"):
        read_dem(tmp_path / "geo.tif")
    d = read_dem(tmp_path / "geo.tif", square="resample")
    assert d.dx_m == pytest.approx(m_lon * res)  # the smaller spacing
    assert d.width == w and d.height == round(h * m_lat / m_lon)
    assert d.crs == "EPSG:4326"
    # geographic extent preserved (to within a cell)
    assert d.transform.f == t.f and d.height * abs(d.transform.e) == pytest.approx(h * res, abs=abs(d.transform.e))
    # heights interpolated within range
    assert np.nanmin(d.z) >= 0 and np.nanmax(d.z) <= h * w - 1 and d.valid.all()
    # written back (geographic CRS, transform in degrees): square cells again
    d2 = read_dem(write_dem(tmp_path / "geo2.tif", d))
    # (the central latitude moves by < 1 cell, hence the loose tolerance)
    assert d2.dx_m == pytest.approx(d.dx_m, rel=1e-5) and d2.shape == d.shape
    # explicit dx overrides everything
    assert read_dem(tmp_path / "geo.tif", dx_m=90.0).dx_m == 90.0


def test_geographic_asc_without_crs(tmp_path):
    hdr = "ncols 4\nnrows 4\nxllcorner -105.8\nyllcorner 39.8\ncellsize 0.000833333333\nNODATA_value 0\n"
    (tmp_path / "srtm.asc").write_text(hdr + "\n".join(["10 20 30 40"] * 4) + "\n")
    with pytest.warns(UserWarning, match="geographic"):
        with pytest.raises(InputError, match="square"):
            read_dem(tmp_path / "srtm.asc")
    with pytest.warns(UserWarning):
        d = read_dem(tmp_path / "srtm.asc", square="resample")
    m_lon, m_lat = metres_per_degree(39.8 + 2 * 0.000833333333)
    assert d.dx_m == pytest.approx(m_lon / 1200, rel=1e-6)


def test_projected_feet(tmp_path):
    a = np.ones((3, 3), dtype=np.float32)
    _write_raster(tmp_path / "ft.tif", a, crs="EPSG:2227", transform=Affine(10, 0, 6e6, 0, -10, 2e6))
    assert read_dem(tmp_path / "ft.tif").dx_m == pytest.approx(10 * 1200 / 3937)


def test_missing_crs_needs_dx(tmp_path):
    a = np.ones((3, 3), dtype=np.float32)
    _write_raster(tmp_path / "nocrs.tif", a, transform=Affine(30, 0, 1000, 0, -30, 5000))
    with pytest.raises(InputError, match="--dx"):
        read_dem(tmp_path / "nocrs.tif")
    _write_raster(tmp_path / "plain.tif", a)  # no georeference at all
    with pytest.raises(InputError, match="--dx"):
        read_dem(tmp_path / "plain.tif")
    assert read_dem(tmp_path / "plain.tif", dx_m=4.0).dx_m == 4.0


def test_nearly_square_cells_accepted(tmp_path):
    a = np.ones((3, 3), dtype=np.float32)
    _write_raster(tmp_path / "n.tif", a, crs="EPSG:32646", transform=Affine(50, 0, 0, 0, -50.000946969697, 0))
    assert read_dem(tmp_path / "n.tif").dx_m == pytest.approx(50.0005, abs=1e-3)


def test_south_up_raster_is_flipped(tmp_path):
    a = np.array([[1, 2], [3, 4]], dtype=np.float32)  # row 0 = south here
    _write_raster(tmp_path / "s.tif", a, crs="EPSG:32611", transform=Affine(1, 0, 0, 0, 1, 0))
    d = read_dem(tmp_path / "s.tif")
    assert np.array_equal(d.z, a[::-1]) and d.transform.e < 0


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_input_error(tmp_path, z):
    (tmp_path / "text.tif").write_text("this is not a raster\n")
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "junk.npy").write_text("nope")
    np.save(tmp_path / "row.npy", np.ones((1, 5)))
    np.save(tmp_path / "col.npy", np.ones((5, 1)))
    np.save(tmp_path / "zero.npy", np.ones((0, 5)))
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 4)))
    np.save(tmp_path / "allnan.npy", np.full((3, 3), np.nan))
    inf = np.ones((3, 3))
    inf[1, 1] = np.inf
    np.save(tmp_path / "inf.npy", inf)
    _write_raster(tmp_path / "allnd.tif", np.full((3, 3), -9999, np.int16), crs="EPSG:32611",
                  transform=Affine(1, 0, 0, 0, -1, 0), nodata=-9999)
    _write_raster(tmp_path / "infr.tif", inf.astype(np.float32), crs="EPSG:32611",
                  transform=Affine(1, 0, 0, 0, -1, 0))
    _write_raster(tmp_path / "row.tif", np.ones((1, 7), np.float32), crs="EPSG:32611",
                  transform=Affine(1, 0, 0, 0, -1, 0))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "s.png")
    (tmp_path / "s.json").write_text("{not json")
    cases = {
        "text.tif": {}, "empty.tif": {}, "junk.npy": {"dx_m": 1}, "row.npy": {"dx_m": 1},
        "col.npy": {"dx_m": 1}, "zero.npy": {"dx_m": 1}, "cube.npy": {"dx_m": 1},
        "allnan.npy": {"dx_m": 1}, "inf.npy": {"dx_m": 1}, "allnd.tif": {}, "infr.tif": {},
        "row.tif": {}, "rgb.png": {"dx_m": 1}, "bad.png": {"dx_m": 1}, "s.png": {},
        "missing.tif": {}, ".": {"dx_m": 1},
    }
    for name, kw in cases.items():
        with pytest.raises(InputError) as info:
            read_dem(tmp_path / name, **kw)
        msg = str(info.value)
        assert msg and "\n" not in msg, (name, msg)
    for kw in ({"dx_m": 0}, {"dx_m": -1}, {"dx_m": float("nan")}, {"z_scale": float("inf")},
               {"square": "nearest"}):
        with pytest.raises(InputError):
            write_npy(tmp_path / "ok.npy", z)
            read_dem(tmp_path / "ok.npy", **{"dx_m": 1.0, **kw})


def test_flat_dem_is_valid(tmp_path):
    flat = np.zeros((5, 5), dtype=np.float32)
    write_geotiff(tmp_path / "flat.tif", flat, dx_m=1.0)
    d = read_dem(tmp_path / "flat.tif")
    assert d.valid.all() and np.all(d.z == 0)


# --------------------------------------------------------------------------- writers


def test_atomic_write_leaves_nothing_on_error(tmp_path, z, monkeypatch):
    from pixels2peaks.io import write as wmod

    write_geotiff(tmp_path / "keep.tif", z, dx_m=1.0)
    before = (tmp_path / "keep.tif").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(wmod.np, "savez_compressed", boom)
    with pytest.raises(RuntimeError):
        write_npz(tmp_path / "new.npz", z, dx_m=1.0)
    monkeypatch.setattr(wmod, "_gdal_write", lambda *a, **k: boom())
    with pytest.raises(RuntimeError):
        write_geotiff(tmp_path / "keep.tif", z + 1, dx_m=1.0)
    assert sorted(os.listdir(tmp_path)) == ["keep.tif"]
    assert (tmp_path / "keep.tif").read_bytes() == before


def test_writer_errors(tmp_path, z):
    with pytest.raises(InputError):
        write_geotiff(tmp_path / "a.tif", z)  # bare array needs dx_m
    with pytest.raises(InputError):
        write_geotiff(tmp_path / "nofolder" / "a.tif", z, dx_m=1.0)
    with pytest.raises(InputError):
        write_geotiff(tmp_path / "a.tif", np.ones(5), dx_m=1.0)
    with pytest.raises(InputError):
        write_geotiff(tmp_path / "a.tif", np.full((2, 2), np.inf), dx_m=1.0)
    with pytest.raises(InputError):
        write_dem(tmp_path / "a.jpg", Dem(z=z, dx_m=1.0))
    with pytest.raises(InputError):
        write_geotiff(tmp_path / "a.tif", z, dx_m=1.0, crs="EPSG:99999999")
    assert os.listdir(tmp_path) == []


def test_asc_sentinel_avoids_real_heights(tmp_path):
    a = np.array([[-9999.0, 1.0], [np.nan, 2.0]], dtype=np.float32)
    write_asc(tmp_path / "s.asc", a, dx_m=1.0)
    _same(read_dem(tmp_path / "s.asc").z, a)
    write_envi(tmp_path / "e.bil", a, dx_m=1.0)
    _same(read_dem(tmp_path / "e.bil").z, a)
    hdr = (tmp_path / "e.hdr").read_text()  # names the file, not the staging folder it was written in
    assert "description = {e.bil}" in hdr and ".tmp" not in hdr


def test_dem_dataclass():
    d = Dem(z=np.zeros((3, 4), dtype=np.float64), dx_m=2)
    assert d.z.dtype == np.float32 and d.shape == (3, 4) and (d.height, d.width) == (3, 4)
    assert d.dx_m == 2.0 and d.crs is None and d.transform is None
    with pytest.raises(Exception):
        d.dx_m = 3.0  # frozen
    with pytest.raises(InputError):
        Dem(z=np.zeros(3), dx_m=1.0)
    with pytest.raises(InputError):
        Dem(z=np.zeros((2, 2)), dx_m=0.0)


# --------------------------------------------------------------------------- real data (optional)

REAL = Path("/work/shared/data/dems")


@pytest.mark.skipif(not REAL.is_dir(), reason="shared DEMs not available")
def test_real_dems():
    d = read_dem(REAL / "bigtujunga.tif")
    assert d.dx_m == 30.0 and d.shape == (643, 1197) and d.valid.all()
    d = read_dem(REAL / "Mandakini.bil")
    assert d.dx_m == pytest.approx(88.814, abs=1e-3) and (~d.valid).any()
    assert np.nanmin(d.z) > 0  # -9999 became NaN
    assert read_dem(REAL / "Mega_divide.bil").dx_m == pytest.approx(50.0, abs=1e-3)
    assert read_dem(REAL / "gabilan.bil").dx_m == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="resample"):
            read_dem(REAL / "front_range_srtm3.asc")
        d = read_dem(REAL / "front_range_srtm3.asc", square="resample")
    assert d.dx_m == pytest.approx(71.0, abs=0.5) and d.width == 758 and d.height > 758


def test_staged_folder_moves_all_files_or_none(tmp_path):
    from pixels2peaks.io.write import staged_folder

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "b.txt").mkdir()  # a folder where an output file should go
    with pytest.raises(InputError, match=r"b\.txt: a folder of that name is in the way"):
        with staged_folder(out, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("new")
            (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt", "keep.txt"]  # a.txt not moved
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # staging removed
    with staged_folder(out, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new" and (out / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="cannot write /proc/p2p_x"):
        with staged_folder("/proc/p2p_x", overwrite=True):
            pass


def test_dem_output_paths_and_hydro_refuses_to_clobber_a_sidecar(tmp_path):
    from typer.testing import CliRunner

    from pixels2peaks.cli.main import app
    from pixels2peaks.io.write import dem_output_paths

    assert [p.name for p in dem_output_paths(tmp_path / "x.png")] == ["x.png", "x.json"]
    assert [p.name for p in dem_output_paths(tmp_path / "x.bil")] == ["x.bil", "x.hdr", "x.prj"]
    assert [p.name for p in dem_output_paths(tmp_path / "x.tif")] == ["x.tif"]
    src = tmp_path / "in.tif"
    write_geotiff(src, np.arange(64, dtype=np.float32).reshape(8, 8), dx_m=30.0)
    (tmp_path / "x.json").write_text('{"mine": 1}')
    r = CliRunner().invoke(app, ["hydro", "fill", str(src), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "x.json exists; pass --overwrite" in r.output
    assert (tmp_path / "x.json").read_text() == '{"mine": 1}' and not (tmp_path / "x.png").exists()
