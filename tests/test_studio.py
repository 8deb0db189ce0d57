"""The studio (issue #19) without a browser: job folders and safe download names, the user's
edits, both steps on the bundled photo with a tiny prior (what re-runs, what is written), the
viewer's GLB, Cancel, and a live server: bind address, upload limit, non-images, the queue."""

from __future__ import annotations

import os
import threading
import time
import zipfile

import numpy as np
import pytest

from pixels2peaks.cache import StageCache
from pixels2peaks.errors import InputError
from pixels2peaks.io import read_dem
from pixels2peaks.pipeline.outputs import RUN_FILES
from pixels2peaks.studio.jobs import Cancelled, JobStore, safe_file
from pixels2peaks.studio.session import (
    EXPORTS,
    Estimates,
    Overrides,
    complete_step,
    load_photo,
    read_overrides,
    visible_step,
)
from studio_support import PHOTO, start_server, stop_server, tiny_studio_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------------------------
# job folders and download names
# ----------------------------------------------------------------------------------------------


def test_safe_file_stays_inside_the_job_folder(tmp_path):
    job = tmp_path / "job"
    (job / "exports").mkdir(parents=True)
    (job / "heightmap.tif").write_bytes(b"x")
    (job / "exports" / "heightmap.exr").write_bytes(b"y")
    (tmp_path / "secret.txt").write_text("no")
    os.symlink(tmp_path / "secret.txt", job / "link.txt")
    assert safe_file(job, "heightmap.tif") == (job / "heightmap.tif").resolve()
    assert safe_file(job, "exports/heightmap.exr").read_bytes() == b"y"
    for name in ("../secret.txt", "exports/../../secret.txt", str(tmp_path / "secret.txt"), "/etc/passwd",
                 "link.txt", "", "exports", "exports\\..\\..\\secret.txt", "nothing.tif", "a\x00b", "./"):
        with pytest.raises(InputError, match="no such file"):
            safe_file(job, name)


def test_job_store_folders_cancel_and_cleanup(tmp_path):
    store = JobStore(tmp_path / "root")
    a, b = store.new(), store.new()
    assert a.folder != b.folder and a.folder.parent == b.folder.parent == store.root
    (a.folder / "f.txt").write_text("1")
    assert a.path("f.txt").read_text() == "1"
    with pytest.raises(InputError):
        b.path("../" + a.folder.name + "/f.txt")
    store.begin(a)
    store.check(a)  # not cancelled: no exception
    store.cancel(a)
    with pytest.raises(Cancelled):
        store.check(a)
    store.check(b)  # one job's Cancel is not another's
    store.begin(a)  # a new step forgets the old Cancel
    store.check(a)
    store.end(a)
    assert not a.folder.exists() and b.folder.exists()
    store.close()
    assert not store.root.exists()


# ----------------------------------------------------------------------------------------------
# the user's edits
# ----------------------------------------------------------------------------------------------

SHOWN = Estimates(
    {"pitch_deg": -1.0, "fov_x_deg": 49.55, "mean_slope_deg": 25.0, "z_min_m": 1000.0, "z_max_m": 3066.832},
    {"pitch_deg": "pitch search (Eq. 1)", "fov_x_deg": "EXIF", "mean_slope_deg": "builtin default",
     "z_min_m": "builtin", "z_max_m": "builtin"},
)


def test_read_overrides_takes_only_what_the_user_changed():
    assert read_overrides(dict(SHOWN.values), SHOWN) == Overrides()
    assert read_overrides({**SHOWN.values, "mean_slope_deg": 32.0}, SHOWN) == Overrides(mean_slope_deg=32.0)
    assert read_overrides({**SHOWN.values, "z_max_m": 2500.0}, SHOWN) == Overrides(elevation_range_m=(1000.0, 2500.0))
    # the user's value stays the user's on the next edit; an emptied field goes back to the estimate
    mine = Estimates({**SHOWN.values, "mean_slope_deg": 32.0}, {**SHOWN.sources, "mean_slope_deg": "you"})
    assert read_overrides({**mine.values, "pitch_deg": 3.0}, mine) == Overrides(pitch_deg=3.0, mean_slope_deg=32.0)
    assert read_overrides({**mine.values, "mean_slope_deg": None}, mine) == Overrides()
    with pytest.raises(InputError, match="Mean slope"):
        read_overrides({**SHOWN.values, "mean_slope_deg": 95.0}, SHOWN)
    with pytest.raises(InputError, match="above the lowest"):
        read_overrides({**SHOWN.values, "z_max_m": 900.0}, SHOWN)
    with pytest.raises(InputError, match="both"):
        read_overrides({**SHOWN.values, "z_min_m": 500.0, "z_max_m": None}, SHOWN)


def test_overrides_apply_to_the_run_config(tmp_path):
    run = tiny_studio_config(tmp_path).run
    ov = Overrides(pitch_deg=4.0, fov_x_deg=60.0, mean_slope_deg=30.0, elevation_range_m=(200.0, 900.0)).apply(run)
    p = ov.perception
    assert p.reconstruct.pitch_range_deg == (4.0, 4.0)  # a given pitch: a one-candidate search
    assert (p.fov_x_deg, p.mean_slope_deg, p.elevation_range_m) == (60.0, 30.0, (200.0, 900.0))
    assert ov.completion == run.completion and ov.size_cells == run.size_cells
    assert Overrides().apply(run) == run


# ----------------------------------------------------------------------------------------------
# the two steps
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    d = tmp_path_factory.mktemp("studio")
    config = tiny_studio_config(d)
    store, cache = JobStore(d / "jobs"), StageCache(d / "cache")
    job = store.new()
    photo = load_photo(PHOTO, job)
    first = visible_step(photo, job, config, Overrides(), cache=cache, store=store)
    edit = read_overrides({**first.estimates.values, "mean_slope_deg": 32.0}, first.estimates)
    second = visible_step(photo, job, config, edit, cache=cache, store=store)
    ticks: list[tuple[float, str]] = []
    result = complete_step(photo, job, config, edit, cache=cache, store=store,
                           progress=lambda f, t: ticks.append((f, t)))
    yield {"config": config, "store": store, "cache": cache, "job": job, "photo": photo, "first": first,
           "second": second, "result": result, "ticks": ticks, "edit": edit}
    store.close()


def test_a_slope_edit_reruns_only_the_projection_and_after(steps):
    first, second = steps["first"], steps["second"]
    assert set(first.rerun) == {"segmentation", "geometry", "priors", "cleaning", "projection", "zmax"}
    assert second.rerun == ("projection", "zmax")
    assert {"segmentation", "geometry", "cleaning"} <= set(second.cached)
    assert "ran projection, zmax" in second.status
    assert second.estimates.values["mean_slope_deg"] == 32.0
    assert second.estimates.sources["mean_slope_deg"] == "you"
    assert first.estimates.sources["fov_x_deg"] == "EXIF"  # the example photo has a focal length
    assert second.report["pitch_search"]["target_slope_deg"] != first.report["pitch_search"]["target_slope_deg"]
    for view in (first, second):
        assert view.overlay.is_file() and view.top.is_file()


def test_complete_writes_every_download_and_a_zip(steps):
    rv, job = steps["result"], steps["job"]
    names = [p.name for p in rv.downloads]
    assert names[0].endswith(".zip")
    assert set(RUN_FILES) <= set(names)
    for target, name in (("unreal", "heightmap_unreal.png"), ("unity", "heightmap_unity.raw"),
                         ("exr", "heightmap.exr"), ("obj", "heightmap.obj"), ("glb", "heightmap.glb"),
                         ("blender", "heightmap_blender.py")):
        assert target in EXPORTS and name in names
    assert all(p.resolve().is_relative_to(job.folder.resolve()) for p in rv.downloads)
    dem = read_dem(rv.folder / "heightmap.tif")
    assert dem.z.shape == (64, 64) and np.isfinite(dem.z).all()
    assert dem.dx_m == pytest.approx(rv.report["dx_m"])
    with zipfile.ZipFile(rv.downloads[0]) as zf:
        listed = set(zf.namelist())
        assert {"heightmap.tif", "report.json", "exports/heightmap.exr"} <= listed
        assert len(listed) == len(rv.downloads) - 1
        assert zf.read("heightmap.tif") == (rv.folder / "heightmap.tif").read_bytes()
    # the edit reached the run
    assert rv.report["priors"]["mean_slope_deg"] == 32.0
    # progress rises to 1 through every stage, exports last
    fr = [f for f, _ in steps["ticks"]]
    assert fr == sorted(fr) and fr[-1] == 1.0
    assert steps["ticks"][-1][1].startswith("exports")


def test_viewer_glb_marks_the_camera_and_tints_generated_cells(steps):
    import trimesh

    from pixels2peaks.io.export import z_up_to_y_up
    from pixels2peaks.studio.views import viewer_texture

    rv = steps["result"]
    scene = trimesh.load(rv.viewer, force="scene")
    assert set(scene.geometry) == {"terrain", "camera"}
    from pixels2peaks.camera import Camera

    camera = Camera.load(rv.folder / "camera.json")
    apex = scene.geometry["camera"].vertices[0]
    assert np.allclose(apex, z_up_to_y_up(np.array([camera.position_m]))[0], atol=1e-3)
    terrain = scene.geometry["terrain"]
    zr = rv.report["elevation_m"]
    assert terrain.vertices[:, 1].min() >= zr[0] - 1e-3 and terrain.vertices[:, 1].max() <= zr[1] + 1e-3
    z = read_dem(rv.folder / "heightmap.tif").z
    flat = np.zeros_like(z)  # a flat field shades evenly: only the tint tells cells apart
    known = np.zeros(z.shape, bool)
    known[:, :32] = True
    tex = viewer_texture(flat, known, 10.0).astype(int)
    assert (tex[:, :32] == tex[0, 0]).all() and (tex[:, 32:] == tex[0, 40]).all()
    assert np.abs(tex[0, 0] - tex[0, 40]).sum() > 60


def test_cancel_stops_the_complete_step(steps):
    store, job = steps["store"], steps["job"]

    def press_cancel(fraction, text):
        if text.startswith("completion"):
            store.cancel(job)

    config = steps["config"]
    other_seed = Overrides(mean_slope_deg=27.0)  # not cached: the completion really starts
    with pytest.raises(Cancelled):
        complete_step(steps["photo"], job, config, other_seed, cache=steps["cache"], store=store,
                      progress=press_cancel)
    # the finished result is still there, and the next step is not cancelled
    assert (job.folder / "result" / "heightmap.tif").is_file()
    visible_step(steps["photo"], job, config, other_seed, cache=steps["cache"], store=store)


def test_load_photo_refuses_non_images_with_the_upload_name(tmp_path):
    store = JobStore(tmp_path / "jobs")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(InputError, match=r"'notes.png' is not an image"):
        load_photo(bad, store.new())
    from PIL import Image

    bomb = tmp_path / "bomb.png"
    Image.new("L", (8000, 7000)).save(bomb)  # 56 MP, a few kB compressed
    with pytest.raises(InputError, match="megapixels"):
        load_photo(bomb, store.new())


# ----------------------------------------------------------------------------------------------
# a live server
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app, url = start_server(tmp_path_factory.mktemp("server"), max_upload_mb=1)
    yield app, url
    stop_server(app)


def test_default_bind_address_is_local(server):
    import inspect

    from pixels2peaks.cli.ui import ui
    from pixels2peaks.studio.app import launch

    assert inspect.signature(launch).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(ui).parameters["host"].default.default == "127.0.0.1"
    app, url = server
    assert url.startswith("http://127.0.0.1:")
    assert app.server_name == "127.0.0.1"
    assert not any("warning" in m for m in app.p2p_messages)


def test_a_public_bind_address_warns(tmp_path, monkeypatch):
    from pixels2peaks.studio.app import launch
    from studio_support import free_port

    # one studio per process owns GRADIO_TEMP_DIR: give it back to the module's server after
    monkeypatch.setenv("GRADIO_TEMP_DIR", os.environ.get("GRADIO_TEMP_DIR", ""))

    said: list[tuple[str, bool]] = []
    app = launch(tiny_studio_config(tmp_path), host="0.0.0.0", port=free_port(), open_browser=False,
                 cache=StageCache(None), block=False, echo=lambda m, err=False: said.append((m, err)))
    try:
        assert said[0][1] and "warning: serving on 0.0.0.0" in said[0][0]
    finally:
        stop_server(app)


def _get(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_upload_limit_and_non_image_leave_the_server_up(server, tmp_path):
    import httpx
    from gradio_client import Client, handle_file

    app, url = server
    big = tmp_path / "big.jpg"
    big.write_bytes(os.urandom(int(1.5e6)))
    with open(big, "rb") as fh:
        r = httpx.post(url + "gradio_api/upload", files={"files": ("big.jpg", fh, "image/jpeg")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size of 1048576 bytes" in r.text
    client = Client(url, verbose=False)
    text = tmp_path / "holiday.jpg"
    text.write_text("these are my notes, not a photo")
    with pytest.raises(Exception, match="'holiday.jpg' is not an image Pillow can read"):
        client.predict(handle_file(str(text)), api_name="/visible")
    assert _get(url) == 200
    out = client.predict(handle_file(str(PHOTO)), api_name="/visible")
    assert out[2].startswith("Camera and visible terrain in")


def test_downloads_only_come_from_job_folders(server, tmp_path):
    from gradio_client import Client

    app, url = server
    client = Client(url, verbose=False)
    from gradio_client import handle_file

    client.predict(handle_file(str(PHOTO)), api_name="/visible")
    res = client.predict(api_name="/complete")
    files = res[5]
    tif = next(f for f in files if f.endswith("heightmap.tif"))
    assert read_dem(tif).z.shape == (64, 64)  # gradio_client downloaded it through the server
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    root = app.p2p_store.root
    for path in (str(secret), "/etc/passwd", f"{root}/../{secret.name}", f"{root}/%2e%2e/etc/passwd",
                 str(PHOTO.parents[1] / "README.md")):
        assert _get(f"{url}gradio_api/file={path}") in (403, 404)


def test_two_jobs_at_once_run_one_after_the_other(server, monkeypatch):
    from gradio_client import Client, handle_file

    import pixels2peaks.studio.app as app_mod

    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    real = app_mod.visible_step

    def recorded(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            time.sleep(0.5)
            return real(*args, **kwargs)
        finally:
            with lock:
                spans.append((t0, time.perf_counter()))

    monkeypatch.setattr(app_mod, "visible_step", recorded)
    _, url = server
    jobs = [Client(url, verbose=False).submit(handle_file(str(PHOTO)), api_name="/visible") for _ in range(2)]
    outs = [j.result(timeout=120) for j in jobs]
    assert all(o[2].startswith("Camera and visible terrain in") for o in outs)
    assert len(spans) == 2
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 >= a1  # the second started after the first ended


def test_a_crashing_step_says_why_in_the_page_and_the_server_goes_on(server, monkeypatch):
    from gradio_client import Client, handle_file

    import pixels2peaks.studio.app as app_mod

    real = app_mod.visible_step
    calls = {"n": 0}

    def crash_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom in the geometry\nsecond line")
        return real(*args, **kwargs)

    monkeypatch.setattr(app_mod, "visible_step", crash_once)
    _, url = server
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="The step failed: RuntimeError: boom in the geometry$"):
        client.predict(handle_file(str(PHOTO)), api_name="/visible")
    out = client.predict(handle_file(str(PHOTO)), api_name="/visible")
    assert out[2].startswith("Camera and visible terrain in")
