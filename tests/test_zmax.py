"""View bound Z_max (Algorithm 2): the view-consistency property on random terrains, the wall's
analytic bound, frustum coverage, conventions and bad input.

Tolerance: the bound is exact for the rays cast, in the blocks terrain model; values are
float32 rounded down, so "above Z_max" is tested with a 1 mm margin (>> 1 float32 ulp here).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from pixels2peaks.camera import Camera, Heightfield, auto_supersample, view_bound
from pixels2peaks.errors import InputError

RAISE_M = 1e-3  # stated tolerance: 1 mm above Z_max


def _terrain(seed: int, h: int = 48, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = gaussian_filter(rng.normal(size=(h, w)), 2.5) * 600 + rng.normal(size=(h, w)) * 3
    return z.astype(np.float32).astype(np.float64)


def _scene(seed: int):
    """A random terrain and a camera standing above it near the south edge looking across."""
    rng = np.random.default_rng(1000 + seed)
    z = _terrain(seed)
    dx = 10.0
    h, w = z.shape
    x = rng.uniform(0.2, 0.8) * w * dx
    y = rng.uniform(0.02, 0.2) * h * dx
    hf = Heightfield(z, dx, "blocks")
    ground = float(np.nanmax(z[int(h - y / dx) - 2 : int(h - y / dx) + 2, int(x / dx) - 2 : int(x / dx) + 2]))
    cam = Camera(64, 48, float(rng.uniform(50, 80)), (x, y, ground + float(rng.uniform(20, 80))),
                 yaw_deg=float(rng.uniform(-30, 30)), pitch_deg=float(rng.uniform(-15, 5)))
    return z, dx, hf, cam


def _same(a, b) -> bool:
    return np.array_equal(a.hit, b.hit) and np.array_equal(a.depth, b.depth)


@pytest.mark.parametrize("seed", range(6))
def test_view_bound_property_on_random_terrains(seed):
    z, dx, hf, cam = _scene(seed)
    ref = hf.render(cam)
    seen = ref.seen
    assert 0 < seen.sum() < seen.size
    zv = np.where(seen, z, np.nan)
    zmax = view_bound(zv, dx, cam, supersample=1)
    assert zmax.dtype == np.float32
    np.testing.assert_array_equal(zmax[seen], z[seen].astype(np.float32))
    unseen = ~seen
    bounded = unseen & np.isfinite(zmax)
    assert bounded.sum() > 20 and (unseen & np.isinf(zmax)).any()

    # keeping every unseen cell <= Z_max never changes the render (exactly)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        low = np.where(np.isfinite(zmax), zmax.astype(np.float64) - rng.exponential(50.0, z.shape), 1e5)
        low = np.where(rng.random(z.shape) < 0.3, np.minimum(zmax, 1e5), low)
        z2 = np.where(seen, z, low)
        assert _same(Heightfield(z2, dx, "blocks").render(cam), ref)

    # raising any unseen bounded cell above Z_max changes the depth or mask of some pixel
    cells = np.argwhere(bounded)
    for i, j in cells[rng.permutation(len(cells))[:60]]:
        z3 = z.copy()
        z3[i, j] = float(zmax[i, j]) + RAISE_M
        assert not _same(Heightfield(z3, dx, "blocks").render(cam), ref), (i, j)


def test_unbounded_cells_can_be_anything():
    z, dx, hf, cam = _scene(1)
    ref = hf.render(cam)
    zmax = view_bound(np.where(ref.seen, z, np.nan), dx, cam, supersample=1)
    free = np.isinf(zmax)
    z2 = np.where(free, 1e6, z)
    assert _same(Heightfield(z2, dx, "blocks").render(cam), ref)


def test_wall_shadow_bound_is_the_skimming_line():
    """Cells hidden behind a wall are capped by the rays skimming its top edge."""
    h, w, dx = 40, 60, 10.0
    c0, h_wall = 20, 30.0
    z = np.zeros((h, w))
    z[:, c0] = h_wall
    cam = Camera(200, 150, 60.0, (95.0, 200.0, 55.0), yaw_deg=90.0, pitch_deg=-8.0)
    ref = Heightfield(z, dx, "blocks").render(cam)
    zmax = view_bound(np.where(ref.seen, z, np.nan), dx, cam, supersample=1)
    xc, _, zc = cam.position_m
    x1 = (c0 + 1) * dx
    x_s = (zc * x1 - h_wall * xc) / (zc - h_wall)
    rows = slice(12, 28)  # cells near the view axis
    for col in range(c0 + 1, int(x_s // dx)):
        xb = (col + 1) * dx  # rays descend: lowest over the cell at its east edge
        line = zc + (h_wall - zc) * (xb - xc) / (x1 - xc)
        got = zmax[rows, col].astype(np.float64)
        assert (got >= line - 1e-4).all()
        # discrete rays: the lowest passing ray is at most ~1 pixel above the skimming one
        slack = 2.0 * math.hypot(xb - xc, 30.0) / cam.focal_px * 1.5
        assert (got <= line + slack).all(), (col, got.max(), line)


def test_auto_supersample_leaves_no_frustum_cell_unbounded():
    """A wide flat plain seen at a grazing angle: every cell whose centre projects into the image
    is seen or bounded (no cell between two rays is skipped)."""
    n, dx = 200, 10.0
    z = np.zeros((n, n))
    cam = Camera(64, 48, 70.0, (1000.0, -50.0, 40.0), yaw_deg=0.0, pitch_deg=-3.0)
    ref = Heightfield(z, dx, "blocks").render(cam)
    zv = np.where(ref.seen, z, np.nan)
    sx, sy = auto_supersample(z.shape, dx, cam)
    assert sx > 1 and sy == 1
    rows, cols = np.mgrid[0:n, 0:n]
    pts = np.stack([(cols + 0.5) * dx, (n - rows - 0.5) * dx, np.zeros((n, n))], -1)
    uv, zc = cam.world_to_pixel(pts)
    inside = (zc > 0) & (uv[..., 0] > 1) & (uv[..., 0] < cam.width - 1) & (uv[..., 1] > 1)
    inside &= uv[..., 1] < cam.height - 1
    zmax = view_bound(zv, dx, cam)
    assert np.isfinite(zmax[inside]).all()
    # with one ray per pixel, far cells between the rays are skipped
    assert not np.isfinite(view_bound(zv, dx, cam, supersample=1)[inside]).all()


@pytest.mark.parametrize("seed", range(3))
def test_mip_walk_equals_plain_walk(seed):
    z, dx, hf, cam = _scene(seed)
    ref = hf.render(cam)
    zv = np.where(ref.seen, z, np.nan)
    for ss in (1, (3, 2)):
        a = view_bound(zv, dx, cam, supersample=ss, method="mip")
        b = view_bound(zv, dx, cam, supersample=ss, method="dda", threads=1)
        np.testing.assert_array_equal(a, b)
    # also with nodata holes in the "known" heights (full terrain as Z_V)
    z2 = np.where(np.random.default_rng(seed).random(z.shape) < 0.2, np.nan, z)
    np.testing.assert_array_equal(view_bound(z2, dx, cam, method="mip"), view_bound(z2, dx, cam, method="dda"))


def test_more_rays_only_lower_the_bound():
    z, dx, hf, cam = _scene(2)
    ref = hf.render(cam)
    zv = np.where(ref.seen, z, np.nan)
    z1 = view_bound(zv, dx, cam, supersample=1)
    z3 = view_bound(zv, dx, cam, supersample=3)  # includes the pixel-centre rays
    assert (z3 <= z1).all()
    assert (z3 < z1).any()
    # thread count does not change the result
    np.testing.assert_array_equal(view_bound(zv, dx, cam, supersample=3, threads=1), z3)


def test_view_bound_doc_example_and_sky_rays():
    zv = np.full((1, 4), np.nan)
    zv[0, 3] = 0.0
    pitch = -math.degrees(math.atan(10 / 35))
    cam = Camera(1, 1, 10.0, (0.0, 5.0, 10.0), yaw_deg=90.0, pitch_deg=pitch)
    np.testing.assert_allclose(view_bound(zv, 10.0, cam, supersample=1)[0], [50 / 7, 30 / 7, 10 / 7, 0.0],
                               rtol=1e-6)
    # a sky ray bounds every cell it passes over (here it rises over the whole row)
    up = cam.replace(pitch_deg=10.0)
    zm = view_bound(np.full((1, 4), np.nan), 10.0, up, supersample=1)[0]
    assert np.all(np.diff(zm) > 0) and zm[0] == pytest.approx(10.0)


def test_photo_terrain_rays_that_miss_the_visible_heights_bound_nothing():
    """View-true item 3: a far mountain the photo shows but Z_V lacks (perception lost it). Without
    the photo's sky mask the rays through the mountain's pixels miss Z_V and cap its cells below
    their true heights; with the mask those rays bound nothing, every true hidden height is
    within Z_max, and the sky rays still bound the cells they pass over."""
    n, dx = 60, 10.0
    rows, cols = np.mgrid[0:n, 0:n]
    r = np.hypot(rows - 5.0, cols - 30.0)
    cone = np.where(r < 15.0, 250.0 - 8.0 * r, 0.0)  # a steep mountain near the north edge
    z = cone
    cam = Camera(64, 48, 60.0, (300.0, -20.0, 30.0), yaw_deg=0.0, pitch_deg=2.0)
    truth = Heightfield(z, dx, "blocks").render(cam)
    mountain = cone > 0
    assert truth.hit.any() and (~truth.hit).any()
    zv = np.where(truth.seen & ~mountain, z, np.nan)  # the mountain is missing from Z_V
    unknown = ~np.isfinite(zv)
    plain = view_bound(zv, dx, cam, supersample=1)  # the pixel-centre rays of the mask
    assert (z[unknown & mountain] > plain[unknown & mountain] + 1.0).sum() > 10
    photo = view_bound(zv, dx, cam, supersample=1, sky=~truth.hit)
    assert (z[unknown] <= photo[unknown] + RAISE_M).all()
    # the sky rays above the mountain still bound it: finite bounds, no lower than the truth
    assert np.isfinite(photo[mountain]).mean() > 0.5
    assert (photo >= plain).all()  # a mask only removes rays
    np.testing.assert_array_equal(photo, view_bound(zv, dx, cam, supersample=1, sky=~truth.hit,
                                                    method="dda"))
    # all-sky mask = the paper's Algorithm 2
    np.testing.assert_array_equal(plain, view_bound(zv, dx, cam, supersample=1, sky=np.ones((48, 64), bool)))
    with pytest.raises(InputError, match="sky mask"):
        view_bound(zv, dx, cam, sky=np.ones((10, 10), bool))


def test_bad_input():
    cam = Camera(8, 6, 60.0, (5.0, 5.0, 3.0))
    with pytest.raises(InputError, match="below the terrain"):
        view_bound(np.full((2, 2), 10.0), 10.0, cam)
    with pytest.raises(InputError, match="supersample"):
        view_bound(np.full((2, 2), np.nan) * 0 + 1.0, 10.0, cam.replace(position_m=(5, 5, 50)), supersample=0)
    with pytest.raises(InputError, match="2-D"):
        view_bound(np.zeros(4), 10.0, cam)
    with pytest.raises(InputError, match="dx_m"):
        view_bound(np.zeros((2, 2)), -1.0, cam)
    with pytest.raises(InputError, match="Camera"):
        view_bound(np.zeros((2, 2)), 1.0, None)
    with pytest.raises(InputError, match="method"):
        view_bound(np.zeros((2, 2)), 1.0, cam.replace(position_m=(5, 5, 50)), method="fast")
