import math

import numpy as np
import pytest

from pixels2peaks.errors import InputError
from pixels2peaks.perception.geometry import (
    CleanOptions,
    ReconstructOptions,
    ScaleFit,
    clean_points,
    fit_scale,
    heightmap_max,
    mean_slope_deg,
    pitch_rotation,
    project_visible,
    reconstruct,
    rotate_points,
    search_pitch,
)


def to_camera(world, pitch_deg):
    """Level-frame points (camera at the origin, yaw 0) -> camera frame."""
    return np.asarray(world) @ pitch_rotation(pitch_deg)  # R^T applied to row vectors


def plane_scene(slope_deg=25.0, spacing=10.0):
    x, y = np.meshgrid(np.arange(-500, 500, spacing), np.arange(200, 1200, spacing))
    z = math.tan(math.radians(slope_deg)) * (y - 200) - 100.0
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def cone_face(slope_deg=30.0, spacing=10.0):
    x, y = np.meshgrid(np.arange(-600, 600, spacing), np.arange(300, 1500, spacing))
    r = np.hypot(x, y - 1500.0)
    keep = (r < 1200) & (r > 30)
    z = math.tan(math.radians(slope_deg)) * (1200 - r) - 200.0
    return np.stack([x[keep], y[keep], z[keep]], axis=1)


def test_rotation_matches_camera_convention():
    # pitch 0: camera forward (z) is north (+y), camera down (y) is -z
    r = pitch_rotation(0.0)
    assert np.allclose(r @ [0, 0, 1], [0, 1, 0])
    assert np.allclose(r @ [0, 1, 0], [0, 0, -1])
    # pitch +30 looks up
    f = pitch_rotation(30.0) @ [0, 0, 1]
    assert np.allclose(f, [0, math.cos(math.radians(30)), math.sin(math.radians(30))])


@pytest.mark.parametrize("true_pitch", [-10.0, 7.0])
def test_pitch_search_recovers_plane_pitch(true_pitch):
    world = plane_scene(25.0)
    cam = to_camera(world, true_pitch)
    assert np.allclose(rotate_points(cam, true_pitch), world)
    res = search_pitch(cam, 25.0, pitch_range_deg=(-30, 30), step_deg=1.0, search_cells=64)
    assert abs(res.pitch_deg - true_pitch) <= 1.0
    i = int(np.argmin(np.abs(res.candidates_deg - true_pitch)))
    assert res.slopes_deg[i] == pytest.approx(25.0, abs=0.5)


def test_pitch_search_recovers_cone_pitch():
    world = cone_face(30.0)
    true_pitch = 5.0
    cam = to_camera(world, true_pitch)
    # prior = the slope the same procedure measures at the true pitch
    z, occ, _ = heightmap_max(world, np.ptp(world[:, 1]) / 64)
    target, n = mean_slope_deg(z, occ, np.ptp(world[:, 1]) / 64)
    assert n > 100
    res = search_pitch(cam, target, pitch_range_deg=(-20, 20), step_deg=1.0, search_cells=64)
    assert abs(res.pitch_deg - true_pitch) <= 1.0


def test_search_pitch_is_scale_invariant():
    cam = to_camera(plane_scene(25.0), -10.0)
    a = search_pitch(cam, 25.0, pitch_range_deg=(-20, 0), step_deg=1.0, search_cells=64)
    b = search_pitch(cam * 0.001, 25.0, pitch_range_deg=(-20, 0), step_deg=1.0, search_cells=64)
    # the curves agree to rounding at cell edges; the interpolated pitch to a fraction of a step
    np.testing.assert_allclose(a.slopes_deg, b.slopes_deg, atol=0.3)
    assert abs(a.pitch_deg - b.pitch_deg) < 0.25


def test_refined_pitch_interpolates_and_finds_the_bottom_of_the_u():
    from pixels2peaks.perception.geometry import _refined_pitch

    cands = np.arange(-10.0, 10.5, 0.5)
    s = 10.0 + 0.2 * (cands - 2.0) ** 2  # U with its bottom at +2 deg, s = 10 there
    # a target on the rising branch: the exact crossing, not the nearest candidate
    th = _refined_pitch(cands, s, 13.0, "rising")
    assert abs(th - (2.0 + np.sqrt(15.0))) < 0.05
    # a target below the whole curve: the bottom, between candidates
    s2 = 10.0 + 0.2 * (cands - 2.3) ** 2
    assert abs(_refined_pitch(cands, s2, 8.0, "rising") - 2.3) < 0.05
    # a tiny perturbation of a flat bottom moves the pitch a little, not by a whole candidate
    rng = np.random.default_rng(0)
    a = _refined_pitch(cands, s2 + rng.normal(0, 0.02, s2.size), 8.0, "rising")
    assert abs(a - 2.3) < 0.3
    assert _refined_pitch(np.array([4.0]), np.array([12.0]), 20.0, "rising") == 4.0


def test_search_pitch_rejects_bad_input():
    with pytest.raises(InputError):
        search_pitch(np.zeros((2, 3)), 20.0)
    with pytest.raises(InputError):
        search_pitch(np.random.default_rng(0).random((50, 3)) + [0, 0, 1], 95.0)


def test_scale_fit_hits_range_exactly():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(500, 3)) * [3, 5, 0.7]
    fit = fit_scale(pts, (1500.0, 3200.0), include_xy=np.zeros((1, 2)))
    q = fit.apply(pts)
    assert q[:, 2].min() == pytest.approx(1500.0, abs=1e-9)
    assert q[:, 2].max() == pytest.approx(3200.0, abs=1e-9)
    assert q[:, 0].min() >= -1e-9 and q[:, 1].min() >= -1e-9
    cam = fit.apply(np.zeros((1, 3)))[0]
    assert cam[0] >= -1e-9 and cam[1] >= -1e-9
    assert fit.scale == pytest.approx(1700.0 / np.ptp(pts[:, 2]))
    with pytest.raises(InputError):
        fit_scale(np.ones((5, 3)), (0.0, 1.0))
    with pytest.raises(InputError):
        fit_scale(pts, (10.0, 10.0))


def test_projection_of_known_points():
    pts = np.array([[5.0, 15.0, 2.0], [6.0, 14.0, 3.0], [25.0, 5.0, 7.0], [39.0, 1.0, 1.0]])
    fit = ScaleFit(1.0, np.zeros(3))
    zv, mv, dx, _ = project_visible(pts, fit, dx_m=10.0, camera_xy=None, margin_cells=0)
    assert dx == 10.0 and zv.shape == (2, 4)
    expected = np.array([[3.0, np.nan, np.nan, np.nan], [np.nan, np.nan, 7.0, 1.0]])
    assert np.array_equal(np.isnan(zv), np.isnan(expected))
    assert np.allclose(zv[mv], expected[~np.isnan(expected)])
    assert mv.tolist() == [[True, False, False, False], [False, False, True, True]]


def test_projection_default_dx_spans_target_cells():
    pts = np.array([[0.0, 0.0, 0.0], [2048.0, 512.0, 10.0]])
    zv, mv, dx, fit = project_visible(pts, ScaleFit(1.0, np.zeros(3)), target_cells=1024)
    assert dx == pytest.approx(2048 / 1023) and zv.shape == (257, 1024)
    assert mv[-1, 0] and mv[0, -1] and mv.sum() == 2
    assert np.allclose(fit.offset, [dx / 2, dx / 2, 0])
    with pytest.raises(InputError):
        project_visible(pts, ScaleFit(1.0, np.zeros(3)), dx_m=0.01, max_cells=1000)


def test_dbscan_removes_outliers_scale_free():
    rng = np.random.default_rng(0)
    # dense surface: a pixel grid at depths 100..1000 (far points sparser in 3-D)
    v, u = np.mgrid[0:120, 0:160].astype(float)
    depth = 1000.0 - 7.5 * v
    surf = np.stack([(u - 80) / 150 * depth, (v - 60) / 150 * depth, depth], -1).reshape(-1, 3)
    # flying pixels: surface rays at 1.5-3x the surface depth, plus points far off the surface
    pick = rng.choice(len(surf), 40, replace=False)
    flying = surf[pick] * rng.uniform(1.5, 3.0, (40, 1))
    far = np.stack([rng.uniform(-300, 300, 20), rng.uniform(-200, 200, 20), rng.uniform(3000, 6000, 20)], 1)
    out = np.concatenate([flying, far])
    pts = np.concatenate([surf, out])
    for scale in (1.0, 1e-3):
        keep = clean_points(pts * scale, CleanOptions())
        assert keep[: len(surf)].mean() > 0.99
        assert keep[len(surf):].mean() < 0.1
    # subsampled path behaves the same
    keep = clean_points(pts, CleanOptions(max_points=5000))
    assert keep[: len(surf)].mean() > 0.97 and keep[len(surf):].mean() < 0.1


def test_reconstruct_end_to_end():
    # camera at 100 m above the foot of a 25 deg plane, pitch -8, pixel grid pointmap
    true_pitch = -8.0
    world = plane_scene(25.0, spacing=12.0)
    cam_pts = to_camera(world, true_pitch)
    pm = cam_pts.reshape(100 // 1, -1, 3) if False else cam_pts.reshape(-1, 1, 3)
    valid = np.ones(pm.shape[:2], bool)
    res = reconstruct(
        pm, valid, 60.0, 25.0, (1000.0, 1500.0),
        ReconstructOptions(clean=None, pitch_range_deg=(-20, 20), pitch_step_deg=1.0,
                           search_cells=64, target_cells=128),
    )
    assert abs(res.camera.pitch_deg - true_pitch) <= 1.0
    assert np.nanmin(res.z) == pytest.approx(1000.0, abs=1e-3)
    assert np.nanmax(res.z) == pytest.approx(1500.0, abs=1e-3)
    assert max(res.z.shape) == 128 and res.mask.sum() > 0
    assert res.camera.yaw_deg == 0.0 and res.camera.dx_m == res.dx_m
    # camera stands at the south edge, above the plane's foot
    assert res.camera.position_m[1] == pytest.approx(res.dx_m / 2, abs=1e-6)
    assert res.camera.position_m[2] > 1000.0


def test_reconstruct_rendered_view_recovers_camera():
    """Integration with the camera module: render a hill from a known camera, feed the
    camera-frame pointmap back, recover pitch, scale and pose."""
    from pixels2peaks.camera import Camera, render

    n, dx = 64, 20.0
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    z = 300.0 * np.exp(-(((xx - 32) / 14) ** 2 + ((yy - 24) / 12) ** 2)) + 100.0 + 4.0 * (n - yy)
    cam = Camera(96, 64, 60.0, (640.0, -300.0, 600.0), yaw_deg=0.0, pitch_deg=-12.0)
    res = render(z, dx, cam)
    assert res.hit.mean() > 0.3
    pc = cam.world_to_camera(res.pointmap.astype(np.float64))
    world = res.pointmap[res.hit].astype(np.float64)
    # prior slope = what the same procedure measures at the true pitch
    lvl = rotate_points(pc[res.hit], -12.0)
    d = max(np.ptp(lvl[:, 0]), np.ptp(lvl[:, 1])) / 64
    zz, occ, _ = heightmap_max(lvl, d)
    target, _ = mean_slope_deg(zz, occ, d)
    zr = (float(world[:, 2].min()), float(world[:, 2].max()))
    out = reconstruct(pc, res.hit, 60.0, target, zr, ReconstructOptions(
        clean=None, pitch_range_deg=(-30, 10), pitch_step_deg=1.0, search_cells=64, target_cells=128))
    assert abs(out.camera.pitch_deg + 12.0) <= 1.0
    assert out.scale.scale == pytest.approx(1.0, rel=0.1)
    # camera height above the lowest visible point is preserved (up to the scale error)
    assert out.camera.position_m[2] - zr[0] == pytest.approx(600.0 - zr[0], rel=0.1)
    # the camera looks at the terrain from the south: it is south of the visible cells
    rows = np.flatnonzero(out.mask.any(axis=1))
    south_edge_y = (out.z.shape[0] - rows.max() - 1) * out.dx_m
    assert out.camera.position_m[1] <= south_edge_y + out.dx_m


def test_pitch_search_subsampling_agrees():
    cam = to_camera(plane_scene(25.0, spacing=5.0), -10.0)
    a = search_pitch(cam, 25.0, pitch_range_deg=(-14, -6), step_deg=1.0, search_cells=48)
    b = search_pitch(cam, 25.0, pitch_range_deg=(-14, -6), step_deg=1.0, search_cells=48, max_points=10_000)
    assert abs(a.pitch_deg - b.pitch_deg) <= 1.0 and abs(b.pitch_deg + 10) <= 1.0


def test_candidate_slopes_kernel_matches_reference_steps():
    """The compiled per-candidate pass == rotate_points + heightmap_max + mean_slope_deg."""
    from pixels2peaks.perception.geometry import _candidate_slopes

    rng = np.random.default_rng(3)
    x, y = rng.uniform(-400, 400, 3000), rng.uniform(100, 2000, 3000)
    world = np.stack([x, y, 150 * np.sin(x / 120) + 0.4 * y + rng.normal(0, 3, 3000) - 300], axis=1)
    cam = to_camera(world, -6.0)
    cands = np.arange(-20.0, 10.1, 2.5)
    rots = np.stack([pitch_rotation(t) for t in cands])
    got, counts = _candidate_slopes(np.ascontiguousarray(cam), rots, np.array([48]), 0.0)
    got, counts = got[:, 0], counts[:, 0]
    for i, th in enumerate(cands):
        q = rotate_points(cam, th)
        dx = max(np.ptp(q[:, 0]), np.ptp(q[:, 1])) / 48
        z, occ, _ = heightmap_max(q, dx)
        ref, n = mean_slope_deg(z, occ, dx)
        assert counts[i] == n
        assert got[i] == pytest.approx(ref, abs=1e-9)


def test_pitch_search_picks_the_rising_branch():
    """A rising plane seen at -5 deg: the slope curve matches 25 deg at -5 (rising) and again on
    the far side of its minimum (the plane tilted the other way); "rising" picks the right one,
    the plain argmin may not."""
    cam = to_camera(plane_scene(25.0), -5.0)
    a = search_pitch(cam, 25.0, pitch_range_deg=(-80, 30), step_deg=1.0, search_cells=64)
    assert abs(a.pitch_deg + 5.0) <= 1.0
    fin = np.isfinite(a.slopes_deg)
    i_min = int(np.nanargmin(a.slopes_deg))
    assert -32 <= a.candidates_deg[i_min] <= -28  # the levelling pitch: -5 - 25 deg
    other = np.flatnonzero(fin & (np.arange(a.slopes_deg.size) < i_min))
    # the other root exists: the curve comes back up to ~25 deg below the minimum
    assert np.nanmin(np.abs(a.slopes_deg[other] - 25.0)) < 2.0
    with pytest.raises(InputError):
        search_pitch(cam, 25.0, branch="nope")


def test_stray_far_points_do_not_set_the_pitch_search_grid():
    # a cone face seen at +5 deg, plus 0.3 % stray points 8x farther (a depth net's far speckle):
    # one grid over every point has cells ~8x too large, the quantile extent ignores the strays
    world = cone_face(30.0)
    true_pitch = 5.0
    z, occ, _ = heightmap_max(world, np.ptp(world[:, 1]) / 64)
    target, _ = mean_slope_deg(z, occ, np.ptp(world[:, 1]) / 64)
    rng = np.random.default_rng(1)
    k = max(3, int(0.003 * len(world)))
    stray = world[rng.choice(len(world), k, replace=False)] * np.array([1.0, 8.0, 1.0])
    cam = to_camera(np.concatenate([world, stray]), true_pitch)
    kw = dict(pitch_range_deg=(-20, 20), step_deg=1.0, search_cells=64)
    opts = ReconstructOptions()
    clean = search_pitch(to_camera(world, true_pitch), target, **kw)
    robust = search_pitch(cam, target, extent_trim=opts.search_extent_trim, **kw)
    naive = search_pitch(cam, target, **kw)
    assert abs(clean.pitch_deg - true_pitch) <= 0.5
    assert abs(robust.pitch_deg - clean.pitch_deg) <= 0.05
    assert abs(naive.pitch_deg - clean.pitch_deg) > 0.5


def test_pitch_search_grid_scales_average_the_slope_curves():
    cam = to_camera(cone_face(30.0), 5.0)
    kw = dict(pitch_range_deg=(-10, 10), step_deg=1.0)
    a = search_pitch(cam, 20.0, search_cells=48, **kw)
    b = search_pitch(cam, 20.0, search_cells=96, **kw)
    both = search_pitch(cam, 20.0, search_cells=64, grid_scales=(0.75, 1.5), **kw)
    np.testing.assert_allclose(both.slopes_deg, (a.slopes_deg + b.slopes_deg) / 2, atol=1e-9)
    with pytest.raises(InputError, match="grid scales"):
        search_pitch(cam, 20.0, grid_scales=(), **kw)
    with pytest.raises(InputError, match="extent trim"):
        search_pitch(cam, 20.0, extent_trim=0.7, **kw)
