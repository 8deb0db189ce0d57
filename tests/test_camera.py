"""Camera model: conventions, pixel <-> ray <-> world round trips, EXIF focal -> FOV, camera.json,
bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from pixels2peaks.camera import (
    Camera,
    cell_centre_xy,
    focal_35mm_from_exif,
    fov_x_from_exif,
    fov_x_from_focal_35mm,
    xy_to_cell,
)
from pixels2peaks.errors import InputError


def _random_camera(rng: np.random.Generator) -> Camera:
    return Camera(
        int(rng.integers(2, 400)),
        int(rng.integers(2, 300)),
        float(rng.uniform(5, 170)),
        tuple(rng.uniform(-1e4, 1e4, 3)),
        yaw_deg=float(rng.uniform(-720, 720)),
        pitch_deg=float(rng.uniform(-89, 89)),
    )


# ----------------------------------------------------------------------------------------------
# conventions
# ----------------------------------------------------------------------------------------------


def test_yaw_is_compass_azimuth_and_pitch_up_is_positive():
    for yaw, expected in [(0, (0, 1, 0)), (90, (1, 0, 0)), (180, (0, -1, 0)), (270, (-1, 0, 0))]:
        cam = Camera(64, 48, 60.0, (0, 0, 0), yaw_deg=yaw)
        np.testing.assert_allclose(cam.forward, expected, atol=1e-12)
        # image right is 90 degrees clockwise from the view direction, and horizontal
        np.testing.assert_allclose(Camera(64, 48, 60.0, (0, 0, 0), yaw_deg=yaw + 90).forward, cam.right, atol=1e-12)
    up = Camera(64, 48, 60.0, (0, 0, 0), pitch_deg=20.0)
    assert up.forward[2] == pytest.approx(math.sin(math.radians(20)))
    # the top row looks higher than the bottom row, the right column further east (yaw 0)
    d = up.pixel_to_ray(np.array([32.0, 32.0, 63.5]), np.array([0.5, 47.5, 24.0]))
    assert d[0, 2] > d[1, 2]
    assert d[2, 0] > 0
    # rotation is orthonormal, right-handed camera frame (x right, y down, z forward)
    R = up.rotation
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_intrinsics():
    cam = Camera(800, 600, 90.0, (0, 0, 0))
    assert cam.focal_px == pytest.approx(400.0)
    assert cam.principal_point == (400.0, 300.0)
    assert cam.fov_y_deg == pytest.approx(2 * math.degrees(math.atan(300 / 400)))
    np.testing.assert_allclose(cam.K, [[400, 0, 400], [0, 400, 300], [0, 0, 1]])
    # the centre of the image is the optical axis; the left/right image edges are fov/2 off axis
    d = cam.pixel_to_ray(np.array([400.0, 0.0, 800.0]), np.array([300.0, 300.0, 300.0]))
    np.testing.assert_allclose(d[0], cam.forward, atol=1e-12)
    assert math.degrees(math.acos(d[1] @ cam.forward)) == pytest.approx(45.0)
    assert math.degrees(math.acos(d[2] @ cam.forward)) == pytest.approx(45.0)


def test_heightmap_frame_helpers():
    # cell (row, col) centre at ((col + 0.5) dx, (H - row - 0.5) dx); footprints tile the extent
    h, dx = 5, 2.0
    rows, cols = np.mgrid[0:h, 0:7]
    x, y = cell_centre_xy(rows, cols, h, dx)
    assert x[0, 0] == 1.0 and y[0, 0] == 9.0 and y[-1, 0] == 1.0
    r2, c2 = xy_to_cell(x, y, h, dx)
    np.testing.assert_array_equal(r2, rows)
    np.testing.assert_array_equal(c2, cols)
    assert xy_to_cell(0.0, 10.0, h, dx) == (0, 0)  # NW corner belongs to cell (0, 0)


# ----------------------------------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------------------------------


def test_pixel_ray_world_pixel_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(25):
        cam = _random_camera(rng)
        u = rng.uniform(0, cam.width, 200)
        v = rng.uniform(0, cam.height, 200)
        depth = rng.uniform(0.1, 5e4, 200)
        d = cam.pixel_to_ray(u, v)
        np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-12)
        p = cam.pixel_to_world(u, v, depth)
        np.testing.assert_allclose(p, cam.position + depth[:, None] * d, rtol=1e-12)
        uv, zc = cam.world_to_pixel(p)
        assert (zc > 0).all()
        scale = max(cam.width, cam.height)
        np.testing.assert_allclose(uv[:, 0], u, atol=1e-7 * scale)
        np.testing.assert_allclose(uv[:, 1], v, atol=1e-7 * scale)
        np.testing.assert_allclose(cam.world_to_depth(p), depth, rtol=1e-9)


def test_world_pixel_world_round_trip_and_behind_camera():
    rng = np.random.default_rng(1)
    cam = Camera(320, 240, 65.0, (100.0, -50.0, 30.0), yaw_deg=33.0, pitch_deg=-12.0)
    pts = cam.position + rng.normal(size=(500, 3)) * 1000.0
    uv, zc = cam.world_to_pixel(pts)
    front = zc > 0
    back = cam.pixel_to_world(uv[front, 0], uv[front, 1], cam.world_to_depth(pts[front]))
    np.testing.assert_allclose(back, pts[front], atol=1e-6)
    # points behind the camera have z_cam <= 0
    assert ((pts[~front] - cam.position) @ cam.forward <= 0).all()


def test_conversions_accept_torch_tensors():
    cam = Camera(64, 48, 70.0, (1.0, 2.0, 3.0), yaw_deg=10.0, pitch_deg=5.0)
    u = torch.tensor([0.5, 32.0, 63.5], dtype=torch.float64)
    v = torch.tensor([0.5, 24.0, 47.5], dtype=torch.float64)
    d_t = cam.pixel_to_ray(u, v)
    assert isinstance(d_t, torch.Tensor) and d_t.dtype == torch.float64
    np.testing.assert_allclose(d_t.numpy(), cam.pixel_to_ray(u.numpy(), v.numpy()), atol=1e-12)
    p = cam.pixel_to_world(u, v, torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64))
    uv, z = cam.world_to_pixel(p)
    assert isinstance(uv, torch.Tensor)
    np.testing.assert_allclose(uv.numpy(), np.stack([u.numpy(), v.numpy()], -1), atol=1e-9)


def test_scaled_camera_subpixels():
    cam = Camera(40, 30, 50.0, (0, 0, 0), yaw_deg=200.0, pitch_deg=7.0)
    big = cam.scaled(3)
    assert (big.width, big.height) == (120, 90)
    # sub-pixel (1, 1) of pixel (i, j) in the 3x camera is the centre of pixel (i, j)
    np.testing.assert_allclose(big.pixel_to_ray(3 * 7 + 1.5, 3 * 4 + 1.5), cam.pixel_to_ray(7.5, 4.5), atol=1e-12)


# ----------------------------------------------------------------------------------------------
# EXIF
# ----------------------------------------------------------------------------------------------


def test_fov_from_35mm_focal():
    # 3:2 frame: the 35 mm equivalent width is 36 mm
    assert fov_x_from_focal_35mm(36.0, 3000, 2000) == pytest.approx(2 * math.degrees(math.atan(0.5)))
    assert fov_x_from_focal_35mm(24.0, 6000, 4000) == pytest.approx(73.7398, abs=1e-4)
    # diagonal convention: a 4:3 image's diagonal spans the full-frame diagonal angle
    f = 28.0
    diag = 2 * math.degrees(math.atan(math.hypot(36, 24) / 2 / f))
    fx = fov_x_from_focal_35mm(f, 4000, 3000)
    assert 2 * math.degrees(math.atan(math.tan(math.radians(fx / 2)) * 5 / 4)) == pytest.approx(diag)
    # portrait is narrower than landscape
    assert fov_x_from_focal_35mm(f, 3000, 4000) < fx
    for bad in (0.0, -5.0, float("nan")):
        with pytest.raises(InputError):
            fov_x_from_focal_35mm(bad, 100, 100)


def test_fov_from_exif(tmp_path):
    im = Image.new("RGB", (300, 200))
    ex = Image.Exif()
    ex.get_ifd(0x8769)[0xA405] = 24  # FocalLengthIn35mmFilm
    im.save(tmp_path / "a.jpg", exif=ex)
    assert focal_35mm_from_exif(tmp_path / "a.jpg") == 24.0
    assert fov_x_from_exif(tmp_path / "a.jpg") == pytest.approx(73.7398, abs=1e-4)
    # FocalLength + focal-plane resolution: 4 mm lens on a 6 mm wide sensor
    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    sub[0x920A] = 4.0
    sub[0xA20E] = 300 / 6.0  # pixels per unit
    sub[0xA210] = 4  # unit: mm
    im.save(tmp_path / "b.jpg", exif=ex)
    assert fov_x_from_exif(tmp_path / "b.jpg") == pytest.approx(2 * math.degrees(math.atan(3 / 4)))
    # rotated by EXIF orientation: the displayed image is portrait
    ex = Image.Exif()
    ex[0x0112] = 6
    ex.get_ifd(0x8769)[0xA405] = 24
    im.save(tmp_path / "c.jpg", exif=ex)
    assert fov_x_from_exif(tmp_path / "c.jpg") == pytest.approx(fov_x_from_focal_35mm(24, 200, 300))
    # no EXIF
    im.save(tmp_path / "d.png")
    assert fov_x_from_exif(tmp_path / "d.png") is None
    with pytest.raises(InputError):
        fov_x_from_exif(tmp_path / "missing.jpg")


# ----------------------------------------------------------------------------------------------
# camera.json
# ----------------------------------------------------------------------------------------------


def test_json_round_trip(tmp_path):
    cam = Camera(1024, 768, 63.5, (1.5, 2.25, 3000.125), yaw_deg=271.0, pitch_deg=-7.5, dx_m=30.0)
    path = cam.save(tmp_path / "camera.json")
    d = json.loads(path.read_text())
    for key in ("width", "height", "fov_x_deg", "pitch_deg", "yaw_deg", "position_m", "dx_m"):
        assert key in d
    assert d["position_m"] == [1.5, 2.25, 3000.125] and d["roll_deg"] == 0.0
    assert Camera.load(path) == cam
    # focal_px may replace fov_x_deg; unknown keys are ignored
    d2 = {k: d[k] for k in ("width", "height", "pitch_deg", "yaw_deg", "position_m")}
    d2["focal_px"] = d["focal_px"]
    d2["note"] = "hand-written"
    assert Camera.from_dict(d2).fov_x_deg == pytest.approx(63.5)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"pitch_deg": 90.0}, "pitch"),
        ({"pitch_deg": 120.0}, "pitch"),
        ({"pitch_deg": -90.0}, "pitch"),
        ({"fov_x_deg": 0.0}, "fov"),
        ({"fov_x_deg": -10.0}, "fov"),
        ({"fov_x_deg": 180.0}, "fov"),
        ({"position_m": [0.0, float("nan"), 1.0]}, "position"),
        ({"position_m": [0.0, 1.0]}, "position"),
        ({"yaw_deg": float("inf")}, "yaw"),
        ({"pitch_deg": float("nan")}, "pitch"),
        ({"width": 0}, "width"),
        ({"height": 2.5}, "height"),
        ({"dx_m": -1.0}, "dx"),
        ({"roll_deg": 5.0}, "roll"),
    ],
)
def test_bad_camera_parameters(change, match):
    d = Camera(64, 48, 60.0, (0, 0, 10)).to_dict()
    d.update(change)
    with pytest.raises(InputError, match=match):
        Camera.from_dict(d)


def test_bad_camera_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Camera.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        Camera.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="object"):
        Camera.load(tmp_path / "list.json")
    (tmp_path / "missing.json").write_text('{"width": 10}')
    with pytest.raises(InputError, match="missing"):
        Camera.load(tmp_path / "missing.json")
