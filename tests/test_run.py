"""`p2p run` end to end on a tiny synthetic photo with a tiny random prior: outputs, report,
stage cache, stdin, --overwrite, bad input, full disk, Ctrl-C."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pixels2peaks.cache import StageCache
from pixels2peaks.cli.main import app
from pixels2peaks.diffusion.completion import CompletionConfig, PolishConfig
from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, save_prior
from pixels2peaks.perception.geometry import ReconstructOptions
from pixels2peaks.perception.pipeline import VisibleOptions
from pixels2peaks.pipeline import run as run_mod
from pixels2peaks.pipeline.outputs import RUN_FILES, write_run
from pixels2peaks.pipeline.run import RunConfig, run_photo
from test_perception_builtin import synthetic_photo
from tiny_diffusion import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST_PERCEPTION = VisibleOptions(
    geometry="builtin", segmentation="builtin", priors="builtin",
    reconstruct=ReconstructOptions(pitch_range_deg=(-20, 20), pitch_step_deg=2.0, search_cells=64),
)
FAST_COMPLETION = CompletionConfig(
    steps=2, tile_cells=32, tile_min_edge_cells=16, init_octaves=3, polish=PolishConfig(ts=(0.05,), steps=1),
)
CONFIG = RunConfig(size_cells=64, perception=FAST_PERCEPTION, completion=FAST_COMPLETION)
#: CLI flags for a fast run (builtin backends, 64 cells, 2 steps, coarse pitch grid)
CLI_FAST = ["--size", "64", "--steps", "2", "--pitch-step", "4", "--geometry", "builtin",
            "--segmentation", "builtin", "--priors", "builtin", "--threads", "1", "-q"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TerrainPrior(PriorConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny):
    d = tmp_path_factory.mktemp("run")
    img, _ = synthetic_photo(96, 128)
    photo = d / "photo.png"
    Image.fromarray(img).save(photo)
    weights, _ = save_prior(tiny, d / "tiny.safetensors", dtype=torch.float32)
    return {"dir": d, "photo": photo, "weights": weights}


def _cli(args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def _siblings(path: Path) -> list[str]:
    """Hidden temporary folders left beside ``path`` (there must be none)."""
    return [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]


# ---------------------------------------------------------------------------------------------
# library: run_photo + write_run, stage cache
# ---------------------------------------------------------------------------------------------


def test_run_photo_writes_everything(files, tiny, tmp_path):
    import rasterio

    from pixels2peaks.camera import Camera
    from pixels2peaks.io import read_dem

    res = run_photo(files["photo"], CONFIG, model=tiny)
    assert res.z.shape == (64, 64) and res.z.dtype == np.float32 and np.isfinite(res.z).all()
    assert res.dx_m == pytest.approx(res.visible.dx_m / 2)  # main diffusion at 32 cells, polish x2
    out = tmp_path / "out"
    report = write_run(out, res)
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES)
    rep = json.loads((out / "report.json").read_text())
    assert rep == json.loads(json.dumps(report))
    for key in ("mdd_m", "vve_m", "ove_m", "dx_m", "pitch_deg", "seconds", "backends", "priors", "config"):
        assert key in rep, key
    assert rep["dx_m"] == res.dx_m and rep["pitch_deg"] == res.visible.camera.pitch_deg
    assert set(rep["seconds"]) >= {"segmentation", "geometry", "priors", "cleaning", "projection", "zmax",
                                   "completion", "previews", "write", "total"}
    assert rep["backends"]["geometry"]["name"] == "builtin"
    assert rep["priors"]["sources"]["mean_slope_deg"].startswith("builtin")
    assert rep["config"]["size_cells"] == 64 and rep["config"]["completion"]["steps"] == 2
    assert rep["mdd_m"] == res.metrics["mdd_m"] and rep["vve_m"] >= 0 and rep["ove_m"] >= 0
    # heightmap.tif: float32 metres, dx in the geotransform
    with rasterio.open(out / "heightmap.tif") as ds:
        z = ds.read(1)
        assert ds.dtypes[0] == "float32" and ds.transform.a == pytest.approx(res.dx_m)
        assert -ds.transform.e == pytest.approx(res.dx_m)
    assert np.array_equal(z, res.z)
    # heightmap.png (16-bit) + heightmap.json round trip within half a quantisation step
    side = json.loads((out / "heightmap.json").read_text())
    assert side["dx_m"] == pytest.approx(res.dx_m)
    png = read_dem(out / "heightmap.png")
    assert np.array(Image.open(out / "heightmap.png")).dtype == np.uint16
    assert np.max(np.abs(png.z - res.z)) <= side["scale"] / 2 + 1e-3
    mask = np.asarray(Image.open(out / "visible_mask.png")) > 127
    assert np.array_equal(mask, res.known) and 0 < mask.mean() < 1
    cam = Camera.load(out / "camera.json")
    assert cam.dx_m == pytest.approx(res.dx_m) and cam.pitch_deg == res.visible.camera.pitch_deg
    # previews: the triptych is three photo-sized panels wide, the others are images
    prev = np.asarray(Image.open(out / "preview.png"))
    assert prev.shape[1] >= 3 * 128 and prev.shape[0] == 96
    for name in ("hillshade.png", "depressions.png"):
        assert np.asarray(Image.open(out / name)).shape[:2] == (64, 64)
    view = np.asarray(Image.open(out / "view3d.png"))
    assert view.shape == (540, 960, 3) and view.std() > 5
    assert _siblings(out) == []
    # sanity warnings: a diverged completion is flagged in the report
    import dataclasses

    assert rep["warnings"] == res.warnings
    assert "diverged" in dataclasses.replace(res, z=res.z * 1e6).warnings[0]
    assert "non-finite" in dataclasses.replace(res, z=np.full_like(res.z, np.inf)).warnings[0]
    # hidden heights beyond the elevation prior widened by 10 %: said, with the share
    lo, hi = res.visible.priors.elevation_range_m
    inside = np.where(res.known, res.z, 0.5 * (lo + hi)).astype(np.float32)
    assert dataclasses.replace(res, z=inside).warnings == []
    low = inside.copy()
    hidden = np.flatnonzero(~res.known.ravel())
    low.ravel()[hidden[: hidden.size // 4]] = lo - 0.2 * (hi - lo)
    w = dataclasses.replace(res, z=low).warnings
    assert len(w) == 1 and "25.0 % of the hidden cells lie outside the elevation prior" in w[0]


def test_cache_hits_skip_work_and_seed_reruns_only_completion(files, tiny, tmp_path, monkeypatch):
    import pixels2peaks.perception.pipeline as perc

    calls = {"segment": 0, "clean": 0, "reconstruct": 0, "view_bound": 0, "complete": 0}

    def counting(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapper

    monkeypatch.setattr(perc, "_segmentation", counting("segment", perc._segmentation))
    monkeypatch.setattr(perc, "clean_points", counting("clean", perc.clean_points))
    monkeypatch.setattr(perc, "reconstruct", counting("reconstruct", perc.reconstruct))
    monkeypatch.setattr(perc, "view_bound", counting("view_bound", perc.view_bound))
    monkeypatch.setattr(run_mod, "complete", counting("complete", run_mod.complete))
    cache = StageCache(tmp_path / "cache")

    first = run_photo(files["photo"], CONFIG, model=tiny, cache=cache)
    assert calls == {"segment": 1, "clean": 1, "reconstruct": 1, "view_bound": 1, "complete": 1}
    assert not any(s.cached for s in first.stages.values())

    again = run_photo(files["photo"], CONFIG, model=tiny, cache=cache)  # everything cached
    assert calls == {"segment": 1, "clean": 1, "reconstruct": 1, "view_bound": 1, "complete": 1}
    assert all(s.cached for s in again.stages.values())
    assert np.array_equal(again.z, first.z) and again.metrics == first.metrics

    seeded = RunConfig(size_cells=64, perception=FAST_PERCEPTION, completion=FAST_COMPLETION.replace(seed=1))
    other = run_photo(files["photo"], seeded, model=tiny, cache=cache)  # only completion re-runs
    assert calls == {"segment": 1, "clean": 1, "reconstruct": 1, "view_bound": 1, "complete": 2}
    assert [k for k, s in other.stages.items() if not s.cached] == ["completion"]
    assert not np.array_equal(other.z, first.z)

    sloped = RunConfig(size_cells=64, perception=VisibleOptions(**{**FAST_PERCEPTION.__dict__, "mean_slope_deg": 12.0}),
                       completion=FAST_COMPLETION)
    res = run_photo(files["photo"], sloped, model=tiny, cache=cache)  # a new slope prior
    assert calls == {"segment": 1, "clean": 1, "reconstruct": 2, "view_bound": 2, "complete": 3}
    assert [k for k, s in res.stages.items() if not s.cached] == ["projection", "zmax", "completion"]
    assert res.visible.priors.sources["mean_slope_deg"] == "user"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_run_overwrite_and_stdin(files, tmp_path):
    out = tmp_path / "out"
    cache = ["--cache-dir", tmp_path / "cache"]
    args = ["run", files["photo"], "-o", out, "--weights", files["weights"], *CLI_FAST, *cache]
    r = _cli(args)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES)
    assert "MDD" in r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["size_cells"] == [64, 64] and rep["model"]["weights"] == str(files["weights"])
    # a non-empty OUTDIR is refused without --overwrite, and left alone
    before = (out / "report.json").read_bytes()
    r = _cli(args)
    assert r.exit_code == 2 and "--overwrite" in r.output and r.output.count("error:") == 1
    assert (out / "report.json").read_bytes() == before
    r = _cli(args + ["--overwrite"])  # everything comes from the cache
    assert r.exit_code == 0, r.output
    rep2 = json.loads((out / "report.json").read_text())
    assert all(s["cached"] for s in rep2["stages"].values())
    # stdin: same image bytes -> same content hash -> cached, same heightmap
    out2 = tmp_path / "from_stdin"
    r = _cli(["run", "-", "-o", out2, "--weights", files["weights"], *CLI_FAST, *cache],
             input=files["photo"].read_bytes())
    assert r.exit_code == 0, r.output
    rep3 = json.loads((out2 / "report.json").read_text())
    assert rep3["input"]["image"] == "<stdin>" and rep3["input"]["sha256"] == rep["input"]["sha256"]
    assert all(s["cached"] for s in rep3["stages"].values())
    assert (out2 / "heightmap.tif").read_bytes() == (out / "heightmap.tif").read_bytes()


def _bad_images(d: Path) -> dict[str, Path]:
    rgb, _ = synthetic_photo(96, 128)
    p = {}
    p["text"] = d / "text.jpg"
    p["text"].write_text("not an image")
    full = d / "full.jpg"
    Image.fromarray(rgb).save(full)
    p["truncated"] = d / "trunc.jpg"
    p["truncated"].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    p["tiny"] = d / "tiny.png"
    Image.fromarray(rgb[:40, :60]).save(p["tiny"])
    return p


@pytest.fixture()
def no_terrain_backend():
    """A segmentation backend that finds no terrain (the builtin one's rules may change)."""
    from pixels2peaks.perception import protocols

    spec = protocols.BackendSpec("segmentation", "test_empty",
                                 lambda o: type("Empty", (), {"name": "test_empty",
                                                              "segment": lambda self, im: np.zeros(im.shape[:2], bool)})(),
                                 lambda o: (True, ""), 1000)
    protocols.registered("segmentation")  # load the shipped backends first
    protocols.register(spec, replace=True)
    yield
    protocols.unregister("segmentation", "test_empty")


@pytest.mark.parametrize(
    "case, extra, match",
    [
        ("text", [], "not an image"),
        ("truncated", [], "truncated"),
        ("tiny", [], "at least 64 px"),
        ("ok", ["--segmentation", "test_empty"], "no terrain"),
        ("missing", [], "not found"),
        ("ok", ["--dx", "abc"], "--dx"),
        ("ok", ["--dx", "-3"], "--dx"),
        ("ok", ["--dx", "10", "--size", "64"], "not both"),
        ("ok", ["--size", "63"], "multiple of 2"),
        ("ok", ["--device", "tpu"], "--device"),
        ("ok", ["--z-min", "10"], "--z-max"),
        ("ok", ["--geometry", "nope"], "unknown geometry backend"),
        ("ok", ["--weights", "/nonexistent/w.safetensors"], "not found"),
    ],
)
@pytest.mark.usefixtures("no_terrain_backend")
def test_cli_run_bad_input(files, tmp_path, case, extra, match):
    images = _bad_images(tmp_path)
    image = {"ok": files["photo"], "missing": tmp_path / "nope.jpg"}.get(case) or images[case]
    out = tmp_path / "out"
    args = ["run", image, "-o", out, "--weights", files["weights"], *CLI_FAST, "--no-cache", *extra]
    r = _cli(args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], r.output
    assert not out.exists() and _siblings(out) == []


def test_cli_run_outdir_is_a_file_and_full_disk(files, tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    r = _cli(["run", files["photo"], "-o", f, "--weights", files["weights"], *CLI_FAST, "--no-cache"])
    assert r.exit_code == 2 and "not a directory" in r.output
    import pixels2peaks.paths as paths_mod

    for code, said in ((errno.EACCES, "permission denied"), (errno.EROFS, "read-only filesystem")):
        def refuse(*a, code=code, **k):  # root ignores chmod, and no read-only mount here: fake the probe
            raise OSError(code, os.strerror(code))

        with monkeypatch.context() as m:
            m.setattr(paths_mod.tempfile, "mkdtemp", refuse)
            r = _cli(["run", files["photo"], "-o", tmp_path / "ro", "--weights", files["weights"], *CLI_FAST])
        assert r.exit_code == 2 and said in r.output and not (tmp_path / "ro").exists()
        assert r.output.strip().count("\n") == 0

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pixels2peaks.io.write_geotiff", full)
    out = tmp_path / "out"
    r = _cli(["run", files["photo"], "-o", out, "--weights", files["weights"], *CLI_FAST,
              "--cache-dir", tmp_path / "cache"])
    assert r.exit_code == 2 and "No space left on device" in r.output and r.output.count("error:") == 1
    assert not out.exists() and _siblings(out) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_cli_run_sigint_stops_cleanly_and_keeps_the_cache(files, tmp_path):
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    # many diffusion steps: the run is still in the completion stage when interrupted
    args = [sys.executable, "-m", "pixels2peaks.cli.main", "run", str(files["photo"]), "-o", str(out),
            "--weights", str(files["weights"]), *[str(a) for a in CLI_FAST], "--cache-dir", str(cache)]
    args[args.index("--steps") + 1] = "5000"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while not (cache / "zmax").is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # inside the completion stage
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    assert proc.returncode == 130, err.decode()
    # one line (library warnings, e.g. from scikit-learn, may precede it), no traceback
    assert "interrupted" in lines[-1] and "Traceback" not in err.decode(), err.decode()
    assert not out.exists() and _siblings(out) == []
    # the cache holds complete entries only (no temporary files), and they are used
    entries = sorted(p.relative_to(cache).parts[0] for p in cache.rglob("*") if p.is_file())
    assert entries == ["cleaning", "geometry", "priors", "projection", "segmentation", "zmax"]
    r = _cli(["run", files["photo"], "-o", out, "--weights", files["weights"], *CLI_FAST, "--cache-dir", cache])
    assert r.exit_code == 0, r.output
    stages = json.loads((out / "report.json").read_text())["stages"]
    assert [k for k, s in stages.items() if not s["cached"]] == ["completion"]


def test_the_prior_is_loaded_once_per_process(files, monkeypatch):
    """A batch worker runs many photos: the weights file is read once (keyed by its digests)."""
    import dataclasses

    import pixels2peaks.diffusion.model as model_mod

    loads = []
    real = model_mod.load_prior
    monkeypatch.setattr(model_mod, "load_prior", lambda p: loads.append(p) or real(p))
    monkeypatch.setattr(run_mod, "_LOADED", {})
    for seed in (0, 1):
        cfg = dataclasses.replace(CONFIG, weights=str(files["weights"]),
                                  completion=dataclasses.replace(CONFIG.completion, seed=seed))
        run_photo(files["photo"], cfg, cache=StageCache(None))
    assert len(loads) == 1
