"""drain_around_fixed: drainage that changes only the free cells (tiny grids with known answers)."""

import numpy as np
import pytest

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology import depression_depth, drain_around_fixed, mean_depression_depth


def _valley_behind_a_ridge():
    """A known valley floor (fixed) sloping down to the south, then a hidden ridge 100 m high
    across its mouth, then the southern border: the valley is a pit behind the ridge."""
    H, W = 30, 21
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    z = 500.0 + 20.0 * np.abs(xx - 10) + 2.0 * (H - yy)  # a V valley falling southwards
    fixed = (yy < 20) & (np.abs(xx - 10) <= 4)
    z[22:25, :] += 100.0  # the hidden ridge
    return z, fixed


def test_a_valley_drains_through_a_hidden_ridge_by_a_v_notch():
    z, fixed = _valley_behind_a_ridge()
    assert mean_depression_depth(z) > 1.0  # the case is a pit
    out, info = drain_around_fixed(z, fixed, 10.0, epsilon=1e-3, side_slope=0.5)
    np.testing.assert_array_equal(out[fixed], z[fixed])  # the known cells do not change
    assert depression_depth(out).max() == 0.0
    assert info["unresolved"] == 0 and info["carved_cells"] > 0
    assert (out <= z + 1e-9).all()  # only lowered: nothing was a hole
    # the notch is a valley, not a slot: the cells beside the carved line are lowered too, by an
    # amount that fades by at most side_slope x dx (5 m) per cell, and no free cell is a slot
    from pixels2peaks.evaluation.artifacts import slot_count

    col = out[23]
    assert abs(int(np.argmin(col)) - 10) <= 2
    lowering = (z - out)[23]
    assert (lowering > 1.0).sum() >= 5
    assert np.abs(np.diff(lowering)).max() <= 5.0 * np.sqrt(2) + 1e-6
    assert slot_count(out, 10.0) == 0


def test_a_hidden_hole_among_known_cells_is_filled():
    z = np.full((9, 9), 100.0)
    z += np.arange(9)[None, :] * 0.5  # drains west
    fixed = np.ones((9, 9), bool)
    fixed[4, 4] = False
    z[4, 4] = 50.0  # a free pit that no lowering can drain: every route crosses fixed cells
    out, info = drain_around_fixed(z, fixed, 10.0, epsilon=1e-3)
    np.testing.assert_array_equal(out[fixed], z[fixed])
    assert out[4, 4] > z[4, 3] and info["filled_cells"] == 1
    assert depression_depth(out).max() == 0.0


def test_without_fixed_cells_every_depression_drains_and_nothing_rises():
    rng = np.random.default_rng(0)
    z = np.cumsum(np.cumsum(rng.normal(size=(40, 40)), 0), 1)
    assert mean_depression_depth(z) > 0
    out, info = drain_around_fixed(z, np.zeros(z.shape, bool), 30.0, epsilon=1e-4)
    assert mean_depression_depth(out) == 0.0 and info["unresolved"] == 0 and info["filled_cells"] == 0
    assert (out <= z).all()


def test_drain_bad_input():
    with pytest.raises(InputError):
        drain_around_fixed(np.zeros((4, 4)), np.zeros((3, 4), bool), 1.0, epsilon=0.0)
    with pytest.raises(InputError):
        drain_around_fixed(np.full((4, 4), np.nan), np.zeros((4, 4), bool), 1.0, epsilon=0.0)


def test_lift_slots_closes_a_gap_between_known_fingers():
    """A one-cell hidden gap 10 dx deep between two known ridges (fingers), draining along its
    length: lifted until no cell is a slot (the issue's 5 dx / 5 x 5 criterion, measured by
    evaluation.artifacts), known cells unchanged, cells only rise, and no pit is left."""
    from pixels2peaks.diffusion.completion import lift_slots
    from pixels2peaks.evaluation.artifacts import slot_count
    from pixels2peaks.terrain.hydrology import mean_depression_depth

    n, dx = 24, 10.0
    rows, cols = np.mgrid[0:n, 0:n]
    z = 2.0 * rows * dx * 0.1 + 0.0 * cols  # a plane falling to the north edge
    fingers = (np.abs(cols - 12) <= 3) & (cols != 12)
    z = np.where(fingers, z + 100.0, z)  # two 3-cell ridges, 10 dx above the gap
    free = ~fingers
    assert slot_count(z, dx) > 0
    out, lifted = lift_slots(z, free, dx)
    assert lifted > 0 and slot_count(out, dx) == 0
    np.testing.assert_array_equal(out[fingers], z[fingers])
    assert (out >= z - 1e-9).all()
    assert mean_depression_depth(out) < 1e-3
    # nothing to lift: unchanged
    same, k = lift_slots(np.add.outer(np.arange(n), np.arange(n)) * 1.0, np.ones((n, n), bool), dx)
    assert k == 0 and np.array_equal(same, np.add.outer(np.arange(n), np.arange(n)) * 1.0)
