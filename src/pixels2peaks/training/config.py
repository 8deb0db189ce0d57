"""Training configuration: a TOML file -> :class:`TrainConfig` (frozen), saved with every run.

TOML tables (``[model]``, ``[data]``, ``[optim]``, ``[run]``) are only for readability: all keys
live in one flat namespace. Relative paths are resolved against the current working directory.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from pixels2peaks.diffusion.model import PriorConfig
from pixels2peaks.errors import InputError

#: keys that may differ when resuming a run (they do not change what is being trained)
RUNTIME_KEYS = frozenset(
    {"threads", "log_every", "checkpoint_every_s", "export_every_s", "sample_every_s", "max_steps",
     "max_hours", "export_dir", "resume_copy_max_mb", "val_batches", "sample_steps"}
)
#: keys that may change when resuming a run: they reweight what is trained (the change is logged)
TUNABLE_KEYS = frozenset({"high_noise_fraction", "high_noise_min_t"})


@dataclass(frozen=True)
class TrainConfig:
    # data
    data_dir: str = "runs/data/prior_v1"
    crop_cells: int = 128
    batch_size: int = 4
    level_weight_power: float = 0.5  # P(dx level) ~ n_tiles(level) ** power
    z_ref_jitter: float = 0.5  # z_ref = crop mean + z_ref_jitter * crop std * N(0, 1)
    augment: bool = True  # the 8 rotations/flips
    # model
    block_out_channels: tuple[int, ...] = (32, 64, 96, 96, 128)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (3, 4)
    attention_head_dim: int = 32
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"
    num_train_timesteps: int = 1000
    slope_scale: float = 0.0  # 0 = take the dataset manifest's suggested_slope_scale
    height_scale: str = "per_dx"  # "per_dx": s(dx) from the manifest's crop std per level; "global": one s
    scale_dx_m: tuple[float, ...] = ()  # resolved from the manifest when height_scale = "per_dx"
    scale_slope: tuple[float, ...] = ()
    loss_weighting: str = "level_variance"  # or "none": plain MSE on v
    high_noise_fraction: float = 0.0  # share of samples with t drawn from [high_noise_min_t, T) instead of [0, T)
    high_noise_min_t: int = 900
    # optimization
    lr: float = 1e-4
    lr_min: float = 1e-6
    warmup_steps: int = 1000
    total_steps: int = 60_000  # cosine LR period; training stops here
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # run
    seed: int = 0
    threads: int = 1
    run_dir: str = "runs/prior"
    export_dir: str = "src/pixels2peaks/weights"  # "" = do not export
    log_every: int = 50
    checkpoint_every_s: float = 600.0
    export_every_s: float = 1800.0
    sample_every_s: float = 1800.0
    sample_steps: int = 50
    val_batches: int = 8
    max_steps: int = 0  # 0 = until total_steps
    max_hours: float = 0.0  # 0 = no wall-clock limit
    resume_copy_max_mb: float = 40.0

    def __post_init__(self) -> None:
        for k in ("block_out_channels", "attention_levels"):
            object.__setattr__(self, k, tuple(int(v) for v in getattr(self, k)))
        for k in ("scale_dx_m", "scale_slope"):
            object.__setattr__(self, k, tuple(float(v) for v in getattr(self, k)))
        if self.height_scale not in ("per_dx", "global"):
            raise InputError(f"height_scale must be 'per_dx' or 'global', got {self.height_scale!r}")
        if self.crop_cells < 16 or self.batch_size < 1:
            raise InputError(f"crop_cells must be >= 16 and batch_size >= 1, got {self.crop_cells}, {self.batch_size}")
        if not (0 < self.lr_min <= self.lr):
            raise InputError(f"need 0 < lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if self.total_steps < 1 or self.threads < 1:
            raise InputError("total_steps and threads must be >= 1")
        if self.max_steps < 0:
            raise InputError(f"max_steps must be >= 0 (0 = until total_steps), got {self.max_steps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.high_noise_fraction <= 1.0:
            raise InputError(f"high_noise_fraction must be in [0, 1], got {self.high_noise_fraction}")
        if not 0 <= self.high_noise_min_t < self.num_train_timesteps:
            raise InputError(
                f"high_noise_min_t must be in [0, {self.num_train_timesteps}), got {self.high_noise_min_t}"
            )
        if self.loss_weighting not in ("level_variance", "none"):
            raise InputError(f"loss_weighting must be 'level_variance' or 'none', got {self.loss_weighting!r}")
        self.prior_config()  # validates the architecture
        if self.crop_cells % self.prior_config().downsample_factor:
            raise InputError(
                f"crop_cells={self.crop_cells} must be a multiple of {self.prior_config().downsample_factor}"
            )

    def prior_config(self, slope_scale: float | None = None) -> PriorConfig:
        s = slope_scale if slope_scale is not None else (self.slope_scale or 1.0)
        return PriorConfig(
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            attention_levels=self.attention_levels,
            attention_head_dim=self.attention_head_dim,
            num_train_timesteps=self.num_train_timesteps,
            beta_schedule=self.beta_schedule,
            prediction_type=self.prediction_type,
            slope_scale=s,
            scale_dx_m=self.scale_dx_m if self.height_scale == "per_dx" else (),
            scale_slope=self.scale_slope if self.height_scale == "per_dx" else (),
        )

    def lr_at(self, step: int) -> float:
        """Linear warm-up then cosine annealing ``lr -> lr_min`` over ``total_steps``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        p = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * p))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown training config key(s): {unknown}")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        except TypeError as exc:
            raise InputError(f"bad training config: {exc}") from None

    def resolved(self, base: Path | None = None) -> TrainConfig:
        """Copy with absolute paths."""
        base = base or Path.cwd()

        def ab(p: str) -> str:
            if not p:
                return p
            q = Path(p).expanduser()
            return str(q if q.is_absolute() else (base / q).resolve())

        return replace(self, data_dir=ab(self.data_dir), run_dir=ab(self.run_dir), export_dir=ab(self.export_dir))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"training config not found: {p}")
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot parse {p}: {exc}") from None
    flat: dict[str, Any] = {}
    for k, v in raw.items():
        items = v.items() if isinstance(v, dict) else [(k, v)]
        for kk, vv in items:
            if kk in flat:
                raise InputError(f"{p}: key {kk!r} given twice")
            flat[kk] = vv
    flat.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(flat)
