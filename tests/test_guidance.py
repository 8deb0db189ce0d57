"""Consistency guidance (paper §5.2): loss terms, the Eq. 6 wrapper, and its effect on sampling."""

import math

import numpy as np
import pytest
import torch

from pixels2peaks.diffusion.guidance import (
    CompletionLoss,
    GeomorphGuidance,
    GuidanceConfig,
    HydrologyGuidance,
    ViewGuidance,
    Guided,
    geo_masks,
    geomorph_loss,
    guided,
    hydrology_loss,
    view_loss,
)
from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior
from pixels2peaks.diffusion.sampling import ModelDenoiser, noise_to, sample_ddim, walk_timesteps
from pixels2peaks.diffusion.tiling import SpotTiledDenoiser
from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology import breach_depressions
from tiny_diffusion import ABAR, TINY


pytestmark = pytest.mark.usefixtures("one_torch_thread")
N = 32



def _only(**terms) -> GuidanceConfig:
    """A guidance with only the given terms on (the others at weight 0)."""
    off = {"hydrology": HydrologyGuidance(weight=0.0), "geomorph": GeomorphGuidance(weight=0.0),
           "view": ViewGuidance(weight=0.0)}
    return GuidanceConfig(**(off | terms))


def _bowl(n=N):
    yy, xx = np.mgrid[0:n, 0:n]
    r = np.hypot(yy - n / 2, xx - n / 2) / n
    return torch.from_numpy((3.0 * r**2 + 0.3 * xx / n).astype(np.float32))[None, None]


# ---------------------------------------------------------------------------------------------
# loss terms
# ---------------------------------------------------------------------------------------------
def test_hydrology_loss_zero_without_depressions_and_positive_with_pit():
    bowl = _bowl()
    assert float(hydrology_loss(bowl, factor=2)) > 1e-4
    from pixels2peaks.terrain.attributes import downsample_smooth

    d = downsample_smooth(bowl, 2)
    drained = torch.as_tensor(breach_depressions(d[0, 0].numpy().astype(np.float64), 0.0)).float()[None, None]
    assert float(hydrology_loss(drained, factor=1, epsilon=0.0)) < 1e-12
    for method in ("breach", "fill"):
        x = bowl.clone().requires_grad_(True)
        loss = hydrology_loss(x, factor=2, method=method)
        (g,) = torch.autograd.grad(loss, x)
        assert float(hydrology_loss(bowl - 50.0 * g, factor=2, method=method)) < float(loss.detach())


def test_geomorph_loss_matches_statistics():
    g = torch.Generator().manual_seed(0)
    rough = torch.randn(1, 1, N, N, generator=g)
    known = torch.zeros(1, 1, N, N)
    known[..., : N // 2] = 1
    smooth_unknown = torch.where(known > 0, rough, 0.05 * rough)
    l_bad = geomorph_loss(smooth_unknown, known, factor=2)
    assert float(l_bad) > 1e-3
    assert float(geomorph_loss(rough, known, factor=2)) < 0.2 * float(l_bad)
    x = smooth_unknown.clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(geomorph_loss(x, known, factor=2), x)
    # stop-gradient on the known statistics: known cells away from the seam get ~none
    assert float(gr[..., : N // 2 - 8].abs().max()) < 1e-3 * float(gr[known == 0].abs().max())
    with pytest.raises(InputError):
        geomorph_loss(rough, known, curvature="nope")


def test_geo_masks_binary_keeps_pure_cells_only():
    """Binary M_sigma: coarse cells whose 3 x 3 stencil has a fully known (unknown) Gaussian +
    block support, outer ring excluded; oracle: scipy's Gaussian filter (same radius 3 sigma, edge
    replication), a numpy block mean and scipy's binary erosion."""
    from scipy.ndimage import binary_erosion, gaussian_filter

    rng = np.random.default_rng(0)
    m = np.zeros((N, N), np.float32)
    m[:, : N // 2] = 1
    flip = rng.random((N, N)) < 0.02  # a few isolated flips
    m[flip] = 1 - m[flip]
    m[3, 20] = 1
    for f in (1, 2, 4):
        blur = gaussian_filter(m.astype(np.float64), f / 2, mode="nearest", truncate=3.0) if f > 1 else m
        frac = blur.reshape(N // f, f, N // f, f).mean(axis=(1, 3))
        ring = np.zeros_like(frac, bool)
        ring[1:-1, 1:-1] = True
        k, u = (w[0, 0].numpy() for w in geo_masks(torch.from_numpy(m)[None, None], f))
        er = dict(structure=np.ones((3, 3), bool), border_value=1)
        np.testing.assert_array_equal(k > 0, binary_erosion(frac >= 1 - 1e-3, **er) & ring)
        np.testing.assert_array_equal(u > 0, binary_erosion(frac <= 1e-3, **er) & ring)
        assert not (k * u).any() and (f == 4 or (k.sum() > 0 and u.sum() > 0))  # 2 % flips spoil f = 4
        ks, us = geo_masks(torch.from_numpy(m)[None, None], f, "soft")
        torch.testing.assert_close(ks + us, torch.ones_like(ks))
    with pytest.raises(InputError):
        geo_masks(torch.from_numpy(m)[None, None], 2, "nope")


def test_geomorph_loss_binary_mask_ignores_the_seam():
    """Lifting the unknown side by a cliff changes only the seam: the binary-mask loss does not
    change at all, the soft mask counts the cliff's slopes in its expectations. In float64: in
    float32 adding the cliff rounds each height by up to ~1e-6, and the (CPU-dependent) summation
    order decides how much of that reaches the loss."""
    field = torch.randn(1, 1, N, N, generator=torch.Generator().manual_seed(1)).double()
    known = torch.zeros(1, 1, N, N, dtype=torch.float64)
    known[..., : N // 2] = 1
    cliff = field + 20.0 * (1 - known)
    kw = dict(factor=2, lambda_s=1.0, lambda_c=1.0)
    binary = [float(geomorph_loss(z, known, **kw)) for z in (field, cliff)]
    soft = [float(geomorph_loss(z, known, mask="soft", **kw)) for z in (field, cliff)]
    assert binary[0] > 1e-6 and binary[1] == pytest.approx(binary[0], rel=1e-9, abs=0)
    assert abs(soft[1] - soft[0]) > 10 * abs(binary[1] - binary[0]) + 1e-3 * soft[0]
    # a region without any pure cell: nothing to compare, zero loss (and a zero gradient)
    x = cliff.clone().requires_grad_(True)
    stripes = torch.zeros(1, 1, N, N)
    stripes[..., ::2, :] = 1
    loss = geomorph_loss(x, stripes, factor=2)
    (g,) = torch.autograd.grad(loss, x)
    assert float(loss.detach()) == 0.0 and float(g.abs().max()) == 0.0


def test_completion_loss_geo_statistics_at_their_own_scales():
    rough = torch.randn(1, 1, N, N, generator=torch.Generator().manual_seed(2))
    known = torch.zeros(1, 1, N, N)
    known[..., : N // 2] = 1
    x = torch.where(known > 0, rough, 0.2 * rough)
    geo = GeomorphGuidance(weight=1.0, lambda_s=2.0, lambda_c=3.0, slope_factor=4, curvature_factor=2)
    w = _only(geomorph=geo)
    t = CompletionLoss(known, w).terms(x)
    torch.testing.assert_close(t["geo_slope"], geomorph_loss(x, known, factor=4, lambda_s=2.0, lambda_c=0.0))
    torch.testing.assert_close(t["geo_curv"], geomorph_loss(x, known, factor=2, lambda_s=0.0, lambda_c=3.0))
    torch.testing.assert_close(t["geo"], t["geo_slope"] + t["geo_curv"])
    same = CompletionLoss(known, _only(geomorph=GeomorphGuidance(weight=1.0, lambda_s=2.0, lambda_c=3.0, slope_factor=2,
                                                                   curvature_factor=2))).terms(x)
    torch.testing.assert_close(same["geo"], geomorph_loss(x, known, factor=2, lambda_s=2.0, lambda_c=3.0))


@pytest.mark.parametrize("w", [_only(hydrology=HydrologyGuidance(weight=5)), _only(geomorph=GeomorphGuidance(weight=3)),
                               _only(view=ViewGuidance(weight=5))])
def test_guidance_is_equivariant_under_height_scaling(w):
    """Every term is 2-homogeneous in the heights, so grad L(k x) = k grad L(x): the guided x0 step
    scales with the heights and the weights mean the same in any normalized units (e.g. the per-dx
    height scale s(dx) of prior v2 needs no gain)."""
    z = torch.from_numpy(np.cumsum(np.random.default_rng(3).normal(size=(N, N)), axis=1).astype(np.float32))[None, None]
    known = torch.zeros(N, N)
    known[:, : N // 2] = 1
    zmax = torch.where(known > 0, z[0, 0], z[0, 0].mean())
    grads = []
    for k in (1.0, 4.0):
        x = (k * z).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(CompletionLoss(known, w, z_max=k * zmax)(x), x)
        grads.append(g)
    assert float(grads[0].abs().max()) > 0
    torch.testing.assert_close(grads[1], 4.0 * grads[0], rtol=1e-4, atol=1e-6 * float(grads[0].abs().max()))


def test_view_loss_only_penalises_occluded_cells_above_bound():
    x = torch.zeros(1, 1, 4, 4)
    x[..., 0, 0] = 3.0  # known cell above the bound: ignored
    x[..., 3, 3] = 2.0  # occluded cell 2 above its bound
    known = torch.zeros(1, 1, 4, 4)
    known[..., 0, 0] = 1
    zmax = torch.zeros(1, 1, 4, 4)
    zmax[..., 1, 1] = float("inf")
    zmax[..., 2, 2] = float("nan")
    assert float(view_loss(x, zmax, known)) == pytest.approx(4.0 / 15)
    assert float(view_loss(x - 10, zmax, known)) == 0.0


def test_guidance_config_validation():
    assert GuidanceConfig().active and len(GuidanceConfig().terms) == 3
    assert not GuidanceConfig(scale=0.0).active
    assert not GuidanceConfig().without("hydrology", "geomorph", "view").active
    assert [t.name for t in GuidanceConfig().without("geomorph").terms] == ["hyd", "view"]
    # a saved config comes back as the same objects
    from dataclasses import asdict

    g = GuidanceConfig(gradient_mode="unet", hydrology=HydrologyGuidance(method="fill"))
    assert GuidanceConfig(**asdict(g)) == g
    for bad in (lambda: HydrologyGuidance(weight=-1), lambda: ViewGuidance(weight=float("nan")),
                lambda: HydrologyGuidance(method="x"), lambda: GeomorphGuidance(curvature="x"),
                lambda: GeomorphGuidance(mask="x"), lambda: GeomorphGuidance(slope_factor=0),
                lambda: GeomorphGuidance(curvature_factor=2.5), lambda: GuidanceConfig(gradient_mode="x"),
                lambda: GuidanceConfig(hydrology=3)):
        with pytest.raises(InputError):
            bad()


def test_completion_loss_weights_are_per_cell():
    """Doubling the map size does not change the per-cell gradient of the hydrological term."""
    def grad_at_pit(n):
        x = torch.from_numpy(np.tile(_bowl(32)[0, 0].numpy(), (n // 32, n // 32)))[None, None]
        loss = CompletionLoss(torch.zeros(n, n), _only(hydrology=HydrologyGuidance(weight=1.0, factor=2)))
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(xx), xx)
        return g[0, 0, :32, :32]

    g32, g64 = grad_at_pit(32), grad_at_pit(64)
    assert float(g32.abs().max()) > 0
    assert float((g32 - g64).abs().max()) < 0.35 * float(g32.abs().max())  # borders differ, scale does not


# ---------------------------------------------------------------------------------------------
# the Eq. 6 wrapper
# ---------------------------------------------------------------------------------------------
class Scaled:
    """Toy denoiser x0 = x_t / sqrt(abar) (eps = 0): d x0 / d x_t = 1 / sqrt(abar) exactly, so
    both gradient modes must agree."""

    alphas_cumprod = ABAR

    def __call__(self, x, t):
        a = float(ABAR[t])
        return torch.zeros_like(x), x / math.sqrt(a)


@pytest.mark.parametrize("mode", ["x0", "unet"])
def test_guided_lowers_loss_and_stays_consistent(mode):
    c = torch.full((1, 1, 8, 8), 2.0)

    def loss(x0):
        return ((x0 - c) ** 2).sum()

    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = 400
    a = float(ABAR[t])
    eps0, x00 = Scaled()(x, t)
    eps, x0 = guided(Scaled(), loss, scale=0.1, mode=mode)(x, t)
    assert float(loss(x0)) < float(loss(x00))
    torch.testing.assert_close(math.sqrt(a) * x0 + math.sqrt(1 - a) * eps, x, atol=1e-5, rtol=0)


def test_gradient_modes_agree_on_linear_denoiser():
    def loss(x0):
        return (x0**3).sum()

    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a = guided(Scaled(), loss, 0.5, "x0")(x, 300)
    b = guided(Scaled(), loss, 0.5, "unet")(x, 300)
    torch.testing.assert_close(a[0], b[0], atol=1e-4, rtol=1e-4)


def test_guided_rejects_bad_mode_and_caps_high_noise():
    with pytest.raises(InputError):
        Guided(Scaled(), lambda x: x.sum(), mode="nope")
    x = torch.ones(1, 1, 4, 4)
    g = guided(Scaled(), lambda x0: (x0**2).sum(), 1.0, "x0", kappa_max=2.0)
    eps, x0 = g(x, 999)  # abar ~ 0: the step is capped, nothing explodes
    assert torch.isfinite(eps).all() and torch.isfinite(x0).all()


# ---------------------------------------------------------------------------------------------
# each guidance term lowers its own loss in a short guided walk (tiny random prior)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TerrainPrior(PriorConfig(**TINY)).eval()


def _walk(model, loss_fn, scale, x0_init, seed=0, steps=5, mode="x0"):
    tiled = SpotTiledDenoiser(ModelDenoiser(model, 60.0), 16, seed=seed, min_edge_cells=8)
    den = guided(tiled, loss_fn, scale, mode) if scale > 0 else tiled
    g = torch.Generator().manual_seed(seed)
    ts = walk_timesteps(1000, 0.5, steps)
    x = noise_to(x0_init, ts[0], ABAR, g)
    return sample_ddim(den, x, ts, generator=g)


def _case(term):
    known = torch.zeros(1, 1, N, N)
    known[..., : N // 2] = 1
    g = torch.Generator().manual_seed(1)
    if term == "hyd":
        return _bowl() * 3, known, None, _only(hydrology=HydrologyGuidance(weight=2.0, factor=2))
    if term == "geo":
        z = torch.where(known > 0, 2.0 * torch.randn(1, 1, N, N, generator=g), torch.zeros(1, 1, N, N))
        return z, known, None, _only(geomorph=GeomorphGuidance(weight=3.0, slope_factor=2, curvature_factor=2))
    z = torch.zeros(1, 1, N, N)
    zmax = torch.full((1, 1, N, N), -1.0)
    return z, known, zmax, _only(view=ViewGuidance(weight=1.0))


@pytest.mark.parametrize("term", ["hyd", "geo", "view"])
@pytest.mark.parametrize("mode", ["x0", "unet"])
def test_each_term_lowers_its_loss(tiny, term, mode):
    z, known, zmax, w = _case(term)
    loss = CompletionLoss(known, w, z_max=zmax)
    free = _walk(tiny, loss, 0.0, z)
    guided_out = _walk(tiny, loss, 1.0, z, mode=mode)
    l_free = float(loss.terms(free)[term])
    l_guided = float(loss.terms(guided_out)[term])
    assert l_guided < 0.8 * l_free, (term, mode, l_free, l_guided)
