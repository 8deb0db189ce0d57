"""Z_V as a meshed surface (perception/surface.py): closed-form planes, occlusion and ridgeline
cuts, the maximum rule, against project_pointmap."""

import numpy as np
import pytest

from pixels2peaks.camera import project_pointmap
from pixels2peaks.errors import InputError
from pixels2peaks.perception.surface import mesh_heightmap

DX = 10.0
SHAPE = (60, 60)


def plane_pointmap(rows=12, cols=10, x0=50.0, y0=50.0, step=45.0, a=0.3, b=-0.2, c=100.0):
    """A coarse image grid of points on the plane z = a x + b y + c (a sparse pointmap)."""
    ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    x = x0 + jj * step + 3.0 * ii  # a slightly sheared grid, as rays fan out
    y = y0 + ii * step
    return np.stack([x, y, a * x + b * y + c], axis=-1)


def test_a_plane_is_filled_exactly_between_its_points():
    pm = plane_pointmap()
    zp, mp = project_pointmap(pm.astype(np.float32), SHAPE, DX)
    zm, mm = mesh_heightmap(pm, SHAPE, DX, (300.0, -500.0, 200.0))
    assert mm.sum() > 8 * mp.sum()  # the points alone leave most cells empty
    assert (mm | ~mp).all()  # every cell with a point is still seen
    rows, cols = np.nonzero(mm & ~mp)
    x, y = (cols + 0.5) * DX, (SHAPE[0] - rows - 0.5) * DX
    assert np.allclose(zm[rows, cols], 0.3 * x - 0.2 * y + 100.0, atol=1e-3)
    # the footprint is the points' convex hull, no further
    assert not mm[:, :4].any() and not mm[-4:, :].any()


def test_no_triangle_across_a_depth_jump():
    near = plane_pointmap(rows=6, y0=50.0)
    far = plane_pointmap(rows=6, y0=450.0)
    far[..., 2] += 50.0
    pm = np.concatenate([near, far], axis=0)
    cam = (300.0, -20000.0, 100.0)  # so far that the two bands are at similar distances...
    zm, _ = mesh_heightmap(pm, SHAPE, DX, cam)
    gap = slice(SHAPE[0] - 44, SHAPE[0] - 30)  # rows between the bands (y 300..440 m)
    assert np.isfinite(zm[gap, 15:30]).any()  # ...and the gap is bridged
    zm, _ = mesh_heightmap(pm, SHAPE, DX, (300.0, 0.0, 100.0), max_jump=1.5)  # near: a jump
    assert not np.isfinite(zm[gap, 15:30]).any()


def test_a_ridgeline_cuts_the_mesh():
    pm = np.concatenate([plane_pointmap(rows=6, y0=50.0), plane_pointmap(rows=6, y0=450.0)], axis=0)
    cut = np.zeros(pm.shape[:2], bool)
    cut[6, :] = True  # the first row of the far band lies on a detected ridgeline
    cam = (300.0, -20000.0, 100.0)
    zm, _ = mesh_heightmap(pm, SHAPE, DX, cam, occlusions=cut)
    gap = slice(SHAPE[0] - 44, SHAPE[0] - 30)
    assert not np.isfinite(zm[gap, 15:30]).any()


def test_the_higher_surface_wins_and_bad_input_is_refused():
    low = plane_pointmap(a=0.0, b=0.0, c=10.0)
    high = plane_pointmap(a=0.0, b=0.0, c=90.0)
    pm = np.concatenate([low, np.full((1, low.shape[1], 3), np.nan), high], axis=0)
    zm, mm = mesh_heightmap(pm, SHAPE, DX, (300.0, -500.0, 200.0))
    assert np.allclose(zm[mm], 90.0)
    with pytest.raises(InputError):
        mesh_heightmap(pm[..., :2], SHAPE, DX, (0, 0, 0))
    with pytest.raises(InputError):
        mesh_heightmap(pm, SHAPE, DX, (0, 0, 0), max_jump=1.0)
    with pytest.raises(InputError):
        mesh_heightmap(pm, SHAPE, DX, (0, 0, 0), occlusions=np.zeros((2, 2), bool))


def test_drop_outliers_removes_pits_and_pillars_not_slopes():
    from pixels2peaks.perception.surface import drop_outliers

    z = np.add.outer(np.zeros(20), 10.0 * np.arange(20))  # a 45 deg ramp at dx = 10 m
    m = np.ones(z.shape, bool)
    m[0, :] = False
    z[8, 8] += 80.0  # a pillar: 8 dx above its neighbourhood
    z[12, 5] -= 70.0  # a pit
    z[3, 15] += 30.0  # a bump of 3 dx: a face, kept
    kept = drop_outliers(z, m, 10.0, max_dev_dx=5.0)
    assert not kept[8, 8] and not kept[12, 5] and kept[3, 15]
    assert kept.sum() == m.sum() - 2 and not kept[0].any()


def test_fill_enclosed_fills_only_what_cannot_drain():
    from pixels2peaks.terrain.hydrology import fill_enclosed

    z = np.full((9, 9), 10.0)
    z[2, 2] = 4.0  # a pit enclosed by seen cells: filled to its rim (10 m, plus epsilon steps)
    z[6, 6] = 3.0  # a pit next to an unseen cell: it drains there, left to the completion
    mask = np.ones((9, 9), bool)
    mask[6, 7] = False
    out = fill_enclosed(z, mask)
    assert 10.0 <= out[2, 2] < 10.001
    assert out[6, 6] == 3.0 and np.isnan(out[6, 7])
    seen = mask.copy()
    seen[2, 2] = seen[6, 6] = False
    # everything else as it was, up to the epsilon rise that gives flats a drainage direction
    assert np.all(out[seen] >= z[seen]) and np.abs(out[seen] - z[seen]).max() < 1e-3
