"""Slots and seams (evaluation.artifacts) on hand-made grids with known answers."""

import numpy as np
import pytest

from pixels2peaks.errors import InputError
from pixels2peaks.evaluation.artifacts import seam_ratio, slot_count, slot_mask
from pixels2peaks.terrain.noise import fbm


def test_slot_on_a_ramp():
    z = np.add.outer(np.arange(40.0), np.arange(40.0)) * 10.0  # a 45 deg-ish ramp, dx 10 m
    assert slot_count(z, 10.0) == 0  # a plane has none (its median is the cell itself)
    z[20, 10:30] -= 80.0  # a 1-cell trench 80 m deep (5 dx below its 5 x 5 median + 3 dx)
    z[5, 5] -= 40.0  # a 4 dx pit: not a slot
    m = slot_mask(z, 10.0)
    assert m.sum() == 20 and m[20, 10:30].all()


def test_seams_at_a_fixed_pitch():
    rng = np.random.default_rng(0)
    z = 100.0 * fbm((256, 256), 3.0, rng)  # rough, seamless
    base = seam_ratio(z, 32)
    assert base < 1.2
    seamed = z.copy()
    step = 3.0 * float(np.abs(np.diff(z, 2, axis=1)).mean())
    for c in range(13, 256, 32):  # a small height step at every tile cut, offset 13
        seamed[:, c:] += step
    assert seam_ratio(seamed, 32) > 2.0
    assert seam_ratio(seamed, 32) > seam_ratio(seamed, 30)  # the wrong pitch blurs it
    # rows and columns alike
    assert seam_ratio(seamed.T, 32) == pytest.approx(seam_ratio(seamed, 32))


def test_seam_bad_input():
    with pytest.raises(InputError):
        seam_ratio(np.zeros((40, 40)), 32)
    with pytest.raises(InputError):
        slot_count(np.zeros(5), 1.0)
