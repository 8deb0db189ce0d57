import json

import numpy as np
import pytest
import torch

from pixels2peaks.diffusion.model import (
    PriorConfig,
    TerrainPrior,
    load_prior,
    predict_eps_x0,
    sample,
    save_prior,
)
from pixels2peaks.diffusion.schedule import make_alphas_cumprod, q_sample, v_target
from pixels2peaks.errors import InputError

TINY = dict(block_out_channels=(32, 32), layers_per_block=1, attention_levels=(1,), sample_size=32)


def test_schedule_matches_diffusers():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod
    assert torch.allclose(make_alphas_cumprod(1000).float(), ref, atol=1e-6)


def test_v_conversion_recovers_eps_and_x0():
    from pixels2peaks.diffusion.schedule import to_eps_x0

    abar = make_alphas_cumprod(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 1, 8, 8, generator=g)
    eps = torch.randn(3, 1, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    xt = q_sample(abar, x0, t, eps)
    e, x = to_eps_x0(abar, xt, t, v_target(abar, x0, t, eps), "v_prediction")
    torch.testing.assert_close(e, eps, atol=1e-4, rtol=0)
    torch.testing.assert_close(x[:2], x0[:2], atol=1e-4, rtol=0)  # t=999: x0 is ill-conditioned in float32


def test_predict_eps_x0_consistent_with_forward_process():
    torch.manual_seed(0)
    m = TerrainPrior(PriorConfig(**TINY)).eval()
    xt = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        eps, x0 = predict_eps_x0(m, xt, 300, 60.0)
    abar = m.alphas_cumprod[300]
    torch.testing.assert_close(abar.sqrt() * x0 + (1 - abar).sqrt() * eps, xt, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_save_load_round_trip(tmp_path, dtype):
    torch.manual_seed(0)
    m = TerrainPrior(PriorConfig(**TINY, slope_scale=1.3)).eval()
    wp, cp = save_prior(m, tmp_path / "p.safetensors", dtype=dtype, extra={"training": {"step": 7}})
    meta = json.loads(cp.read_text())
    assert meta["training"]["step"] == 7 and meta["prior_config"]["slope_scale"] == 1.3
    m2 = load_prior(wp)
    assert m2.cfg == m.cfg
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        a, b = m(x, 10, 30.0), m2(x, 10, 30.0)
    tol = 1e-6 if dtype == torch.float32 else 2e-2
    assert float((a - b).abs().max()) <= tol * max(1.0, float(a.abs().max()))


def test_load_errors(tmp_path):
    with pytest.raises(InputError):
        load_prior(tmp_path / "missing.safetensors")
    torch.manual_seed(0)
    m = TerrainPrior(PriorConfig(**TINY))
    wp, cp = save_prior(m, tmp_path / "p.safetensors")
    meta = json.loads(cp.read_text())
    meta["prior_config"]["block_out_channels"] = [32, 64]
    cp.write_text(json.dumps(meta))
    with pytest.raises(InputError):
        load_prior(wp)
    wp.write_bytes(b"garbage")
    with pytest.raises(InputError):
        load_prior(wp)


def test_config_validation():
    with pytest.raises(InputError):
        PriorConfig(block_out_channels=(30, 64))
    with pytest.raises(InputError):
        PriorConfig(prediction_type="sample")
    assert PriorConfig.from_dict(PriorConfig().to_dict()) == PriorConfig()


def test_sample_shape_and_determinism():
    torch.manual_seed(0)
    m = TerrainPrior(PriorConfig(**TINY)).eval()
    a = sample(m, 2, 32, 120.0, steps=3, seed=5)
    b = sample(m, 2, 32, 120.0, steps=3, seed=5)
    assert a.shape == (2, 1, 32, 32) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    with pytest.raises(InputError):
        sample(m, 1, 33, 120.0, steps=2)


def test_ddim_sampler_recovers_point_mass_with_oracle():
    """With an oracle for a one-point data distribution the sampler must land on that point."""
    cfg = PriorConfig(**TINY)
    target = torch.linspace(-2, 2, 32 * 32).reshape(1, 1, 32, 32)

    class Oracle(TerrainPrior):
        def forward(self, x_t, t, dx_m):
            abar = self.alphas_cumprod[torch.as_tensor(t).long()].reshape(-1, 1, 1, 1)
            # x0 = sqrt(abar) x_t - sqrt(1-abar) v  =>  v = (sqrt(abar) x_t - x0) / sqrt(1-abar)
            return (abar.sqrt() * x_t - target) / (1 - abar).sqrt()

    x = sample(Oracle(cfg), 2, 32, 30.0, steps=10, seed=0)
    torch.testing.assert_close(x, target.expand(2, 1, 32, 32), atol=1e-4, rtol=0)


def test_per_dx_slope_scale_interpolates_in_log_log_and_round_trips():
    cfg = PriorConfig(scale_dx_m=(30.0, 120.0, 960.0), scale_slope=(5.0, 2.5, 0.25))
    assert cfg.slope_scale_at(30.0) == pytest.approx(5.0)
    assert cfg.slope_scale_at(60.0) == pytest.approx((5.0 * 2.5) ** 0.5)  # log-log midpoint
    assert cfg.slope_scale_at(15.0) == pytest.approx(5.0 * 2**0.5)  # end-segment extrapolation
    assert cfg.slope_scale_at(1920.0) == pytest.approx(0.25 / 10 ** (1 / 3))
    n = cfg.normalization(60.0, z_ref_m=100.0)
    z = np.array([100.0, 160.0])
    assert n.encode(z)[1] == pytest.approx(60.0 / (60.0 * cfg.slope_scale_at(60.0)))
    assert np.allclose(n.decode(n.encode(z)), z)
    assert PriorConfig.from_dict(cfg.to_dict()) == cfg
    assert PriorConfig().slope_scale_at(77.0) == PriorConfig().slope_scale  # no table: global s
    assert cfg.architecture() == PriorConfig().architecture()
    with pytest.raises(InputError):
        PriorConfig(scale_dx_m=(30.0, 10.0), scale_slope=(1.0, 1.0))
