"""Heightfield renderer on analytic scenes (tilted plane, single wall, cone), nodata holes,
seen cells, bad input and bounded ray marching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from pixels2peaks.camera import Camera, Heightfield, project_pointmap, render, surface_height
from pixels2peaks.errors import InputError


def _centres(h: int, w: int, dx: float):
    rows, cols = np.mgrid[0:h, 0:w]
    return (cols + 0.5) * dx, (h - rows - 0.5) * dx


# ----------------------------------------------------------------------------------------------
# tilted plane: depth in closed form
# ----------------------------------------------------------------------------------------------


def test_tilted_plane_depth_points_and_normals_closed_form():
    h, w, dx = 64, 80, 5.0
    a, b, c = 0.12, 0.31, 5.0  # z = a x + b y + c
    x, y = _centres(h, w, dx)
    z = a * x + b * y + c
    cam = Camera(96, 72, 70.0, (190.0, -60.0, 140.0), yaw_deg=12.0, pitch_deg=-22.0)
    res = render(z, dx, cam)
    u, v = cam.pixel_centres()
    d = cam.pixel_to_ray(u, v)
    C = cam.position
    t = (c - (C[2] - a * C[0] - b * C[1])) / (d[..., 2] - a * d[..., 0] - b * d[..., 1])
    P = C + t[..., None] * d
    # the bilinear surface is the plane between the outermost cell centres
    inner = (t > 0) & (P[..., 0] >= 0.5 * dx) & (P[..., 0] <= (w - 0.5) * dx)
    inner &= (P[..., 1] >= 0.5 * dx) & (P[..., 1] <= (h - 0.5) * dx)
    assert inner.sum() > 0.5 * inner.size
    assert res.hit[inner].all()
    np.testing.assert_allclose(res.depth[inner], t[inner], rtol=2e-6)
    np.testing.assert_allclose(res.pointmap[inner], P[inner], rtol=2e-6, atol=1e-3)
    n = np.array([-a, -b, 1.0]) / math.sqrt(a * a + b * b + 1)
    np.testing.assert_allclose(res.normal[inner], np.broadcast_to(n, res.normal[inner].shape), atol=1e-6)
    # rays that miss the grid extent are sky: inf depth, NaN points/normals
    sky = ~res.hit
    assert np.isinf(res.depth[sky]).all() and np.isnan(res.pointmap[sky]).all()
    assert np.isnan(res.normal[sky]).all()
    assert res.depth.dtype == np.float32 and res.pointmap.dtype == np.float32


def test_flat_ground_from_above_hits_everywhere_below_horizon():
    z = np.full((32, 32), 7.0)
    cam = Camera(40, 30, 60.0, (160.0, 160.0, 57.0), yaw_deg=45.0, pitch_deg=-89.0)
    res = render(z, 10.0, cam)
    assert res.hit.all()
    np.testing.assert_allclose(res.pointmap[..., 2], 7.0, atol=1e-5)
    # straight-down-ish view: centre depth = height above ground / cos(angle to vertical)
    d = cam.pixel_to_ray(20.0, 15.0)
    assert res.depth[15, 20] == pytest.approx(50.0 / -cam.pixel_to_ray(20.5, 15.5)[2], rel=1e-5)
    assert d[2] < 0


# ----------------------------------------------------------------------------------------------
# single wall (blocks model): occlusion and the exact shadow region
# ----------------------------------------------------------------------------------------------


def _wall_scene():
    h, w, dx = 40, 60, 10.0
    c0, h_wall = 20, 30.0
    z = np.zeros((h, w))
    z[:, c0] = h_wall  # a north-south wall, one cell thick: x in [200, 210] m
    cam = Camera(160, 120, 60.0, (95.0, 200.0, 55.0), yaw_deg=90.0, pitch_deg=-8.0)
    return z, dx, c0, h_wall, cam


def test_single_wall_occlusion_and_exact_shadow():
    z, dx, c0, h_wall, cam = _wall_scene()
    res = render(z, dx, cam, surface="blocks")
    xc, _, zc = cam.position_m
    x0, x1 = c0 * dx, (c0 + 1) * dx
    # a ground point at x_p > x1 is visible iff the segment to it clears the wall's east top
    # edge: zc (x_p - x1) / (x_p - xc) >= h_wall  <=>  x_p >= x_s
    x_s = (zc * x1 - h_wall * xc) / (zc - h_wall)
    P = res.pointmap
    ground = res.hit & (np.abs(P[..., 2]) < 1e-6)
    beyond = ground & (P[..., 0] > x1)
    assert beyond.any()
    assert P[beyond][:, 0].min() >= x_s - 1e-3  # nothing inside the shadow is hit
    assert P[beyond][:, 0].min() < x_s + 3 * dx  # and the shadow ends where it should
    # the wall face: hits on the west face x = x0 at the closed-form depth
    u, v = cam.pixel_centres()
    d = cam.pixel_to_ray(u, v)
    t_face = (x0 - xc) / d[..., 0]
    z_face = zc + t_face * d[..., 2]
    y_face = cam.position_m[1] + t_face * d[..., 1]
    on_face = (z_face > 0.5) & (z_face < h_wall - 0.5) & (y_face > 5) & (y_face < 395)
    assert on_face.sum() > 100
    np.testing.assert_allclose(res.depth[on_face], t_face[on_face], rtol=1e-6)
    np.testing.assert_allclose(res.normal[on_face], np.broadcast_to([-1.0, 0, 0], (on_face.sum(), 3)))
    # the wall top is seen, cells in the shadow are not
    assert res.seen[:, c0].any()
    shadow_cols = np.arange(c0 + 1, int(math.floor(x_s / dx)))
    assert len(shadow_cols) >= 2
    assert not res.seen[:, shadow_cols].any()


def test_single_wall_bilinear_also_occludes():
    z, dx, c0, h_wall, cam = _wall_scene()
    res = render(z, dx, cam)  # bilinear: a ridge from the centres c0-1 .. c0+1
    xc, _, zc = cam.position_m
    x_peak = (c0 + 0.5) * dx
    x_s = (zc * x_peak - h_wall * xc) / (zc - h_wall)  # shadow of the ridge crest
    P = res.pointmap
    beyond = res.hit & (P[..., 0] > (c0 + 1.5) * dx) & (np.abs(P[..., 2]) < 1e-6)
    assert P[beyond][:, 0].min() >= x_s - 1e-3


# ----------------------------------------------------------------------------------------------
# cone: silhouette
# ----------------------------------------------------------------------------------------------


def _cone_mask(cam: Camera, apex, h0: float, radius: float) -> np.ndarray:
    """Pixels whose ray meets the cone r = (h0 - z) R / h0 above the ground (closed form)."""
    u, v = cam.pixel_centres()
    d = cam.pixel_to_ray(u, v)
    k = (radius / h0) ** 2
    ox, oy, oz = cam.position - np.array([apex[0], apex[1], h0])
    A = d[..., 0] ** 2 + d[..., 1] ** 2 - k * d[..., 2] ** 2
    B = 2 * (ox * d[..., 0] + oy * d[..., 1] - k * oz * d[..., 2])
    C = ox * ox + oy * oy - k * oz * oz
    disc = B * B - 4 * A * C
    hit = np.zeros(d.shape[:2], bool)
    ok = disc >= 0
    sq = np.sqrt(np.where(ok, disc, 0))
    for sgn in (-1, 1):
        t = (-B + sgn * sq) / (2 * A)
        zz = oz + t * d[..., 2]  # relative to the apex
        hit |= ok & (t > 0) & (zz <= 0) & (zz >= -h0)
    return hit


def test_cone_silhouette():
    n, dx = 101, 2.0
    x, y = _centres(n, n, dx)
    apex = (101.0, 101.0)
    h0, R = 60.0, 80.0
    z = np.maximum(0.0, h0 * (1 - np.hypot(x - apex[0], y - apex[1]) / R))
    # camera south of the cone, below its apex, looking north slightly up: above the horizon
    # only the cone is terrain, so the terrain mask there is its silhouette
    cam = Camera(160, 120, 60.0, (101.0, -40.0, 20.0), yaw_deg=0.0, pitch_deg=10.0)
    res = render(z, dx, cam)
    u, v = cam.pixel_centres()
    above = cam.pixel_to_ray(u, v)[..., 2] > 0.02
    truth = _cone_mask(cam, apex, h0, R) & above
    got = res.hit & above
    assert truth.sum() > 1500
    inter, union = (truth & got).sum(), (truth | got).sum()
    assert inter / union > 0.97
    # disagreements only along the silhouette (bilinear sampling of the cone)
    edge = binary_dilation(truth, iterations=2) & binary_dilation(~truth, iterations=2)
    assert not ((truth ^ got) & above & ~edge).any()


# ----------------------------------------------------------------------------------------------
# seen cells, nodata holes
# ----------------------------------------------------------------------------------------------


def test_seen_cells_are_the_cells_of_the_hit_points():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(40, 50)).cumsum(0).cumsum(1) * 0.5
    dx = 20.0
    cam = Camera(120, 90, 70.0, (500.0, -100.0, float(z.max()) + 80), yaw_deg=5.0, pitch_deg=-10.0)
    res = render(z, dx, cam)
    zv, seen = project_pointmap(res.pointmap, z.shape, dx)
    np.testing.assert_array_equal(seen, res.seen)
    assert np.isfinite(zv[seen]).all() and np.isnan(zv[~seen]).all()
    rows = np.floor(z.shape[0] - res.pointmap[res.hit][:, 1].astype(np.float64) / dx).astype(int)
    cols = np.floor(res.pointmap[res.hit][:, 0].astype(np.float64) / dx).astype(int)
    assert seen[np.clip(rows, 0, 39), np.clip(cols, 0, 49)].all()
    # blocks: hits on column tops (normal up) lie at the height of the column under them, the
    # others on vertical faces (horizontal normals)
    rb = render(z, dx, cam, surface="blocks")
    assert rb.seen.any()
    top = rb.hit & (rb.normal[..., 2] == 1.0)
    pts = rb.pointmap[top].astype(np.float64)
    np.testing.assert_allclose(pts[:, 2], surface_height(z, dx, pts[:, 0], pts[:, 1], "blocks"),
                               atol=1e-4)
    assert (rb.normal[rb.hit & ~top][:, 2] == 0).all()


def test_nodata_cells_are_holes():
    h, w, dx = 40, 40, 10.0
    z = np.zeros((h, w))
    z[10:20, 15:25] = np.nan  # a hole in the flat ground
    cam = Camera(80, 60, 60.0, (200.0, 150.0, 120.0), yaw_deg=0.0, pitch_deg=-60.0)
    for surface in ("bilinear", "blocks"):
        res = render(z, dx, cam, surface=surface)
        assert not res.seen[10:20, 15:25].any()
        # no hit point strictly inside the hole (blocks: wall hits lie on its border)
        P = res.pointmap[res.hit].astype(np.float64)
        rows, cols = h - P[:, 1] / dx, P[:, 0] / dx
        assert not ((rows > 10) & (rows < 20) & (cols > 15) & (cols < 25)).any()
        # a hole is a bottomless pit: a ray through it hits the pit's far wall below the surface
        # (or leaves the grid)
        uv, _ = cam.world_to_pixel(np.array([200.0, 250.0, 0.0]))
        j, i = int(uv[0]), int(uv[1])
        assert res.hit[i, j] and res.pointmap[i, j, 2] < -1.0
        assert res.depth[i, j] > cam.world_to_depth(np.array([200.0, 250.0, 0.0]))
        assert res.hit.sum() > 0.5 * res.hit.size


def test_surface_height():
    z = np.array([[0.0, 10.0], [20.0, 30.0]])
    # bilinear between centres, constant slope across the outer half cells (edge replication)
    assert surface_height(z, 1.0, 0.5, 1.5) == 0.0
    assert surface_height(z, 1.0, 1.0, 1.0) == pytest.approx(15.0)
    assert surface_height(z, 1.0, 0.0, 2.0) == 0.0
    assert surface_height(z, 1.0, 1.7, 0.2, "blocks") == 30.0
    assert np.isnan(surface_height(z, 1.0, -0.1, 1.0))


# ----------------------------------------------------------------------------------------------
# bad input, bounded marching
# ----------------------------------------------------------------------------------------------


def test_camera_below_terrain_is_rejected():
    z = np.full((10, 10), 100.0)
    cam = Camera(8, 6, 60.0, (50.0, 50.0, 99.0))
    for surface in ("bilinear", "blocks"):
        with pytest.raises(InputError, match="below the terrain"):
            render(z, 10.0, cam, surface=surface)
    # outside the grid extent any height is fine
    render(z, 10.0, cam.replace(position_m=(-50.0, 50.0, 0.0)))


@pytest.mark.parametrize(
    "z, dx, match",
    [
        (np.zeros(5), 1.0, "2-D"),
        (np.full((4, 4), np.nan), 1.0, "no valid"),
        (np.array([[0.0, np.inf], [0.0, 0.0]]), 1.0, "infinite"),
        (np.zeros((4, 4)), 0.0, "dx_m"),
        (np.zeros((4, 4)), float("nan"), "dx_m"),
    ],
)
def test_bad_heightmaps(z, dx, match):
    with pytest.raises(InputError, match=match):
        render(z, dx, Camera(4, 4, 60.0, (0.0, 0.0, 1e3)))


def test_bad_surface_and_camera_type():
    with pytest.raises(InputError, match="surface"):
        Heightfield(np.zeros((3, 3)), 1.0, "triangles")
    with pytest.raises(InputError, match="Camera"):
        Heightfield(np.zeros((3, 3)), 1.0).render("camera.json")


def test_degenerate_rays_terminate():
    """Axis-aligned rays, grazing rays, cameras outside/far away, 1x1 grids, a single valid cell:
    every ray ends (the traversal is bounded) with a sane answer."""
    rng = np.random.default_rng(5)
    grids = [np.zeros((1, 1)), rng.normal(size=(1, 7)), rng.normal(size=(9, 1)),
             np.where(rng.random((30, 30)) < 0.97, np.nan, 5.0), rng.normal(size=(33, 17)) * 1e6]
    cams = [
        Camera(17, 13, 90.0, (0.5, 0.5, 1e7), yaw_deg=0.0, pitch_deg=0.0),
        Camera(17, 13, 179.0, (-1e6, 3.0, 0.5), yaw_deg=90.0, pitch_deg=0.0),
        Camera(17, 13, 1e-3, (5.0, -1.0, 0.0), yaw_deg=0.0, pitch_deg=0.0),
        Camera(17, 13, 120.0, (5.0, 5.0, 1e7), yaw_deg=180.0, pitch_deg=-89.999),
        Camera(17, 13, 60.0, (1e9, -1e9, 1e9), yaw_deg=315.0, pitch_deg=-45.0),
    ]
    for z in grids:
        for surface in ("bilinear", "blocks"):
            hf = Heightfield(z, 1.0, surface)
            for cam in cams:
                try:
                    res = hf.render(cam)
                except InputError:
                    continue  # camera below the terrain
                assert res.hit.shape == (13, 17)
                assert (res.depth[res.hit] >= 0).all()
            top = float(np.nanmax(z)) + 1e3
            t = hf.cast(np.array([0.5, 0.5, top]), np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]))
            assert t.shape == (2,) and np.isinf(t[1])


def test_cast_rays_against_plane():
    z = np.full((20, 20), 3.0)
    hf = Heightfield(z, 2.0)
    o = np.array([[20.0, 20.0, 10.0], [1.0, 39.0, 4.0]])
    d = np.array([[0.0, 0.0, -1.0], [1.0, -1.0, -1.0]])
    t = hf.cast(o, d)
    np.testing.assert_allclose(t, [7.0, math.sqrt(3.0)])
    assert np.isinf(hf.cast(o[0], [0.0, 0.0, 1.0]))[0]
    assert np.isinf(hf.cast(o[0], [0.0, 0.0, -1.0], t_max=6.0))[0]
    with pytest.raises(InputError):
        hf.cast(o, [0.0, 0.0, 0.0])
