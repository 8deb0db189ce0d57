"""Geomorphons (Jasiewicz & Stepinski 2013) on hand-made grids with known landforms."""

import numpy as np
import pytest

from pixels2peaks.errors import InputError
from pixels2peaks.evaluation.geomorphons import FORMS, form_histogram, geomorphons, histogram_distance

N = 31
YY, XX = np.mgrid[0:N, 0:N].astype(float)
R = np.hypot(YY - 15, XX - 15)


@pytest.mark.parametrize("name,z", [
    ("peak", 500.0 - 10.0 * R),
    ("pit", 10.0 * R),
    ("ridge", 500.0 - 10.0 * np.abs(XX - 15)),
    ("valley", 10.0 * np.abs(XX - 15)),
    ("flat", np.full((N, N), 42.0)),
    ("slope", 5.0 * XX + 2.0 * YY),
])
def test_landforms_of_hand_made_grids(name, z):
    g = geomorphons(z, 10.0, radius_cells=8)
    assert FORMS[g[15, 15]] == name


def test_flatness_threshold():
    z = 0.05 * XX  # 0.05 m per 10 m cell: 0.3 deg, below the default 1 deg threshold
    assert FORMS[geomorphons(z, 10.0)[15, 15]] == "flat"
    assert FORMS[geomorphons(z, 10.0, flat_deg=0.1)[15, 15]] == "slope"


def test_histogram_and_distance():
    g = geomorphons(500.0 - 10.0 * np.abs(XX - 15), 10.0)
    h = form_histogram(g)
    assert h.shape == (10,) and h.sum() == pytest.approx(1.0)
    assert h[FORMS.index("ridge")] > 0 and h[FORMS.index("slope")] > 0.5
    assert histogram_distance(h, h) == 0.0
    assert histogram_distance(np.eye(10)[0], np.eye(10)[1]) == 1.0


def test_geomorphons_bad_input():
    with pytest.raises(InputError):
        geomorphons(np.zeros((2, 9)), 10.0)
    with pytest.raises(InputError):
        geomorphons(np.full((9, 9), np.nan), 10.0)
