"""DDPM noise schedule (T = 1000), the conversions between the parameterizations, the forward
process and the timestep spacing of every denoising walk (one home: completion, polishing,
unconditional sampling and ``model.sample`` all take their timesteps from here).

Notation (paper Eq. 2): ``x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps``.
The network predicts ``v = sqrt(abar_t) * eps - sqrt(1 - abar_t) * x0`` (v-prediction, Salimans &
Ho 2022); ``eps`` and ``x0`` follow exactly from ``(x_t, v)``:

    x0  = sqrt(abar_t) * x_t - sqrt(1 - abar_t) * v
    eps = sqrt(1 - abar_t) * x_t + sqrt(abar_t) * v
"""

from __future__ import annotations

import math

import torch

from pixels2peaks.errors import InputError

SCHEDULES = ("squaredcos_cap_v2", "linear")
PREDICTION_TYPES = ("v_prediction", "epsilon")


def make_alphas_cumprod(num_steps: int = 1000, schedule: str = "squaredcos_cap_v2") -> torch.Tensor:
    """``abar_t`` for ``t = 0..T-1`` (float64), matching diffusers' ``DDPMScheduler``."""
    if num_steps < 2:
        raise InputError(f"num_steps must be >= 2, got {num_steps}")
    if schedule == "squaredcos_cap_v2":
        # Nichol & Dhariwal 2021 cosine schedule, betas capped at 0.999 (same as diffusers)
        def f(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = torch.tensor(
            [min(1 - f((i + 1) / num_steps) / f(i / num_steps), 0.999) for i in range(num_steps)],
            dtype=torch.float64,
        )
    elif schedule == "linear":
        betas = torch.linspace(1e-4, 0.02, num_steps, dtype=torch.float64)
    else:
        raise InputError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    return torch.cumprod(1.0 - betas, dim=0)


def _coef(abar: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.as_tensor(t, device=abar.device).long().reshape(-1)
    a = abar[t].to(device=like.device, dtype=torch.float32)
    shape = (-1,) + (1,) * (like.ndim - 1)
    return a.sqrt().reshape(shape), (1.0 - a).sqrt().reshape(shape)


def q_sample(abar: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Forward process (Eq. 2)."""
    sa, sb = _coef(abar, t, x0)
    return sa * x0 + sb * eps


def v_target(abar: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    sa, sb = _coef(abar, t, x0)
    return sa * eps - sb * x0


def to_eps_x0(
    abar: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network output -> ``(eps_hat, x0_hat)`` (differentiable; x0_hat = Eq. 4 for eps models)."""
    sa, sb = _coef(abar, t, x_t)
    if prediction_type == "v_prediction":
        return sb * x_t + sa * out, sa * x_t - sb * out
    if prediction_type == "epsilon":
        return out, (x_t - sb * out) / sa
    raise InputError(f"unknown prediction_type {prediction_type!r}; choose one of {PREDICTION_TYPES}")


# ----------------------------------------------------------------------------------------------
# timestep spacing and the forward process with seeded noise
# ----------------------------------------------------------------------------------------------
def timestep_of(t: float, num_train_timesteps: int) -> int:
    """Continuous time ``t`` in [0, 1] -> integer timestep ``round(t * (T - 1))``."""
    if not 0.0 <= float(t) <= 1.0:
        raise InputError(f"t must be in [0, 1], got {t}")
    return int(round(float(t) * (num_train_timesteps - 1)))


def walk_timesteps(num_train_timesteps: int, t_start: float, steps: int) -> list[int]:
    """``steps`` decreasing integer timesteps from ``t_start`` (continuous, in [0, 1]) down to 0,
    evenly spaced (DDIM); duplicates removed, so very short walks may have fewer."""
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    t0 = timestep_of(t_start, num_train_timesteps)
    if steps == 1 or t0 == 0:
        return [t0]
    vals = torch.linspace(float(t0), 0.0, int(steps), dtype=torch.float64).tolist()
    return sorted({int(round(v)) for v in vals}, reverse=True)


def logsnr_timesteps(
    alphas_cumprod: torch.Tensor,
    t_start: float,
    steps: int,
    logsnr_min: float = -12.0,
    logsnr_max: float = 6.0,
) -> list[int]:
    """``steps`` decreasing integer timesteps from ``t_start`` (continuous, in [0, 1]) down to 0:
    evenly spaced in log-SNR ``lambda_t = log(abar_t / (1 - abar_t))`` between ``lambda(t_start)``
    (clipped to ``logsnr_min``) and ``logsnr_max``, then 0 (duplicates removed, so walks may be
    shorter than ``steps``).

    For sampling from pure noise: the cosine schedule's log-SNR falls from -4 to -20 over
    ``t = 900..999``, where the terrain's layout is decided, so even t-steps put 2-3 steps there
    and the DDIM walk loses relief; 30 log-SNR steps give the relief of ~150 even steps
    (docs/model-card.md).

    >>> from pixels2peaks.diffusion.schedule import make_alphas_cumprod
    >>> logsnr_timesteps(make_alphas_cumprod(1000), 1.0, 8)
    [999, 992, 967, 858, 495, 132, 24, 0]
    """
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    abar = alphas_cumprod.detach().to("cpu", torch.float64)
    t0 = timestep_of(t_start, len(abar))
    if steps == 1 or t0 == 0:
        return [t0]
    lam = torch.log(abar[: t0 + 1] / (1.0 - abar[: t0 + 1]).clamp_min(1e-300))
    lo = max(float(lam[t0]), float(logsnr_min))
    targets = torch.linspace(lo, max(lo, float(logsnr_max)), int(steps) - 1, dtype=torch.float64)
    picked = (lam[None, :] - targets[1:, None]).abs().argmin(dim=1).tolist()
    return sorted({t0, *picked, 0}, reverse=True)


def _abar(alphas_cumprod: torch.Tensor, t: int) -> float:
    return float(alphas_cumprod[int(t)])


def noise_to(
    x0: torch.Tensor, t: int, alphas_cumprod: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Forward process (Eq. 2): ``sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` with fresh noise drawn
    on the CPU from ``generator`` (so results do not depend on the device)."""
    a = _abar(alphas_cumprod, t)
    eps = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
    return a**0.5 * x0 + (1.0 - a) ** 0.5 * eps
