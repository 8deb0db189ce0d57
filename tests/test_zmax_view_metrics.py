"""View metrics: VVE, OVE (means over all cells), terrain-mask IoU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixels2peaks.camera import Camera, render, view_bound
from pixels2peaks.errors import InputError
from pixels2peaks.evaluation import (
    mask_iou,
    occluded_view_error,
    terrain_mask_iou,
    view_errors,
    visible_view_error,
)


def test_vve_is_mean_over_all_cells():
    z = np.arange(12, dtype=float).reshape(3, 4)
    zv = np.full_like(z, np.nan)
    zv[0, 0], zv[2, 3] = 2.0, 5.0  # |0 - 2| + |11 - 5| = 8 over 12 cells
    assert visible_view_error(z, zv) == pytest.approx(8 / 12)
    m = np.zeros_like(z, bool)
    m[0, 0] = True
    assert visible_view_error(z, zv, m) == pytest.approx(2 / 12)
    assert visible_view_error(zv, zv) == 0.0  # NaN outside M_V is ignored
    # torch input, any shape convention
    assert visible_view_error(torch.tensor(z)[None, None], torch.tensor(zv)) == pytest.approx(8 / 12)


def test_ove_counts_only_unseen_excess():
    z = np.array([[10.0, 10.0], [10.0, 10.0]])
    zmax = np.array([[4.0, 12.0], [np.inf, np.nan]])
    m = np.array([[False, False], [False, False]])
    assert occluded_view_error(z, zmax, m) == pytest.approx(6 / 4)
    m[0, 0] = True  # seen cells do not count
    assert occluded_view_error(z, zmax, m) == 0.0
    assert occluded_view_error(z, None, m) == 0.0


def test_metrics_of_ground_truth_and_of_a_violation():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 40)).cumsum(0).cumsum(1) * 0.3
    dx = 10.0
    cam = Camera(64, 48, 60.0, (200.0, -30.0, float(z.max()) + 30), pitch_deg=-8.0)
    ref = render(z, dx, cam, surface="blocks")
    zv = np.where(ref.seen, z, np.nan)
    zmax = view_bound(zv, dx, cam)
    e = view_errors(z, zv, zmax)
    assert e["vve_m"] == 0.0 and e["ove_m"] == 0.0
    bounded = ~ref.seen & np.isfinite(zmax)
    z2 = z.copy()
    z2[bounded] = zmax[bounded] + 7.0
    assert view_errors(z2, zv, zmax)["ove_m"] == pytest.approx(7.0 * bounded.sum() / z.size, rel=1e-5)
    # terrain-mask IoU of the truth against its own render is 1
    assert terrain_mask_iou(ref.hit, z, dx, cam, surface="blocks") == 1.0
    assert terrain_mask_iou(ref.hit, z - 1e3, dx, cam.replace(position_m=(200.0, -30.0, float(z.max()) + 30)),
                            surface="blocks") < 1.0


def test_mask_iou_and_bad_input():
    a = np.array([[1, 1, 0, 0]], bool)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, ~a) == 0.0
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    with pytest.raises(InputError):
        mask_iou(a, np.ones((2, 2)))
    with pytest.raises(InputError):
        visible_view_error(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(InputError):
        visible_view_error(np.full((2, 2), np.nan), np.zeros((2, 2)))
    with pytest.raises(InputError):
        occluded_view_error(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(InputError):
        terrain_mask_iou(np.zeros((3, 3)), np.zeros((4, 4)), 1.0, Camera(4, 4, 60.0, (2.0, 2.0, 5.0)))


def test_occluding_contours_of_a_step_and_a_skyline():
    from pixels2peaks.evaluation.view_metrics import occluding_contours

    d = np.full((10, 12), 1000.0)
    d[6:, :] = 500.0  # a near ridge below row 6: a 2x depth jump between rows 5 and 6
    hit = np.ones((10, 12), bool)
    hit[:2, :] = False  # sky above row 2
    c = occluding_contours(d, hit)
    assert c[6].all() and not c[5].any()  # the nearer side of the jump
    assert c[2].all()  # the skyline
    assert c.sum() == 24
    d[6:, :] = 900.0  # an 11 % step is not an occlusion
    assert occluding_contours(d, hit).sum() == 12


def test_contour_distance_of_shifted_lines():
    from pixels2peaks.evaluation.view_metrics import contour_distance

    a = np.zeros((20, 30), bool)
    b = np.zeros((20, 30), bool)
    a[5, :] = True
    b[8, :] = True
    assert contour_distance(a, b) == pytest.approx(3.0)
    assert contour_distance(a, a) == 0.0
    assert contour_distance(a, np.zeros_like(a)) == float("inf")


def test_scaled_abs_rel():
    from pixels2peaks.evaluation.view_metrics import scaled_abs_rel

    t = np.linspace(100.0, 1000.0, 50).reshape(5, 10)
    m = np.ones(t.shape, bool)
    assert scaled_abs_rel(0.01 * t, t, m) == pytest.approx(0.0, abs=1e-12)  # scale does not count
    p = t.copy()
    p[:, :5] *= 1.2
    assert 0.0 < scaled_abs_rel(p, t, m) < 0.2
    assert np.isnan(scaled_abs_rel(p, t, np.zeros(t.shape, bool)))
