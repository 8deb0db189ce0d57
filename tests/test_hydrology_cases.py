"""Hydrology core on tiny hand-made grids with known answers, and input validation."""

import math

import numpy as np
import pytest
import torch

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology import (
    breach_depressions,
    default_epsilon,
    depression_depth,
    depression_fraction,
    fill_depressions,
    flow_receivers,
    hydrology_target,
    mean_depression_depth,
)
from pixels2peaks.terrain.hydrology.breach import breach_pointer_jumping
from pixels2peaks.terrain.hydrology.fill import fill_pointer_jumping
from pixels2peaks.terrain.hydrology.routing import topological_order

FILL_METHODS = ("routing", "priority_flood")
BREACH_METHODS = ("sequential", "pointer_jumping")


def _single_pit():
    """9 everywhere; pit 1 at the centre inside a rim whose lowest cell (4, east of the pit)
    touches the lowest border cell (3)."""
    z = np.full((5, 5), 9.0)
    z[1:4, 1:4] = [[6, 7, 8], [5, 1, 4], [7, 6, 8]]
    z[2, 4] = 3.0
    return z


def _idx(r, c, w=5):
    return r * w + c


@pytest.mark.parametrize("method", FILL_METHODS)
def test_single_pit_fill_to_lowest_rim(method):
    z = _single_pit()
    f = fill_depressions(z, method=method)
    expected = z.copy()
    expected[2, 2] = 4.0  # the lowest rim cell
    np.testing.assert_array_equal(f, expected)


def test_single_pit_receivers_and_routing():
    z = _single_pit()
    rec = flow_receivers(z)
    assert rec.dtype == np.int64 and rec.shape == (25,)
    # the pit drains over the pass (2,3) into the lowest border cell (2,4)
    assert rec[_idx(2, 2)] == _idx(2, 3)
    assert rec[_idx(2, 3)] == _idx(2, 4)
    # border cells are roots
    for r in range(5):
        for c in range(5):
            if r in (0, 4) or c in (0, 4):
                assert rec[_idx(r, c)] == _idx(r, c)
    # rim cells drain into the pit (steepest descent)
    assert rec[_idx(1, 1)] == _idx(2, 2)
    assert len(topological_order(rec)) == 25


@pytest.mark.parametrize("method", BREACH_METHODS)
def test_single_pit_breach_carves_towards_the_lowest_path(method):
    z = _single_pit()
    b = breach_depressions(z, method=method)
    expected = z.copy()
    expected[2, 3] = 1.0  # the pass cell and the outlet are cut down to the pit level
    expected[2, 4] = 1.0
    np.testing.assert_array_equal(b, expected)
    b = breach_depressions(z, 0.5, method=method)
    expected[2, 3] = 0.5
    expected[2, 4] = 0.0
    np.testing.assert_array_equal(b, expected)


def test_flat_grid():
    z = np.full((7, 7), 3.0)
    for m in FILL_METHODS:
        np.testing.assert_array_equal(fill_depressions(z, method=m), z)
    for m in BREACH_METHODS:
        np.testing.assert_array_equal(breach_depressions(z, method=m), z)
    # flat pits drain along shortest D8 paths to the border: depth = Chebyshev distance
    rr, cc = np.mgrid[0:7, 0:7]
    dist = np.minimum(np.minimum(rr, 6 - rr), np.minimum(cc, 6 - cc)).astype(float)
    eps = 0.125
    np.testing.assert_array_equal(fill_depressions(z, eps), z + eps * dist)
    np.testing.assert_array_equal(fill_depressions(z, eps, method="priority_flood"), z + eps * dist)
    b = breach_depressions(z, eps)
    assert np.all(b <= z) and b[3, 3] == 3.0  # the centre is a source
    assert mean_depression_depth(z) == 0.0 and depression_fraction(z) == 0.0


def _closed_basin():
    """A basin (bottom 2) walled by 8 with a single pass cell of height 5 in the west wall; the
    outside (1) drains to the border (0)."""
    z = np.full((9, 9), 1.0)
    z[0, :] = z[-1, :] = z[:, 0] = z[:, -1] = 0.0
    z[2:7, 2:7] = 8.0
    z[3:6, 3:6] = [[4, 3, 4], [3, 2, 3], [4, 3, 4]]
    z[4, 2] = 5.0  # the pass
    return z


@pytest.mark.parametrize("method", FILL_METHODS)
def test_closed_basin_fill_level_is_the_pass(method):
    z = _closed_basin()
    f = fill_depressions(z, method=method)
    expected = z.copy()
    expected[3:6, 3:6] = 5.0
    np.testing.assert_array_equal(f, expected)
    d = depression_depth(z)
    np.testing.assert_array_equal(d, expected - z)
    assert mean_depression_depth(z) == pytest.approx((expected - z).sum() / 81, rel=1e-15)
    assert depression_fraction(z) == pytest.approx(9 / 81)


@pytest.mark.parametrize("method", BREACH_METHODS)
def test_closed_basin_breach_goes_over_the_pass(method):
    z = _closed_basin()
    b = breach_depressions(z, method=method)
    # the pass (4,2) is cut down to the pit level 2, through one inner cell next to it; the
    # outside (already lower) and the walls are untouched
    assert b[4, 4] == 2.0 and b[4, 2] == 2.0
    changed = np.argwhere(b != z).tolist()
    assert len(changed) == 2 and [4, 2] in changed
    (r, c), = [rc for rc in changed if rc != [4, 2]]
    assert 3 <= r <= 5 and c == 3  # an inner cell adjacent to the pass
    np.testing.assert_array_equal(b[:, :2], z[:, :2])
    # with epsilon the path keeps descending over the pass to the border
    be = breach_depressions(z, 0.25, method=method)
    assert be[4, 4] == 2.0 and be[r, c] == 1.75 and be[4, 2] == 1.5


@pytest.mark.parametrize("method", FILL_METHODS)
def test_nodata_holes_act_as_outlets(method):
    z = np.full((7, 7), 9.0)
    z[3, 3] = 1.0  # a pit ...
    z[2, 3] = np.nan  # ... right next to a nodata hole: an outlet, not a depression
    z[5, 5] = 2.0  # a real pit away from the hole: fills to 9
    f = fill_depressions(z, method=method)
    assert np.isnan(f[2, 3])
    assert f[3, 3] == 1.0
    assert f[5, 5] == 9.0
    rec = flow_receivers(z)
    assert rec[3 * 7 + 3] == 3 * 7 + 3 and rec[2 * 7 + 3] == 2 * 7 + 3
    # an explicit valid mask is equivalent to NaN
    z2 = np.where(np.isnan(z), 123.0, z)
    valid = ~np.isnan(z)
    np.testing.assert_array_equal(fill_depressions(z2, valid=valid, method=method), f)
    d = depression_depth(z)
    assert np.isnan(d[2, 3]) and d[5, 5] == 7.0
    assert mean_depression_depth(z) == pytest.approx(7.0 / 48)


@pytest.mark.parametrize("method", BREACH_METHODS)
def test_nodata_stays_nan_in_breach(method):
    z = np.full((6, 6), 5.0)
    z[2, 2] = np.nan
    z[3, 4] = 1.0
    b = breach_depressions(z, 0.25, method=method)
    assert np.isnan(b[2, 2]) and np.isnan(b).sum() == 1
    assert np.all(b[~np.isnan(z)] <= z[~np.isnan(z)])


def test_pointer_jumping_kernels_on_a_chain():
    z = torch.tensor([0.0, 3.0, 1.0, 2.0])
    rec = torch.tensor([0, 0, 1, 2])
    assert breach_pointer_jumping(z, rec, 0.5).tolist() == [0.0, 0.5, 1.0, 2.0]
    assert fill_pointer_jumping(z, rec, 0.5).tolist() == [0.0, 3.0, 3.5, 4.0]
    # a long chain exercises many rounds: 0 <- 1 <- ... <- 999 (root 0), heights = index
    n = 1000
    zc = torch.arange(n, dtype=torch.float64)
    rc = torch.clamp(torch.arange(n) - 1, min=0)
    out = breach_pointer_jumping(zc, rc, 2.0)  # H(i) = min_u u - 2 (u - i) = 2 i - 999
    np.testing.assert_array_equal(out.numpy(), 2.0 * np.arange(n) - (n - 1))
    outf = fill_pointer_jumping(zc.flip(0), rc, 2.0)  # F(i) = max_u (999 - u) + 2 (i - u)
    np.testing.assert_array_equal(outf.numpy(), 999.0 + 2.0 * np.arange(n))
    with pytest.raises(InputError):
        breach_pointer_jumping(torch.zeros(3), torch.tensor([1, 2, 0]), 0.0)  # a cycle


def test_receivers_argument_and_cycles():
    z = _closed_basin()
    rec = flow_receivers(z)
    for m in BREACH_METHODS:
        np.testing.assert_array_equal(
            breach_depressions(z, 0.5, receivers=rec, method=m),
            breach_depressions(z, 0.5, method=m),
        )
    bad = np.arange(81)
    bad[10], bad[11] = 11, 10  # a 2-cycle
    with pytest.raises(InputError):
        breach_depressions(z, receivers=bad)
    with pytest.raises(InputError):
        breach_depressions(z, receivers=np.arange(80))
    with pytest.raises(InputError):
        breach_depressions(z, receivers=np.full(81, 81))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, 5)),
        np.zeros((1, 7)),
        np.zeros((7, 1)),
        np.zeros(5),
        np.array([[1.0, np.inf], [0.0, 1.0]]),
        np.full((3, 3), np.nan),
        np.array([["a", "b"], ["c", "d"]]),
    ],
)
def test_invalid_inputs_raise_input_error(bad):
    for f in (flow_receivers, fill_depressions, breach_depressions, mean_depression_depth):
        with pytest.raises(InputError):
            f(bad)


def test_invalid_parameters():
    z = _single_pit()
    with pytest.raises(InputError):
        fill_depressions(z, -1.0)
    with pytest.raises(InputError):
        breach_depressions(z, float("nan"))
    with pytest.raises(InputError):
        breach_depressions(z, "big")
    with pytest.raises(InputError):
        fill_depressions(z, method="magic")
    with pytest.raises(InputError):
        breach_depressions(z, method="magic")
    with pytest.raises(InputError):
        fill_depressions(z, valid=np.ones((4, 4), bool))
    with pytest.raises(InputError):
        hydrology_target(torch.zeros(1, 1, 4, 4), "carve", 0.0)
    with pytest.raises(InputError):
        hydrology_target(np.zeros((4, 4)), "fill", 0.0)


def test_dtypes_and_no_input_mutation():
    z = _closed_basin()
    z32 = z.astype(np.float32)
    keep = z32.copy()
    assert fill_depressions(z32).dtype == np.float32
    assert breach_depressions(z32, "auto").dtype == np.float32
    np.testing.assert_array_equal(z32, keep)
    zi = z.astype(np.int16)
    np.testing.assert_array_equal(fill_depressions(zi), fill_depressions(z))
    assert fill_depressions(zi).dtype == np.float32
    assert fill_depressions(z.astype(np.int64)).dtype == np.float64


def test_default_epsilon():
    assert default_epsilon(np.zeros((3, 3))) == 2.0**-21  # 4 float32 ulps of 1 m, not subnormal
    assert default_epsilon(np.array([[8848.0, 0.0]])) == 2.0**-8
    e = default_epsilon(np.array([[1000.0]]))
    assert np.float32(1000.0) - np.float32(e) < np.float32(1000.0)
    assert math.log2(e).is_integer()


def test_sea_flat_at_zero_gets_strict_descent_with_auto_epsilon():
    """GLOBE-like: a big sea at 0 next to land; auto epsilon keeps strict descent in float32."""
    z = np.zeros((40, 40), np.float32)
    z[:, 20:] = np.arange(1, 21, dtype=np.float32)[None, :] * 3
    z[10:15, 25:30] = 1.0  # a lake on land
    rec = flow_receivers(z)
    for m in BREACH_METHODS:
        b = breach_depressions(z, "auto", method=m)
        assert b.dtype == np.float32
        i = np.nonzero(rec != np.arange(rec.size))[0]
        assert np.all(b.ravel()[rec[i]] < b.ravel()[i])
    f = fill_depressions(z, "auto")
    i = np.nonzero(rec != np.arange(rec.size))[0]
    assert np.all(f.ravel()[i] > f.ravel()[rec[i]])


def test_hydrology_target_torch_cpu():
    z = torch.from_numpy(_closed_basin()).to(torch.float32)[None, None]
    z.requires_grad_(True)
    t_b = hydrology_target(z, "breach", 0.0)
    t_f = hydrology_target(z, "fill", 0.0)
    assert t_b.shape == z.shape and t_b.dtype == z.dtype and not t_b.requires_grad
    assert t_f[0, 0, 4, 4].item() == 5.0 and t_b[0, 0, 4, 2].item() == 2.0
    # batch of two
    zz = torch.cat([z.detach(), z.detach() + 1.0])
    tb = hydrology_target(zz, "breach", "auto")
    assert tb.shape == (2, 1, 9, 9)
    torch.testing.assert_close(tb[1] - 1.0, tb[0], rtol=0, atol=1e-5)
