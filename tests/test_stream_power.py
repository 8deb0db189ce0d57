"""Stream-power incision (Braun & Willett 2013): closed forms, a linear-system oracle, steady state."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pixels2peaks.errors import InputError
from pixels2peaks.evaluation.drainage import concavity, drainage_samples
from pixels2peaks.evaluation.fractal import fbm
from pixels2peaks.terrain.hydrology.accumulation import drainage_area_cells, flow_network
from pixels2peaks.terrain.hydrology.stream_power import stream_power_erode


def valley(values) -> np.ndarray:
    """A 3-row grid whose middle row holds ``values`` between high walls (all borders are outlets)."""
    z = np.full((3, len(values)), 100.0)
    z[1] = values
    return z


def test_single_valley_closed_form():
    # middle row 0,1,2,3,4 drains west; areas 3, 2, 1 on the interior cells; F = k A^m
    k, m = 0.5, 0.5
    out = stream_power_erode(valley([0.0, 1.0, 2.0, 3.0, 4.0]), k, m)
    h, expect = 0.0, [0.0]
    for z_old, a in zip((1.0, 2.0, 3.0), (3.0, 2.0, 1.0)):
        f = k * a**m
        h = (z_old + f * h) / (1 + f)
        expect.append(h)
    assert out[1, :4] == pytest.approx(expect, rel=1e-12)
    assert out[1, 4] == 4.0 and (out[[0, 2]] == 100.0).all()  # outlets keep their height


def test_matches_the_implicit_linear_system():
    """Oracle: the implicit step is the linear system (1 + F_i) h_i - F_i h_rec(i) = z_i,
    solved here with a sparse direct solver instead of the outlets-first sweep."""
    z = 300.0 * fbm((40, 56), 3.0, np.random.default_rng(4))
    k, m = 0.7, 0.45
    _, rec = flow_network(z)
    a = drainage_area_cells(rec)
    n, W = z.size, z.shape[1]
    idx = np.arange(n)
    inner = rec != idx
    diag = (idx // W != rec // W) & (idx % W != rec % W)
    f = np.where(inner, k * a**m / np.where(diag, np.sqrt(2.0), 1.0), 0.0)
    A = sp.csr_matrix((np.concatenate([1 + f, -f[inner]]),
                       (np.concatenate([idx, idx[inner]]), np.concatenate([idx, rec[inner]]))), shape=(n, n))
    ref = spla.spsolve(A, z.ravel()).reshape(z.shape)
    np.testing.assert_allclose(stream_power_erode(z, k, m), ref, rtol=0, atol=1e-9 * np.ptp(z))


def test_linear_in_heights_and_identity_at_zero_k():
    z = 50.0 * fbm((32, 32), 2.8, np.random.default_rng(1))
    e = stream_power_erode(z, 0.3)
    np.testing.assert_allclose(stream_power_erode(3.0 * z + 1200.0, 0.3), 3.0 * e + 1200.0, atol=1e-9 * 3 * np.ptp(z))
    assert np.array_equal(stream_power_erode(z, 0.0), z)
    assert (e <= z + 1e-12).sum() > 0.9 * z.size  # incision lowers (only pit cells can rise)


def test_steady_state_obeys_flints_law_exactly():
    """Uplift u per step + incision: at steady state F_i (h_i - h_rec) = u, i.e. the channel slope
    (per cell) is S = (u / k) A^-m on every non-outlet cell: theta = m (Whipple & Tucker 1999)."""
    k, m, u = 1.0, 0.5, 1.0
    z = fbm((24, 24), 3.0, np.random.default_rng(2))
    interior = np.zeros(z.shape, bool)
    interior[1:-1, 1:-1] = True
    z[~interior] = 0.0
    for _ in range(400):
        z = stream_power_erode(z + u * interior, k, m)
    _, rec = flow_network(z)
    a = drainage_area_cells(rec)
    idx = np.arange(z.size)
    W = z.shape[1]
    diag = (idx // W != rec // W) & (idx % W != rec % W)
    length = np.where(diag, np.sqrt(2.0), 1.0)
    s = (z.ravel() - z.ravel()[rec]) / length
    inner = interior.ravel()
    np.testing.assert_allclose(s[inner] * a[inner] ** m, u / k, rtol=1e-6)


def test_erosion_gives_fbm_the_concavity_of_rivers():
    """fBm has no slope-area organisation (theta ~ 0); a few incision steps give it theta ~ m."""
    rng = np.random.default_rng(7)
    tiles = [500.0 * fbm((96, 96), 3.0, rng) for _ in range(3)]

    def theta(ts):
        d = [drainage_samples(t, 100.0) for t in ts]
        return concavity(np.concatenate([x.channel_area_cells for x in d]), np.concatenate([x.channel_slope for x in d]))

    eroded = tiles
    for _ in range(3):
        eroded = [stream_power_erode(t, 1.0) for t in eroded]
    assert abs(theta(tiles)) < 0.2 and theta(eroded) > 0.35


@pytest.mark.parametrize("k, m", [(-0.1, 0.45), (float("nan"), 0.45), (0.3, -1.0), (float("inf"), 0.5)])
def test_bad_parameters(k, m):
    with pytest.raises(InputError, match="stream-power"):
        stream_power_erode(np.zeros((4, 4)), k, m)


@pytest.mark.parametrize("k", [0.0, 0.3])
def test_non_finite_or_non_2d_heights_are_refused_at_any_k(k):
    z = np.zeros((4, 4))
    z[1, 2] = np.nan
    for bad in (z, np.zeros(5)):
        with pytest.raises(InputError, match="finite \\(H, W\\) heightmap"):
            stream_power_erode(bad, k)


def test_polish_applies_the_incision_before_each_projection():
    from pixels2peaks.diffusion.polishing import PolishConfig, coarse_projection, polish
    from pixels2peaks.terrain.hydrology import default_epsilon

    z = 200.0 * fbm((32, 32), 3.0, np.random.default_rng(3))
    inf = np.full(z.shape, np.inf)
    seen = []
    out = polish(z, inf, lambda x, t: seen.append(x.copy()) or x, (0.05,), breach_factor=2, erosion_k=0.4)
    expect = coarse_projection(stream_power_erode(z, 0.4), 2, epsilon=default_epsilon(z))
    np.testing.assert_allclose(seen[0], expect, rtol=0, atol=1e-12)
    assert np.array_equal(out, seen[0])
    plain = polish(z, inf, lambda x, t: x, (0.05,), breach_factor=2)
    assert not np.allclose(plain, out)
    with pytest.raises(InputError, match="erosion_k"):
        PolishConfig(erosion_k=-0.1)


def test_fixed_cells_keep_their_height_and_anchor_their_donors():
    # the valley's third cell is fixed: it keeps 2.0, the cell above it incises towards 2.0
    fixed = np.zeros((3, 5), bool)
    fixed[1, 2] = True
    out = stream_power_erode(valley([0.0, 1.0, 2.0, 3.0, 4.0]), 1.0, 0.0, fixed=fixed)
    assert out[1, :4].tolist() == [0.0, 0.5, 2.0, 2.5]
    z = 80.0 * fbm((24, 24), 3.0, np.random.default_rng(5))
    mask = np.random.default_rng(6).random(z.shape) < 0.3
    e = stream_power_erode(z, 0.5, fixed=mask)
    assert np.array_equal(e[mask], z[mask]) and not np.allclose(e[~mask], z[~mask])
    with pytest.raises(InputError, match="fixed mask shape"):
        stream_power_erode(z, 0.5, fixed=mask[:, :-1])
