import numpy as np
import pytest

from pixels2peaks.errors import InputError
from pixels2peaks.perception.depth_filter import lateral_bilateral


def test_lateral_filter_averages_column_wobble_and_keeps_an_occluding_contour():
    # each row: a near ridge (ln d = 0) on the left, a far one (ln d = ln 2) on the right, with
    # 2 % column-to-column wobble; the filter shrinks the wobble and keeps the 2x jump sharp
    rng = np.random.default_rng(0)
    h, w = 8, 200
    step = np.where(np.arange(w) < 100, 0.0, np.log(2.0))
    ld = step[None, :] + rng.normal(0, 0.02, (h, w))
    terrain = np.ones((h, w), bool)
    out = lateral_bilateral(ld, terrain, sigma_px=4.0, sigma_log=0.1)
    interior = (np.abs(np.arange(w) - 100) > 15)[None, :].repeat(h, 0)
    assert np.std((out - step)[interior]) < 0.4 * np.std((ld - step)[interior])
    # the contour stays within one column: the columns either side keep their own layer
    assert np.all(np.abs(out[:, 97] - 0.0) < 0.05) and np.all(np.abs(out[:, 102] - np.log(2.0)) < 0.05)


def test_lateral_filter_leaves_sky_alone_and_ignores_it():
    ld = np.zeros((2, 50))
    ld[:, 25:] = 5.0  # "sky" values on the right must neither change nor leak into the terrain
    terrain = np.zeros((2, 50), bool)
    terrain[:, :25] = True
    out = lateral_bilateral(ld, terrain, sigma_px=10.0, sigma_log=10.0)
    np.testing.assert_allclose(out[:, :25], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 25:], 5.0)


def test_lateral_filter_rejects_bad_widths():
    with pytest.raises(InputError, match="positive"):
        lateral_bilateral(np.zeros((2, 2)), np.ones((2, 2), bool), 0.0)
    with pytest.raises(InputError, match="alike"):
        lateral_bilateral(np.zeros((2, 2)), np.ones((3, 2), bool), 1.0)
