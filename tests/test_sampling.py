"""DDIM sampler, RePaint hook, model denoiser, profiler (paper §5.1)."""

import numpy as np
import pytest
import torch

from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, predict_eps_x0
from pixels2peaks.diffusion.sampling import (
    ModelDenoiser,
    Profiler,
    RePaint,
    chain_hooks,
    noise_to,
    sample_ddim,
    timestep_of,
    logsnr_timesteps,
    walk_timesteps,
)
from pixels2peaks.errors import InputError
from tiny_diffusion import ABAR, TINY


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Oracle:
    """Denoiser that knows the clean sample: x0 = target, eps consistent with x_t."""

    alphas_cumprod = ABAR

    def __init__(self, target):
        self.target = target
        self.seen = []

    def __call__(self, x_t, t):
        a = float(ABAR[t])
        self.seen.append((t, x_t.clone()))
        eps = (x_t - a**0.5 * self.target) / (1 - a) ** 0.5
        return eps, self.target.expand_as(x_t)


def test_walk_timesteps():
    ts = walk_timesteps(1000, 0.5, 10)
    assert ts[0] == 500 and ts[-1] == 0 and len(ts) == 10
    assert all(a > b for a, b in zip(ts, ts[1:]))
    assert walk_timesteps(1000, 0.05, 50) == sorted(set(walk_timesteps(1000, 0.05, 50)), reverse=True)
    assert walk_timesteps(1000, 1.0, 1) == [999]
    assert timestep_of(0.05, 1000) == 50
    with pytest.raises(InputError):
        walk_timesteps(1000, 0.5, 0)
    with pytest.raises(InputError):
        timestep_of(1.5, 1000)


def test_logsnr_timesteps_are_even_in_log_snr():
    ts = logsnr_timesteps(ABAR, 1.0, 30)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 30
    assert all(a > b for a, b in zip(ts, ts[1:]))
    lam = torch.log(ABAR / (1 - ABAR)).numpy()
    gaps = np.diff(lam[ts[1:-1]])  # -12 .. 6 in 28 equal gaps of 18/27, up to integer rounding of t
    assert np.all(np.abs(gaps - 18 / 27) < 0.15)
    assert sum(t >= 900 for t in ts) >= 10  # vs 3 for even t-steps: the layout is decided there
    assert sum(t >= 900 for t in walk_timesteps(1000, 1.0, 30)) == 3
    assert logsnr_timesteps(ABAR, 0.5, 6)[0] == 500  # starts at t_start, below lambda = -12 or not
    assert logsnr_timesteps(ABAR, 1.0, 1) == [999] and logsnr_timesteps(ABAR, 0.0, 5) == [0]
    with pytest.raises(InputError):
        logsnr_timesteps(ABAR, 1.0, 0)


def test_ddim_with_oracle_recovers_target_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 1, 16, 16, generator=g)
    x = torch.randn(1, 1, 16, 16, generator=g)
    ts = walk_timesteps(1000, 0.8, 6)
    out = sample_ddim(Oracle(target), x, ts)
    torch.testing.assert_close(out, target)
    # eta > 0 draws noise from the generator: same seed, same result
    o1 = sample_ddim(Oracle(target), x, ts, eta=1.0, generator=torch.Generator().manual_seed(3))
    o2 = sample_ddim(Oracle(target), x, ts, eta=1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(o1, o2, rtol=0, atol=0)


def test_sample_ddim_rejects_bad_timesteps():
    with pytest.raises(InputError):
        sample_ddim(Oracle(torch.zeros(1, 1, 4, 4)), torch.zeros(1, 1, 4, 4), [3, 5])
    with pytest.raises(InputError):
        sample_ddim(Oracle(torch.zeros(1, 1, 4, 4)), torch.zeros(1, 1, 4, 4), [])


def test_repaint_replaces_known_cells_until_t_min():
    g = torch.Generator().manual_seed(0)
    known = torch.randn(8, 8, generator=g)
    mask = torch.zeros(8, 8)
    mask[:, :4] = 1
    hook = RePaint(known, mask, ABAR, t_min=0.05)
    x = torch.full((1, 1, 8, 8), 7.0)
    # at t = 0 (< 0.05) nothing happens
    assert torch.equal(hook(x, 10, torch.Generator().manual_seed(1)), x)
    # at t >= 0.05 the known cells are q(known, t) with the generator's noise, others untouched
    t = 300
    y = hook(x, t, torch.Generator().manual_seed(1))
    expect = noise_to(known[None, None], t, ABAR, torch.Generator().manual_seed(1))
    torch.testing.assert_close(y[..., :4], expect[..., :4])
    assert torch.equal(y[..., 4:], x[..., 4:])


def test_sampler_applies_known_hook_each_step():
    target = torch.zeros(1, 1, 8, 8)
    oracle = Oracle(target)
    mask = torch.ones(8, 8)
    hook = RePaint(torch.full((8, 8), 5.0), mask, ABAR, t_min=0.0)
    ts = walk_timesteps(1000, 0.5, 4)
    sample_ddim(oracle, torch.zeros(1, 1, 8, 8), ts, known=hook, generator=torch.Generator().manual_seed(0))
    for t, x_t in oracle.seen:  # every input the denoiser saw was re-anchored at q(5, t)
        a = float(ABAR[t])
        assert abs(float(x_t.mean()) - a**0.5 * 5.0) < 4 * (1 - a) ** 0.5 / 8 + 1e-4


def test_chain_hooks():
    def add(k):
        return lambda x, t, g=None: x + k

    assert chain_hooks(None, None) is None
    h = chain_hooks(add(1), None, add(2))
    assert float(h(torch.zeros(1), 0, None)) == 3.0


def test_model_denoiser_matches_predict_eps_x0_and_clamps_dx():
    torch.manual_seed(0)
    m = TerrainPrior(PriorConfig(**TINY)).eval()
    x = torch.randn(2, 1, 32, 32)
    d = ModelDenoiser(m, 60.0)
    with torch.no_grad():
        e1, x1 = d(x, 400)
        e2, x2 = predict_eps_x0(m, x, 400, 60.0)
    torch.testing.assert_close(e1, e2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x1, x2, atol=1e-5, rtol=1e-5)
    assert ModelDenoiser(m, 5.0).cond_dx_m == min(m.cfg.dx_levels_m)
    assert ModelDenoiser(m, 1e5).cond_dx_m == max(m.cfg.dx_levels_m)
    assert ModelDenoiser(m, 100.0).cond_dx_m == 100.0


def test_profiler_exclusive_times():
    p = Profiler()
    with p.section("outer"):
        with p.section("inner"):
            pass
    d = p.to_dict()
    assert d["outer"]["calls"] == 1 and d["inner"]["calls"] == 1
    assert np.isfinite(d["outer"]["s"]) and d["outer"]["s"] >= 0


class GaussianData:
    """The exact denoiser of data ``N(0, s^2)``: ``E[x0 | x_t] = a s^2 / (a^2 s^2 + 1 - a^2) x_t``
    (``a = sqrt(abar_t)``); the probability-flow ODE maps ``N(0, 1)`` at ``t = T`` onto
    ``N(0, s^2)`` exactly, so a deterministic sampler's output std measures its error."""

    def __init__(self, s):
        from pixels2peaks.diffusion.schedule import make_alphas_cumprod

        self.s = s
        self.alphas_cumprod = make_alphas_cumprod(1000)

    def __call__(self, x, t):
        abar = float(self.alphas_cumprod[int(t)])
        a, sg2 = abar**0.5, 1.0 - abar
        x0 = a * self.s**2 / (abar * self.s**2 + sg2) * x
        return (x - a * x0) / sg2**0.5, x0


@pytest.mark.parametrize("name", ["ddim", "dpmpp_2m"])
def test_samplers_by_name_reach_the_gaussian_data(name):
    from pixels2peaks.diffusion.sampling import get_sampler
    from pixels2peaks.diffusion.schedule import logsnr_timesteps

    d = GaussianData(0.3)
    # the exact ODE maps each x_T to x_T * s / sqrt(s^2 abar_T + 1 - abar_T) (~0.3 x_T); a fine
    # walk must land on it, cell by cell
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    a_T = float(d.alphas_cumprod[999])
    exact = x * d.s / (d.s**2 * a_T + 1 - a_T) ** 0.5
    out = get_sampler(name)(d, x, logsnr_timesteps(d.alphas_cumprod, 1.0, 200))
    assert float((out - exact).abs().max()) < 0.03 * float(exact.abs().max())  # measured 2.1 %, 1.4 %


def test_second_order_sampler_needs_fewer_steps():
    from pixels2peaks.diffusion.sampling import sample_ddim, sample_dpmpp_2m
    from pixels2peaks.diffusion.schedule import logsnr_timesteps

    d = GaussianData(0.3)
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    a_T = float(d.alphas_cumprod[999])
    exact = x * d.s / (d.s**2 * a_T + 1 - a_T) ** 0.5
    ts = logsnr_timesteps(d.alphas_cumprod, 1.0, 8)
    err = {f.__name__: float((f(d, x, ts) - exact).abs().mean()) for f in (sample_ddim, sample_dpmpp_2m)}
    assert err["sample_dpmpp_2m"] < 0.2 * err["sample_ddim"], err  # 8 steps: max error 3 % against 31 %


def test_unknown_sampler_and_eta():
    from pixels2peaks.diffusion.completion import CompletionConfig
    from pixels2peaks.diffusion.sampling import get_sampler, sample_dpmpp_2m

    with pytest.raises(InputError, match="unknown sampler"):
        get_sampler("euler_a")
    with pytest.raises(InputError, match="unknown sampler"):
        CompletionConfig(sampler="nope")
    with pytest.raises(InputError, match="eta"):
        sample_dpmpp_2m(GaussianData(1.0), torch.zeros(1, 1, 4, 4), [999, 0], eta=0.5)
