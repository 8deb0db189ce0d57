"""Denoisers, the DDIM sampler and the RePaint step hook (paper §5.1, Eqs. 2-4).

A **denoiser** is any callable ``(x_t, t) -> (eps_hat, x0_hat)`` on ``(B, 1, H, W)`` tensors in
normalized height units, with ``t`` an integer DDPM timestep, and an ``alphas_cumprod``
attribute (the schedule ``abar_t``). Denoisers compose (k-diffusion / diffusers style):

* :class:`ModelDenoiser` wraps a :class:`~pixels2peaks.diffusion.model.TerrainPrior` at one cell
  size (one tile or a batch of equally sized tiles);
* :class:`~pixels2peaks.diffusion.tiling.SpotTiledDenoiser` turns a tile denoiser into a denoiser
  over a whole heightmap of any size (2-D SpotDiffusion);
* :func:`~pixels2peaks.diffusion.guidance.guided` adds loss guidance (Eq. 6).

Samplers are plain functions with one signature, chosen by name (:data:`SAMPLERS`,
:func:`get_sampler`): ``"ddim"`` (Song et al. 2021) and ``"dpmpp_2m"`` (DPM-Solver++(2M), Lu et
al. 2022)::

    sampler(denoiser, x, timesteps, *, known=None, callback=None, generator=None, eta=0.0)

Every walk of the package (completion, polishing, unconditional sampling, ``model.sample``) goes
through one of them; the timesteps come from :mod:`~pixels2peaks.diffusion.schedule`.

``known`` is a **step hook** ``(x_t, t, generator) -> x_t`` applied before every denoiser call;
:class:`RePaint` (Eq. 3) is the one used for completion. Hooks compose with :func:`chain_hooks`.

:class:`Profiler` accumulates exclusive wall-clock time per named section (``"unet"``,
``"breach"``, ...) across all components that are handed the same profiler.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import torch

from pixels2peaks.diffusion.schedule import _abar, logsnr_timesteps, noise_to, timestep_of, walk_timesteps
from pixels2peaks.errors import InputError

__all__ = [
    "Denoiser",
    "StepHook",
    "Profiler",
    "ModelDenoiser",
    "RePaint",
    "chain_hooks",
    "sample_ddim",
    "noise_to",
    "timestep_of",
    "walk_timesteps",
    "logsnr_timesteps",
    "sample_dpmpp_2m",
    "SAMPLERS",
    "get_sampler",
]


class Denoiser(Protocol):
    alphas_cumprod: torch.Tensor

    def __call__(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]: ...


StepHook = Callable[[torch.Tensor, int, "torch.Generator | None"], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# profiling
# ----------------------------------------------------------------------------------------------
class Profiler:
    """Exclusive wall-clock seconds per section name (nested sections are subtracted from their
    parent), plus call counts. ``with prof.section("unet"): ...``. A ``None`` profiler is allowed
    everywhere (use :func:`section`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[Any]] = []  # [name, start, child_time]

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        frame = [name, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            total = time.perf_counter() - frame[1]
            self.seconds[name] = self.seconds.get(name, 0.0) + total - frame[2]
            self.calls[name] = self.calls.get(name, 0) + 1
            if self._stack:
                self._stack[-1][2] += total

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {k: {"s": round(v, 4), "calls": self.calls[k]} for k, v in sorted(self.seconds.items())}


def section(profiler: Profiler | None, name: str):
    """``profiler.section(name)`` or a no-op context when ``profiler`` is None."""
    return profiler.section(name) if profiler is not None else contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------
# model denoiser
# ----------------------------------------------------------------------------------------------
class ModelDenoiser:
    """``(x_t, t) -> (eps, x0)`` from a :class:`TerrainPrior` at cell size ``dx_m``.

    ``cond_dx_m`` is the cell size fed to the network's dx conditioning (defaults to ``dx_m``
    clamped to the model's trained ``dx_levels_m`` range: the normalization is slope-preserving,
    so a heightmap at a finer dx than any trained level looks like the finest level).
    Differentiable when called with grad enabled. ``channels_last`` is used on CPU (faster).
    ``bf16`` runs the U-Net under bfloat16 autocast (outputs are float32).
    """

    def __init__(
        self,
        model: Any,
        dx_m: float,
        *,
        cond_dx_m: float | None = None,
        bf16: bool = False,
        profiler: Profiler | None = None,
    ) -> None:
        self.model = model
        self.dx_m = float(dx_m)
        levels = getattr(model.cfg, "dx_levels_m", ()) or (self.dx_m,)
        self.cond_dx_m = float(cond_dx_m) if cond_dx_m is not None else min(max(self.dx_m, min(levels)), max(levels))
        self.bf16 = bool(bf16)
        self.profiler = profiler
        p = next(model.parameters())
        self.device = p.device
        self.alphas_cumprod = model.alphas_cumprod.detach().to("cpu", torch.float64)
        self.downsample_factor = int(model.cfg.downsample_factor)
        self.channels_last = self.device.type == "cpu"

    def __call__(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        from pixels2peaks.diffusion.schedule import to_eps_x0

        with section(self.profiler, "unet"):
            x = x_t.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            dev_type = self.device.type
            with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=self.bf16):
                out = self.model(x, int(t), self.cond_dx_m)
            out = out.float().contiguous()
            tt = torch.full((x.shape[0],), int(t), device=self.device, dtype=torch.long)
            abar = self.model.alphas_cumprod
            eps, x0 = to_eps_x0(abar, x_t.to(self.device).float(), tt, out, self.model.cfg.prediction_type)
        return eps, x0


# ----------------------------------------------------------------------------------------------
# step hooks
# ----------------------------------------------------------------------------------------------
class RePaint:
    """RePaint replacement of the known cells (paper Eq. 3), as a step hook:

    ``x_t <- (1 - M) x_t + M q(z_known, t)`` with fresh noise, for every step with
    ``t >= t_min * (T - 1)`` (the paper disables it for ``t < 0.05`` so that the last steps blend
    known and synthesized cells). ``z_known`` is in normalized units, ``mask`` is 1 on known cells
    (``(H, W)`` or ``(B, 1, H, W)``).
    """

    def __init__(
        self, z_known: torch.Tensor, mask: torch.Tensor, alphas_cumprod: torch.Tensor, t_min: float = 0.05
    ) -> None:
        z = z_known if z_known.ndim == 4 else z_known[None, None]
        m = mask if mask.ndim == 4 else mask[None, None]
        if z.shape[-2:] != m.shape[-2:]:
            raise InputError(f"known heights {tuple(z.shape)} and mask {tuple(m.shape)} differ in shape")
        self.mask = m.to(torch.float32)
        self.z_known = torch.where(self.mask > 0, z.to(torch.float32), torch.zeros_like(self.mask))
        self.alphas_cumprod = alphas_cumprod
        self.t_min_step = t_min * (len(alphas_cumprod) - 1)

    def __call__(self, x_t: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if t < self.t_min_step:
            return x_t
        m = self.mask.to(x_t.device)
        zk = noise_to(self.z_known.to(x_t.device), t, self.alphas_cumprod, generator)
        return (1.0 - m) * x_t + m * zk


def chain_hooks(*hooks: StepHook | None) -> StepHook | None:
    """Compose step hooks left to right (``None`` entries are skipped)."""
    hs = [h for h in hooks if h is not None]
    if not hs:
        return None
    if len(hs) == 1:
        return hs[0]

    def hook(x: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        for h in hs:
            x = h(x, t, generator)
        return x

    return hook


# ----------------------------------------------------------------------------------------------
# sampler
# ----------------------------------------------------------------------------------------------
def sample_ddim(
    denoiser: Denoiser,
    x: torch.Tensor,
    timesteps: Sequence[int],
    *,
    known: StepHook | None = None,
    callback: Callable[[int, int, torch.Tensor, torch.Tensor], None] | None = None,
    generator: torch.Generator | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM walk (Song et al. 2021) from ``x`` at ``timesteps[0]`` down to ``timesteps[-1]``.

    At every step: ``x <- known(x, t)`` (if given), ``(eps, x0) = denoiser(x, t)``, then
    ``x <- sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z`` (``sigma = 0`` for
    ``eta = 0``, deterministic). Returns the last ``x0`` estimate. ``callback(i, t, x, x0)`` is
    called after every step with the state before the update. Runs without autograd; guidance
    wrappers enable it internally.
    """
    ts = _check_timesteps(timesteps)
    abar = denoiser.alphas_cumprod
    x = x.detach()
    x0 = x
    with torch.no_grad():
        for i, t in enumerate(ts):
            if known is not None:
                x = known(x, t, generator)
            eps, x0 = denoiser(x, t)
            eps, x0 = eps.detach(), x0.detach()
            if callback is not None:
                callback(i, t, x, x0)
            if i + 1 == len(ts):
                break
            a_t, a_p = _abar(abar, t), _abar(abar, ts[i + 1])
            sigma = eta * max((1 - a_p) / (1 - a_t) * (1 - a_t / a_p), 0.0) ** 0.5
            x = a_p**0.5 * x0 + max(1 - a_p - sigma**2, 0.0) ** 0.5 * eps
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=generator).to(x.device)
    return x0


def _check_timesteps(timesteps: Sequence[int]) -> list[int]:
    ts = [int(t) for t in timesteps]
    if not ts:
        raise InputError("timesteps must not be empty")
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise InputError(f"timesteps must be strictly decreasing, got {ts}")
    return ts


def sample_dpmpp_2m(
    denoiser: Denoiser,
    x: torch.Tensor,
    timesteps: Sequence[int],
    *,
    known: StepHook | None = None,
    callback: Callable[[int, int, torch.Tensor, torch.Tensor], None] | None = None,
    generator: torch.Generator | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2; deterministic, ``eta`` must be 0): in
    ``lambda = log(alpha / sigma)`` with ``alpha = sqrt(abar)``, ``sigma = sqrt(1 - abar)``,

        x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (exp(-h_i) - 1) D_i,
        D_i = (1 + 1 / (2 r_i)) x0_{i-1} - 1 / (2 r_i) x0_{i-2},   r_i = h_{i-1} / h_i,

    with ``D_1 = x0_0`` (first order on the first step and on a step to ``sigma = 0``). Same
    signature, step hook and callback as :func:`sample_ddim`; returns the last ``x0`` estimate.
    A second-order multistep method: fewer steps for the same error (tested on Gaussian data,
    where the probability-flow ODE is known in closed form)."""
    import math

    if eta != 0.0:
        raise InputError("the dpmpp_2m sampler is deterministic: eta must be 0")
    ts = _check_timesteps(timesteps)
    abar = denoiser.alphas_cumprod
    x = x.detach()
    x0 = x
    prev_x0, prev_h = None, None
    with torch.no_grad():
        for i, t in enumerate(ts):
            if known is not None:
                x = known(x, t, generator)
            _, x0 = denoiser(x, t)
            x0 = x0.detach()
            if callback is not None:
                callback(i, t, x, x0)
            if i + 1 == len(ts):
                break
            a_t, a_p = _abar(abar, t), _abar(abar, ts[i + 1])
            al_t, sg_t = math.sqrt(a_t), math.sqrt(max(1.0 - a_t, 0.0))
            al_p, sg_p = math.sqrt(a_p), math.sqrt(max(1.0 - a_p, 0.0))
            lam_t = math.log(al_t / max(sg_t, 1e-12))
            lam_p = math.log(al_p / max(sg_p, 1e-12))
            h = lam_p - lam_t
            d = x0
            if prev_x0 is not None and sg_p > 1e-6:
                r = prev_h / h
                d = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * prev_x0
            x = (sg_p / max(sg_t, 1e-12)) * x - al_p * math.expm1(-h) * d
            prev_x0, prev_h = x0, h
    return x0


#: the samplers, by name (:func:`get_sampler`)
SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ddim": sample_ddim, "dpmpp_2m": sample_dpmpp_2m}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler called ``name`` (:data:`SAMPLERS`)."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise InputError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}") from None
