"""Property tests (hypothesis) of the hydrology core on random and fractal DEMs (<= 48^2)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from pixels2peaks.terrain.hydrology.fill import fill_pointer_jumping
from pixels2peaks.terrain.hydrology.routing import topological_order

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def fractal_dem(h, w, beta, seed, relief=500.0):
    """Spectral synthesis: Gaussian noise with power spectrum ~ k^-beta (beta ~ 2..3.5 gives
    terrain-like fractional Brownian surfaces), scaled to [0, relief] metres."""
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    spec = k ** (-beta / 2.0) * (rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape))
    spec[0, 0] = 0.0
    z = np.fft.irfft2(spec, s=(h, w))
    z -= z.min()
    return z * (relief / max(z.max(), 1e-12))


@st.composite
def dems(draw, allow_nodata=True):
    h = draw(st.integers(2, 48))
    w = draw(st.integers(2, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["fractal", "fractal_int", "random", "random_int"]))
    rng = np.random.default_rng(seed)
    if kind.startswith("fractal"):
        z = fractal_dem(h, w, draw(st.floats(1.5, 3.5)), seed)
    else:
        z = rng.random((h, w)) * 100.0
    if kind.endswith("_int"):  # integer heights: many flats and ties
        z = np.round(z / draw(st.sampled_from([1.0, 10.0, 50.0])))
    if allow_nodata and draw(st.booleans()):
        z[rng.random((h, w)) < draw(st.floats(0.0, 0.3))] = np.nan
        if np.isnan(z).all():
            z[0, 0] = 1.0
    return z


def _outlets(z):
    h, w = z.shape
    nan = np.isnan(z)
    out = np.zeros((h, w), bool)
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = True
    p = np.pad(nan, 1)
    near = np.zeros_like(nan)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            near |= p[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
    return out | near  # includes nodata cells themselves


@SETTINGS
@given(dems())
def test_receivers_form_a_forest_rooted_at_the_outlets(z):
    h, w = z.shape
    rec = flow_receivers(z)
    n = h * w
    idx = np.arange(n)
    assert rec.dtype == np.int64 and rec.shape == (n,)
    assert len(topological_order(rec)) == n  # no cycle: every chain reaches a root
    roots = rec == idx
    np.testing.assert_array_equal(roots, _outlets(z).ravel())
    # every non-root points to an 8-neighbour that is valid
    i = idx[~roots]
    dr = np.abs(rec[i] // w - i // w)
    dc = np.abs(rec[i] % w - i % w)
    assert np.all((dr <= 1) & (dc <= 1) & (dr + dc > 0))
    assert not np.isnan(z.ravel()[rec[i]]).any()


@SETTINGS
@given(dems(), st.sampled_from([0.0, 0.25, 1.0 / 64, 0.1, "auto"]))
def test_breach_sequential_equals_pointer_jumping(z, eps):
    b_seq = breach_depressions(z, eps)
    b_pj = breach_depressions(z, eps, method="pointer_jumping")
    integer = np.all(np.isnan(z) | (z == np.round(z)))
    if eps == 0.0 or (eps in (0.25, 1.0 / 64) and integer):
        np.testing.assert_array_equal(b_seq, b_pj)  # exact: no rounding anywhere
    else:
        np.testing.assert_allclose(b_seq, b_pj, rtol=1e-9, atol=1e-9)
    valid = ~np.isnan(z)
    np.testing.assert_array_equal(np.isnan(b_seq), ~valid)
    assert np.all(b_seq[valid] <= z[valid])


@SETTINGS
@given(dems(), st.sampled_from([0.25, 1e-3, "auto"]))
def test_breached_heights_strictly_descend_along_receivers(z, eps):
    b = breach_depressions(z, eps).ravel()
    rec = flow_receivers(z)
    i = np.nonzero(rec != np.arange(rec.size))[0]
    assert np.all(b[rec[i]] < b[i])
    # the breached surface is depression-free
    np.testing.assert_array_equal(fill_depressions(b.reshape(z.shape)), b.reshape(z.shape))


@SETTINGS
@given(dems())
def test_fill_methods_agree_exactly(z):
    f_r = fill_depressions(z)
    f_pf = fill_depressions(z, method="priority_flood")
    np.testing.assert_array_equal(f_r, f_pf)
    valid = ~np.isnan(z)
    assert np.all(f_r[valid] >= z[valid])
    np.testing.assert_array_equal(fill_depressions(f_r), f_r)  # idempotent
    # the max-propagation by pointer jumping (torch) gives the same exact fill
    rec = flow_receivers(z)
    f_pj = fill_pointer_jumping(torch.from_numpy(z.ravel()), torch.from_numpy(rec), 0.0)
    np.testing.assert_array_equal(f_pj.numpy().reshape(z.shape), f_r)
    # depth statistics
    d = depression_depth(z)
    np.testing.assert_array_equal(d[valid], (f_r - z)[valid])
    mdd = np.mean((f_r - z)[valid])
    assert mean_depression_depth(z) == pytest.approx(mdd, rel=1e-12, abs=1e-12)
    assert depression_fraction(z) == pytest.approx(np.mean((f_r - z)[valid] > 0))


@SETTINGS
@given(dems(allow_nodata=False))
def test_fill_equals_richdem(z):
    rd = pytest.importorskip("richdem")
    # (richdem2 2.4.3 FillDepressions treats no_data cells as ordinary heights, so the
    # comparison is on grids without nodata; see test_fill_with_nodata_equals_topotoolbox)
    import contextlib
    import io

    a = rd.rdarray(z.copy(), no_data=-1e30)
    a.geotransform = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    with contextlib.redirect_stdout(io.StringIO()):
        f_rd = np.asarray(rd.FillDepressions(a, in_place=False))
    np.testing.assert_array_equal(fill_depressions(z), f_rd)


@SETTINGS
@given(dems())
def test_fill_with_nodata_equals_topotoolbox(z):
    tt = pytest.importorskip("topotoolbox")
    g = tt.GridObject()
    g.z = z.astype(np.float32)
    g.cellsize = 1.0
    f_tt = g.fillsinks(hybrid=True).z
    np.testing.assert_array_equal(fill_depressions(z.astype(np.float32)), f_tt)


@SETTINGS
@given(dems(), st.sampled_from([0.25, 0.1, "auto"]))
def test_epsilon_fill_gives_strict_descent(z, eps):
    valid = ~np.isnan(z)
    rec = flow_receivers(z)
    i = np.nonzero(rec != np.arange(rec.size))[0]
    f = fill_depressions(z, eps).ravel()
    assert np.all(f[i] > f[rec[i]])
    assert np.all(f.reshape(z.shape)[valid] >= z[valid])
    e = default_epsilon(z) if eps == "auto" else eps
    f_pj = fill_pointer_jumping(torch.from_numpy(z.ravel()), torch.from_numpy(rec), e)
    np.testing.assert_allclose(f_pj.numpy(), f, rtol=1e-9, atol=1e-9, equal_nan=True)
    # Priority-Flood + epsilon: every non-outlet valid cell has a strictly lower neighbour
    fp = fill_depressions(z, eps, method="priority_flood")
    assert np.all(fp[valid] >= z[valid])
    h, w = z.shape
    pad = np.pad(fp, 1, constant_values=np.inf)
    low = np.full(z.shape, np.inf)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                nb = pad[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
                low = np.fmin(low, nb)
    inner = valid & ~_outlets(z)
    assert np.all(low[inner] < fp[inner])


@settings(max_examples=15, deadline=None)
@given(dems(), st.sampled_from(["breach", "fill"]))
def test_hydrology_target_torch_cpu_matches_numpy(z, method):
    zt = torch.from_numpy(z)[None, None]
    t = hydrology_target(zt, method, 0.0)
    assert t.shape == zt.shape and t.device == zt.device and t.dtype == zt.dtype
    ref = breach_depressions(z) if method == "breach" else fill_depressions(z)
    np.testing.assert_array_equal(t[0, 0].numpy(), ref)
    # the pointer-jumping torch paths on the CPU device give the same result
    b_pj = breach_depressions(torch.from_numpy(z), 0.0, method="pointer_jumping")
    np.testing.assert_array_equal(b_pj.numpy(), breach_depressions(z))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_pointer_jumping_on_cuda():
    z = fractal_dem(48, 40, 2.5, 7)
    z = np.round(z)
    zt = torch.from_numpy(z).cuda()
    for eps in (0.0, 0.25):
        b = breach_depressions(zt, eps, method="pointer_jumping")
        assert b.device.type == "cuda"
        np.testing.assert_array_equal(b.cpu().numpy(), breach_depressions(z, eps))
        f = fill_depressions(zt, eps)
        assert f.device.type == "cuda"
        np.testing.assert_array_equal(f.cpu().numpy(), fill_depressions(z, eps))
    t = hydrology_target(zt[None, None].float(), "breach", "auto")
    assert t.device.type == "cuda" and t.dtype == torch.float32
