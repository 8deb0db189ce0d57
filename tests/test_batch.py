"""`p2p batch` on Dask (issue #20), with a LocalCluster of 2 processes and a tiny random prior:
inputs (folders, globs, CSV overrides), byte-identical outputs to serial `p2p run`, failed rows,
resuming, a killed worker, and a real `dask scheduler` + `dask worker` used via --scheduler."""

from __future__ import annotations

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

from pixels2peaks.cli.main import app
from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, save_prior
from pixels2peaks.errors import InputError
from pixels2peaks.cluster import open_client
from pixels2peaks.pipeline.batch import collect, run_batch
from pixels2peaks.pipeline.run import Overrides
from test_perception_builtin import synthetic_photo
from test_run import CLI_FAST
from tiny_diffusion import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: every p2p run file whose bytes must match (report.json differs only by seconds and paths)
SAME_BYTES = ("heightmap.tif", "heightmap.png", "heightmap.json", "visible_mask.png", "camera.json",
              "preview.png", "hillshade.png", "depressions.png", "view3d.png")
#: p2p run's fast flags without the ones batch does not take
BATCH_FAST = [f for f in CLI_FAST if f not in ("--threads", "1", "-q")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    photos = d / "photos"
    photos.mkdir()
    for i, (h, w) in enumerate(((96, 128), (100, 140), (90, 120))):
        img, _ = synthetic_photo(h, w, seed=i)
        Image.fromarray(img).save(photos / f"p{i}.png")
    torch.manual_seed(0)
    weights, _ = save_prior(TerrainPrior(PriorConfig(**TINY)).eval(), d / "tiny.safetensors", dtype=torch.float32)
    return {"dir": d, "photos": photos, "weights": weights}


def _flags(files, cache):
    return BATCH_FAST + ["--weights", str(files["weights"]), "--cache-dir", str(cache)]


def _batch(args):
    return CliRunner().invoke(app, ["batch", *args])


def _rows(out: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads((out / "batch.json").read_text())["photos"]}


def test_collect_folders_globs_and_csv(tmp_path):
    (tmp_path / "a").mkdir()
    for n in ("x.jpg", "y.PNG", "notes.txt"):
        (tmp_path / "a" / n).write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.jpg").write_bytes(b"")
    csv = tmp_path / "list.csv"
    csv.write_text("photo,slope,z_min,z_max,pitch,fov,seed\nb/x.jpg,30,100,900,-5,60,7\na/x.jpg,,,,,,\n")
    items = collect([str(csv), str(tmp_path / "a"), str(tmp_path / "b" / "*.jpg")])
    # each photo once (its first mention wins); equal stems get unique folder names
    assert [(i.name, i.photo.parent.name) for i in items] == [("x", "b"), ("x-2", "a"), ("y", "a")]
    assert items[0].overrides == Overrides(pitch_deg=-5.0, fov_x_deg=60.0, mean_slope_deg=30.0,
                                           elevation_range_m=(100.0, 900.0), seed=7)
    assert items[1].overrides == Overrides()
    assert [i.name for i in collect([str(tmp_path / "*" / "x.jpg")])] == ["x", "x-2"]
    for text, msg in (("slope\n30\n", "needs a 'photo' column"), ("photo,height\na.jpg,3\n", "unknown column"),
                      ("photo,slope\na.jpg,steep\n", "slope must be a number"),
                      ("photo,z_min\na.jpg,3\n", "both z_min and z_max"), ("photo,slope\na.jpg,95\n", "Mean slope")):
        csv.write_text(text)
        with pytest.raises(InputError, match=msg):
            collect([str(csv)])
    with pytest.raises(InputError, match="no such photo"):
        collect([str(tmp_path / "missing.jpg")])
    with pytest.raises(InputError, match="no photos"):
        collect([str(tmp_path / "a" / "*.tif")])


def test_batch_equals_serial_run_fails_one_and_resumes(files, tmp_path):
    photos, cache = files["photos"], tmp_path / "cache"
    serial = tmp_path / "serial"
    serial.mkdir()
    for p in sorted(photos.glob("p*.png")):
        seed = "7" if p.stem == "p2" else "0"
        r = CliRunner().invoke(app, ["run", str(p), "-o", str(serial / p.stem), *CLI_FAST, "--seed", seed,
                                     "--weights", str(files["weights"]), "--no-cache"])
        assert r.exit_code == 0, r.output
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "broken.jpg").write_text("not a photo")
    listing = tmp_path / "photos.csv"
    listing.write_text(f"photo,seed\n{photos / 'p2.png'},7\n")
    out = tmp_path / "out"
    args = [str(photos / "p0.png"), str(photos / "p1.png"), str(listing), str(bad), "-o", str(out),
            "--workers", "2", *_flags(files, cache)]
    r = _batch(args)
    assert r.exit_code == 1, r.output  # one photo failed
    rows = _rows(out)
    assert {n: rows[n]["status"] for n in rows} == {"p0": "done", "p1": "done", "p2": "done", "broken": "failed"}
    assert "is not an image" in rows["broken"]["error"]
    assert not (out / "broken").exists()
    for name in ("p0", "p1", "p2"):
        for f in SAME_BYTES:
            assert (out / name / f).read_bytes() == (serial / name / f).read_bytes(), (name, f)
        a, b = (json.loads((d / name / "report.json").read_text()) for d in (out, serial))
        for k in ("mdd_m", "vve_m", "ove_m", "dx_m", "pitch_deg", "elevation_m", "config", "model"):
            assert a[k] == b[k], (name, k)
        assert rows[name]["dx_m"] == a["dx_m"] and rows[name]["mdd_m"] == a["mdd_m"]
        assert rows[name]["input_sha256"] == a["input"]["sha256"]
    csv_rows = (out / "batch.csv").read_text().splitlines()
    assert csv_rows[0] == "name,input,input_sha256,status,seconds,dx_m,mdd_m,error" and len(csv_rows) == 5

    # a re-run skips what is done; a changed photo (new bytes) runs again; a stale staging
    # folder of a killed run is removed
    stamp = (out / "p0" / "heightmap.tif").stat().st_mtime_ns
    img = np.asarray(Image.open(photos / "p1.png")).copy()
    img[0, 0] = 255 - img[0, 0]
    changed = tmp_path / "changed"
    changed.mkdir()
    Image.fromarray(img).save(changed / "p1.png")
    (out / ".p0.abc123.tmp").mkdir()
    r = _batch([str(photos / "p0.png"), str(changed / "p1.png"), str(listing), "-o", str(out), "--workers", "2",
                *_flags(files, cache)])
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert (rows["p0"]["status"], rows["p1"]["status"], rows["p2"]["status"]) == ("skipped", "done", "skipped")
    assert (out / "p0" / "heightmap.tif").stat().st_mtime_ns == stamp
    assert not list(out.glob(".*.tmp"))


def test_a_killed_worker_is_replaced_and_every_photo_finishes(files, tmp_path):
    from pixels2peaks.cli._stages import perception_options
    from pixels2peaks.cli.run import run_config

    popts = perception_options(geometry="builtin", segmentation="builtin", priors="builtin", vlm_url=None,
                               vlm_model="x", vlm_timeout=1.0, fov=None, slope=None, z_min=None, z_max=None,
                               pitch_step=4.0)
    config = run_config(popts, size=64, dx="auto", seed=0, steps=2, device="cpu", weights=files["weights"])
    items = collect([str(files["photos"])])
    out = tmp_path / "out"
    killed: list[int] = []
    with open_client(workers=2) as client:
        pids = list(client.run(os.getpid).values())

        def kill_one(row):  # after the first photo, kill a worker that is busy with another one
            if not killed:
                busy = [a for a, tasks in client.processing().items() if tasks]
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        rows = run_batch(items, config, out, client, on_row=kill_one)
        new_pids = set(client.run(os.getpid).values())
    assert killed and killed[0] in pids and killed[0] not in new_pids  # the worker was replaced
    assert [r["status"] for r in rows] == ["done"] * len(items)
    for it in items:
        assert (out / it.name / "report.json").is_file()
    assert not list(out.glob(".*.tmp"))  # no half-written folder


def test_a_real_scheduler_and_worker_via_scheduler_option(files, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sched = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    worker = None
    try:
        time.sleep(2.0)
        worker = subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                   "--no-dashboard", "--host", "127.0.0.1"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env)
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(1, timeout=60)
        out = tmp_path / "out"
        r = _batch([str(files["photos"] / "p0.png"), "-o", str(out), "--scheduler", address,
                    *_flags(files, tmp_path / "cache")])
        assert r.exit_code == 0, r.output
        assert _rows(out)["p0"]["status"] == "done"
        assert (out / "p0" / "heightmap.tif").is_file()
        assert address in r.output
    finally:
        for p in (worker, sched):
            if p is not None:
                p.terminate()
                p.wait(30)


def test_bad_batch_options_are_one_line_errors(files, tmp_path):
    for args, msg in (([str(files["photos"]), "-o", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://x:1"],
                       "not both"),
                      ([str(tmp_path / "nothing"), "-o", str(tmp_path / "o")], "no such photo"),
                      ([str(files["photos"]), "-o", str(tmp_path / "no" / "deeper")], "does not exist")):
        r = _batch(args)
        assert r.exit_code == 2 and msg in r.output, r.output


def _shards(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for f in sorted(folder.glob("*/*.npz")):
        with np.load(f) as d:
            out[f.relative_to(folder).as_posix()] = {k: d[k] for k in d.files}
    return out


def test_dataset_build_on_the_cluster_equals_the_serial_build(tmp_path):
    """Raster files (one broken, one too small) and simulated LEM tiles, curated on a
    LocalCluster of 2 processes: the same shards, tile for tile, and the same manifest."""
    from pixels2peaks.terrain.lem import LEMConfig
    from pixels2peaks.training.dataset import CurationConfig, build_dataset
    from pixels2peaks.training.lem_data import LEMDataConfig
    from pixels2peaks.training.synthetic import fractal, mountain
    from test_dataset_curation import _write

    src = tmp_path / "dems"
    src.mkdir()
    for i, n in enumerate((192, 160, 176)):
        _write(src / f"m{i}.tif", fractal(n, 3 + i, 2500.0))
    _write(src / "small.tif", mountain(20, 5))
    (src / "broken.tif").write_bytes(b"not a tiff")
    cfg = CurationConfig(tile_cells=64, stride_cells=32, dx_levels_m=(30.0, 60.0), shard_tiles=7)
    lem = LEMDataConfig(train_per_dx=2, val_per_dx=1, lem=LEMConfig(max_steps=150))
    serial = build_dataset([str(src), "lem"], tmp_path / "serial", cfg, lem=lem)
    with open_client(workers=2) as client:
        parallel = build_dataset([str(src), "lem"], tmp_path / "cluster", cfg, lem=lem, client=client)
    assert parallel == serial
    assert serial["n_train"] > 10 and serial["counts"]["lem"] and serial["skipped_inputs"]
    a, b = _shards(tmp_path / "serial"), _shards(tmp_path / "cluster")
    assert a.keys() == b.keys() and len(a) > 3
    for name in a:
        for k in ("z", "dx_m", "prov"):
            assert np.array_equal(a[name][k], b[name][k]), (name, k)


def test_dataset_build_cli_on_two_workers(tmp_path):
    from test_dataset_curation import _write
    from pixels2peaks.training.synthetic import fractal

    src = tmp_path / "dems"
    src.mkdir()
    _write(src / "m.tif", fractal(160, 3, 2500.0))
    r = CliRunner().invoke(app, ["dataset", "build", str(src), "-o", str(tmp_path / "ds"), "--tile", "64",
                                 "--stride", "32", "--dx", "30", "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert "worker(s) at tcp://127.0.0.1" in r.output
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["n_train"] > 0
    r = CliRunner().invoke(app, ["dataset", "build", str(src), "-o", str(tmp_path / "ds2"), "--workers", "2",
                                 "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code == 2 and "not both" in r.output


def test_ctrl_c_keeps_finished_photos_and_leaves_no_half_written_folder(files, tmp_path):
    out = tmp_path / "out"
    for i in range(3, 6):  # three more photos, so that some are still to do at Ctrl-C
        img, _ = synthetic_photo(96, 128, seed=i)
        Image.fromarray(img).save(tmp_path / f"q{i}.png")
    cmd = [str(Path(sys.executable).parent / "p2p"), "batch", str(files["photos"]), str(tmp_path / "q*.png"),
           "-o", str(out), "--workers", "1", *_flags(files, tmp_path / "cache")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip().startswith("done "):
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    text = "".join(lines) + rest
    assert proc.returncode == 130, text
    assert "interrupted" in text
    rows = _rows(out)
    done = [n for n, r in rows.items() if r["status"] == "done"]
    assert done and any(r["status"] == "pending" for r in rows.values())
    for n in done:
        assert (out / n / "report.json").is_file() and (out / n / "heightmap.tif").is_file()
    for n, r in rows.items():  # every folder there is complete; none half-written
        if (out / n).exists():
            assert (out / n / "report.json").is_file(), n
    assert not list(out.glob(".*.tmp"))
    # and the next run goes on from there
    r = _batch(cmd[2:])
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert all(rows[n]["status"] == "skipped" for n in done)
    assert all(r["status"] in ("done", "skipped") for r in rows.values())
