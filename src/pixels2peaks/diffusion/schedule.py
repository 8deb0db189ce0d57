"""DDPM noise schedule (T = 1000) and the conversions between the parameterizations.

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
