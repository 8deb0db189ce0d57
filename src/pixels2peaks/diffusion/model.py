"""The terrain diffusion prior: one diffusers ``UNet2DModel`` DDPM conditioned on the sampling density.

* :class:`PriorConfig` — frozen architecture + schedule + normalization description (saved as JSON
  next to the weights).
* :class:`TerrainPrior` — ``nn.Module`` wrapping the U-Net; ``forward(x_t, t, dx_m)`` returns the
  raw network output (``v`` for v-prediction).
* :func:`predict_eps_x0` — ``(eps_hat, x0_hat)`` for guidance code, whatever the parameterization.
* :func:`save_prior` / :func:`load_prior` / :func:`load_default_model` — safetensors + JSON.

Tensors are ``(B, 1, H, W)`` float32 in *normalized* height units (see
:mod:`pixels2peaks.diffusion.normalization`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pixels2peaks.diffusion.normalization import DEFAULT_SLOPE_SCALE, HeightNormalization, dx_class_label
from pixels2peaks.diffusion.schedule import PREDICTION_TYPES, SCHEDULES, make_alphas_cumprod, to_eps_x0
from pixels2peaks.errors import InputError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "prior.safetensors"
DEFAULT_CONFIG = WEIGHTS_DIR / "prior.json"


@dataclass(frozen=True)
class PriorConfig:
    """Architecture, schedule and normalization of a terrain prior.

    ``attention_levels`` lists the U-Net levels (0 = full resolution) that get self-attention.
    ``slope_scale`` is the global ``s`` of :class:`HeightNormalization`. When
    ``scale_dx_m`` / ``scale_slope`` are given (a table: cell size in metres -> typical std of
    ``z / dx`` of a training crop at that density), ``s`` depends on the density instead:
    :meth:`slope_scale_at` interpolates the table in log-log, so each density's normalized crops
    have a std of about 1 (see :mod:`pixels2peaks.diffusion.normalization`).
    ``sample_size`` (cells) is the tile the U-Net denoises at inference; larger maps are denoised in
    SpotDiffusion tiles of that size (256² for the shipped prior, trained on 128² crops: 128² tiles
    gave more relief but weaker drainage, docs/model-card.md "Inference tile size").
    """

    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (3,)
    attention_head_dim: int = 32
    norm_num_groups: int = 32
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"
    slope_scale: float = DEFAULT_SLOPE_SCALE
    sample_size: int = 256
    dx_levels_m: tuple[float, ...] = (30.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0)
    scale_dx_m: tuple[float, ...] = ()
    scale_slope: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for k in ("scale_dx_m", "scale_slope"):
            object.__setattr__(self, k, tuple(float(c) for c in getattr(self, k)))
        if len(self.scale_dx_m) != len(self.scale_slope) or any(
            not (v > 0 and math.isfinite(v)) for v in self.scale_dx_m + self.scale_slope
        ):
            raise InputError("scale_dx_m and scale_slope must be equally long lists of positive numbers")
        if list(self.scale_dx_m) != sorted(set(self.scale_dx_m)):
            raise InputError(f"scale_dx_m must be strictly increasing, got {self.scale_dx_m}")
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        object.__setattr__(self, "attention_levels", tuple(int(c) for c in self.attention_levels))
        object.__setattr__(self, "dx_levels_m", tuple(float(c) for c in self.dx_levels_m))
        if not self.block_out_channels or any(c <= 0 or c % self.norm_num_groups for c in self.block_out_channels):
            raise InputError(
                f"block_out_channels must be positive multiples of norm_num_groups={self.norm_num_groups}, "
                f"got {self.block_out_channels}"
            )
        if self.layers_per_block < 1:
            raise InputError(f"layers_per_block must be >= 1, got {self.layers_per_block}")
        if any(not 0 <= lv < len(self.block_out_channels) for lv in self.attention_levels):
            raise InputError(f"attention_levels {self.attention_levels} out of range")
        if self.beta_schedule not in SCHEDULES:
            raise InputError(f"beta_schedule must be one of {SCHEDULES}, got {self.beta_schedule!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise InputError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if not self.slope_scale > 0:
            raise InputError(f"slope_scale must be > 0, got {self.slope_scale}")

    @property
    def downsample_factor(self) -> int:
        """Tile sizes must be multiples of this."""
        return 2 ** (len(self.block_out_channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PriorConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown prior config key(s): {sorted(unknown)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)

    def slope_scale_at(self, dx_m: float) -> float:
        """Slope scale ``s(dx)`` (dimensionless) for cell size ``dx_m`` metres.

        The global ``slope_scale`` without a table; with one, log-log interpolation between its
        entries and extrapolation along the end segments (one entry: a constant).

        >>> round(PriorConfig(scale_dx_m=(10.0, 1000.0), scale_slope=(4.0, 0.4)).slope_scale_at(100.0), 6)
        1.264911
        """
        dx = float(dx_m)
        if not self.scale_dx_m:
            return float(self.slope_scale)
        lx, ly = np.log(self.scale_dx_m), np.log(self.scale_slope)
        if len(lx) == 1:
            return float(self.scale_slope[0])
        i = int(np.clip(np.searchsorted(lx, math.log(dx)) - 1, 0, len(lx) - 2))
        w = (math.log(dx) - lx[i]) / (lx[i + 1] - lx[i])
        return float(math.exp(ly[i] + w * (ly[i + 1] - ly[i])))

    def architecture(self) -> dict[str, Any]:
        """The config without its normalization (what the weights' shapes and meaning of t depend on)."""
        d = self.to_dict()
        for k in ("slope_scale", "scale_dx_m", "scale_slope"):
            d.pop(k)
        return d

    def normalization(self, dx_m: float, z_ref_m: float = 0.0) -> HeightNormalization:
        return HeightNormalization(s=self.slope_scale_at(dx_m), dx_m=dx_m, z_ref_m=z_ref_m)


def build_unet(cfg: PriorConfig) -> nn.Module:
    from diffusers import UNet2DModel

    n = len(cfg.block_out_channels)
    down = tuple("AttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if (n - 1 - i) in cfg.attention_levels else "UpBlock2D" for i in range(n))
    return UNet2DModel(
        sample_size=cfg.sample_size,
        in_channels=1,
        out_channels=1,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups,
        class_embed_type="timestep",
        flip_sin_to_cos=True,
        freq_shift=0,
    )


class TerrainPrior(nn.Module):
    """U-Net denoiser ``f(x_t, t, dx)`` on normalized heights, conditioned on the cell size."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        self.unet = build_unet(cfg)
        self.register_buffer(
            "alphas_cumprod",
            make_alphas_cumprod(cfg.num_train_timesteps, cfg.beta_schedule).to(torch.float32),
            persistent=False,
        )

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | int, dx_m: torch.Tensor | float) -> torch.Tensor:
        b = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(b)
        dx = torch.as_tensor(dx_m, device=x_t.device, dtype=torch.float32)
        if dx.ndim == 0:
            dx = dx.expand(b)
        labels = dx_class_label(dx)
        return self.unet(x_t, t, class_labels=labels).sample


def predict_eps_x0(
    model: TerrainPrior, x_t: torch.Tensor, t: torch.Tensor | int, dx_m: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise and clean-sample estimates ``(eps_hat, x0_hat)`` at step ``t`` (differentiable).

    For the v-prediction model: ``x0 = sqrt(abar) x_t - sqrt(1-abar) v``,
    ``eps = sqrt(1-abar) x_t + sqrt(abar) v``; for an epsilon model ``x0`` is Eq. 4 of the paper.
    """
    out = model(x_t, t, dx_m)
    b = x_t.shape[0]
    tt = torch.as_tensor(t, device=x_t.device)
    if tt.ndim == 0:
        tt = tt.expand(b)
    return to_eps_x0(model.alphas_cumprod, x_t, tt, out.to(x_t.dtype), model.cfg.prediction_type)


# ----------------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------------


def save_prior(
    model: TerrainPrior,
    weights_path: str | Path,
    *,
    dtype: torch.dtype = torch.float16,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``weights_path`` (safetensors, ``dtype``) and ``weights_path.with_suffix('.json')``.

    Writes atomically (temp file + rename) so a reader never sees half a file.
    """
    from safetensors.torch import save_file

    wp = Path(weights_path)
    cp = wp.with_suffix(".json")
    wp.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", dtype=dtype).contiguous() for k, v in model.unet.state_dict().items()}
    tmp = wp.with_name(wp.name + ".tmp")
    save_file(sd, str(tmp), metadata={"format": "pt", "dtype": str(dtype)})
    tmp.chmod(0o644)
    tmp.replace(wp)
    meta = {"prior_config": model.cfg.to_dict(), "weights": wp.name, "weights_dtype": str(dtype).replace("torch.", "")}
    if extra:
        meta.update(extra)
    tmpc = cp.with_name(cp.name + ".tmp")
    tmpc.write_text(json.dumps(meta, indent=2) + "\n")
    tmpc.replace(cp)
    return wp, cp


def load_prior(weights_path: str | Path, config_path: str | Path | None = None) -> TerrainPrior:
    """Load a prior saved by :func:`save_prior` (float32, eval mode, on CPU)."""
    from safetensors.torch import load_file

    wp = Path(weights_path)
    cp = Path(config_path) if config_path is not None else wp.with_suffix(".json")
    if not wp.is_file():
        raise InputError(f"prior weights not found: {wp}")
    if not cp.is_file():
        raise InputError(f"prior config not found: {cp}")
    try:
        meta = json.loads(cp.read_text())
        cfg = PriorConfig.from_dict(meta["prior_config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"bad prior config {cp}: {exc}") from None
    model = TerrainPrior(cfg)
    try:
        sd = load_file(str(wp))
    except Exception as exc:  # noqa: BLE001 - any safetensors failure is bad input
        raise InputError(f"cannot read prior weights {wp}: {str(exc).splitlines()[0]}") from None
    sd = {k: v.to(torch.float32) for k, v in sd.items()}
    try:
        model.unet.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise InputError(f"prior weights {wp} do not match its config: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model


def load_default_model() -> TerrainPrior:
    """The shipped prior (``pixels2peaks/weights/prior.safetensors`` + ``prior.json``)."""
    if not DEFAULT_WEIGHTS.is_file():
        raise InputError(
            f"no trained prior shipped at {DEFAULT_WEIGHTS}; train one with `p2p train configs/prior.toml`"
        )
    return load_prior(DEFAULT_WEIGHTS, DEFAULT_CONFIG)


# ----------------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def sample(
    model: TerrainPrior,
    n: int,
    size: int,
    dx_m: float,
    *,
    steps: int = 100,
    seed: int = 0,
    bf16: bool = False,
    eta: float = 0.0,
    sampler: str = "ddim",
) -> torch.Tensor:
    """Unconditional samples ``(n, 1, size, size)`` in *normalized* units: a walk of the named
    ``sampler`` (:func:`~pixels2peaks.diffusion.sampling.get_sampler`; DDIM by default, ``eta``
    = 0 deterministic) over ``steps`` log-SNR-spaced timesteps from pure noise.

    Decode to metres with ``model.cfg.normalization(dx_m, z_ref_m).decode(x)``.
    """
    from pixels2peaks.diffusion.sampling import ModelDenoiser, get_sampler
    from pixels2peaks.diffusion.schedule import logsnr_timesteps

    f = model.cfg.downsample_factor
    if size < f or size % f:
        raise InputError(f"size must be a positive multiple of {f}, got {size}")
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    if not dx_m > 0:
        raise InputError(f"dx must be > 0, got {dx_m}")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, 1, size, size, generator=g)
    denoiser = ModelDenoiser(model, dx_m, cond_dx_m=dx_m, bf16=bf16)
    ts = logsnr_timesteps(model.alphas_cumprod, 1.0, steps)
    return get_sampler(sampler)(denoiser, x, ts, generator=g, eta=eta)
