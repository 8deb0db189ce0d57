"""Training loop of the terrain prior: seedable, resumable, EMA, AdamW + cosine LR, periodic export.

Run directory (outside git, e.g. ``runs/prior``)::

    config.json        the frozen TrainConfig of the run (slope_scale resolved)
    checkpoint.pt      model + EMA + optimizer + step + RNG states (atomic; previous kept as .prev)
    loss.csv           step, elapsed_s, loss, lr, steps_per_s, val_loss
    loss.png           loss curve
    samples/step_*.png hillshaded grids: real crops (top) vs EMA samples (bottom) per dx level

Every ``export_every_s`` the EMA weights are exported to ``export_dir`` (``prior.safetensors`` +
``prior.json``; fp16 unless that visibly changes the prediction) and the checkpoint is copied to
``export_dir/resume/`` if smaller than ``resume_copy_max_mb``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pixels2peaks.diffusion.model import TerrainPrior, load_prior, sample, save_prior
from pixels2peaks.diffusion.schedule import q_sample, v_target
from pixels2peaks.errors import InputError
from pixels2peaks.training.config import RUNTIME_KEYS, TUNABLE_KEYS, TrainConfig
from pixels2peaks.training.data import TileSet, read_manifest

CSV_FIELDS = ["step", "elapsed_s", "loss", "lr", "steps_per_s", "val_loss"]


REWARM_STEPS = 200


def _merge_saved_config(cfg: TrainConfig, saved_dict: dict[str, Any], what: str,
                        log: Callable[[str], None] = print) -> TrainConfig:
    """The saved run config with this invocation's runtime and tunable keys; error if anything else differs."""
    saved = TrainConfig.from_dict(saved_dict)
    sd = saved.to_dict()
    free = RUNTIME_KEYS | TUNABLE_KEYS | {"slope_scale", "scale_dx_m", "scale_slope", "run_dir", "data_dir"}
    diff = sorted(k for k, v in cfg.to_dict().items() if k not in free and sd[k] != v)
    tuned = sorted(k for k in TUNABLE_KEYS if sd[k] != getattr(cfg, k))
    if tuned:
        log(f"{what}: changed on resume: " + ", ".join(f"{k} {sd[k]} -> {getattr(cfg, k)}" for k in tuned))
    if cfg.slope_scale and cfg.slope_scale != saved.slope_scale:
        diff.append("slope_scale")
    if diff:
        raise InputError(f"{what} was trained with a different config ({', '.join(diff)}); use another run_dir or --fresh")
    return replace(saved, run_dir=cfg.run_dir, data_dir=cfg.data_dir,
                   **{k: getattr(cfg, k) for k in RUNTIME_KEYS | TUNABLE_KEYS})


def _round_sig(x: float, sig: int = 2) -> float:
    if not (x > 0 and math.isfinite(x)):
        raise InputError(f"dataset manifest gives an invalid slope scale {x!r}; set slope_scale in the config")
    return round(x, sig - 1 - int(math.floor(math.log10(x))))


def sample_timesteps(
    n: int, num_train_timesteps: int, generator: torch.Generator, high_noise_fraction: float = 0.0,
    high_noise_min_t: int = 900,
) -> torch.Tensor:
    """``n`` training timesteps: uniform on ``[0, T)``, except that a share ``high_noise_fraction``
    is drawn uniformly from ``[high_noise_min_t, T)``.

    The cosine schedule spends only ~5 % of uniform draws on ``t >= 950`` (log-SNR < -5), where the
    layout of ridges and valleys is decided and where the prior's samples lose their relief
    (docs/model-card.md). ``high_noise_fraction = 0`` draws exactly as ``torch.randint(0, T, (n,))``.

    >>> g = torch.Generator().manual_seed(0)
    >>> bool((sample_timesteps(1000, 1000, g, 1.0, 900) >= 900).all())
    True
    """
    t = torch.randint(0, num_train_timesteps, (n,), generator=generator)
    if high_noise_fraction <= 0.0:
        return t
    hi = torch.randint(high_noise_min_t, num_train_timesteps, (n,), generator=generator)
    pick = torch.rand(n, generator=generator) < high_noise_fraction
    return torch.where(pick, hi, t)


class _Stop:
    def __init__(self) -> None:
        self.flag = False

    def __call__(self, signum: int, frame: Any) -> None:  # pragma: no cover - signal path
        self.flag = True


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for the parameters; buffers (BatchNorm
    statistics) are copied from ``model``."""
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1.0 - decay)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)


def _loss(
    model: TerrainPrior,
    x0: torch.Tensor,
    dx: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    data_var: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """MSE of the network output against its target (v or eps).

    With ``data_var`` (dx -> typical variance of the normalized data at that dx), each sample's
    squared error is divided by the variance of its v target, ``abar + (1 - abar) * var``, so every
    dx level contributes on the same scale (the normalized data variance differs ~100x between
    30 m and 1920 m because the normalization preserves slope, see docs/model-card.md).
    """
    abar = model.alphas_cumprod
    x_t = q_sample(abar, x0, t, eps)
    v_pred = model.cfg.prediction_type == "v_prediction"
    target = v_target(abar, x0, t, eps) if v_pred else eps
    out = model(x_t.contiguous(memory_format=torch.channels_last), t, dx)
    err = (out.float() - target).pow(2).mean(dim=(1, 2, 3))
    if data_var is not None and v_pred:
        a = abar[t].to(torch.float32)
        err = err / (a + (1.0 - a) * data_var(dx))
    return err.mean()


class Trainer:
    def __init__(self, cfg: TrainConfig, *, log: Callable[[str], None] = print, fresh: bool = False,
                 init_from: str | Path | None = None):
        self.log = log
        cfg = cfg.resolved()
        self.run_dir = Path(cfg.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = self.run_dir / "checkpoint.pt"
        ckpt = None
        if self.ckpt_path.is_file() and not fresh:
            ckpt = torch.load(self.ckpt_path, map_location="cpu", weights_only=False)
            cfg = _merge_saved_config(cfg, ckpt["config"], f"run {self.run_dir}", log)
        elif init_from is not None and Path(init_from).suffix == ".pt":
            if not Path(init_from).is_file():
                raise InputError(f"--init-from checkpoint not found: {init_from}")
            ckpt = torch.load(init_from, map_location="cpu", weights_only=False)
            cfg = _merge_saved_config(cfg, ckpt["config"], f"checkpoint {init_from}", log)
            init_from = None
        else:
            stats = read_manifest(cfg.data_dir).get("height_stats", {})
            if not cfg.slope_scale:
                cfg = replace(cfg, slope_scale=_round_sig(float(stats["suggested_slope_scale"])))
            if cfg.height_scale == "per_dx" and not cfg.scale_dx_m:
                table = stats.get("median_crop_std_over_dx_by_dx", {})
                if not table:
                    raise InputError(f"dataset {cfg.data_dir} has no per-dx height statistics; rebuild it")
                dxs = sorted(float(k) for k in table)
                cfg = replace(cfg, scale_dx_m=tuple(dxs),
                              scale_slope=tuple(_round_sig(float(table[f"{d:g}"])) for d in dxs))
        self.cfg = cfg
        torch.set_num_threads(cfg.threads)

        self.train_set = TileSet(cfg.data_dir, "train")
        if len(self.train_set) == 0:
            raise InputError(f"dataset {cfg.data_dir} has no training tiles")
        self.val_set = TileSet(cfg.data_dir, "val")

        self.pcfg = cfg.prior_config(cfg.slope_scale)
        torch.manual_seed(cfg.seed)
        self.model = TerrainPrior(self.pcfg).to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.rng = np.random.default_rng(cfg.seed)
        self.tgen = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.elapsed_s = 0.0
        self.rewarm_from: int | None = None
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.ema.load_state_dict({k: v.float() for k, v in ckpt["ema"].items()})
            if "optimizer" in ckpt:
                self.opt.load_state_dict(ckpt["optimizer"])
            self.rng.bit_generator.state = ckpt["np_rng"]
            self.tgen.set_state(ckpt["torch_rng"])
            torch.set_rng_state(ckpt["torch_global_rng"])
            self.step = int(ckpt["step"])
            self.elapsed_s = float(ckpt.get("elapsed_s", 0.0))
            if "optimizer" not in ckpt:  # compact checkpoint: fresh AdamW moments, short LR re-warm-up
                self.rewarm_from = self.step
            self.log(f"resumed at step {self.step}" + (" (compact checkpoint, fresh optimizer)" if self.rewarm_from is not None else ""))
        elif init_from is not None:
            warm = load_prior(init_from)
            if warm.cfg.architecture() != self.pcfg.architecture():
                raise InputError(f"--init-from {init_from}: its prior architecture differs from this run's")
            self.model.unet.load_state_dict(warm.unet.state_dict())
            self.ema.unet.load_state_dict(warm.unet.state_dict())
            meta = json.loads(Path(init_from).with_suffix(".json").read_text())
            self.step = int(meta.get("training", {}).get("step", 0))
            self.rewarm_from = self.step
            self.log(f"warm start from {init_from} (EMA weights, fresh optimizer) at step {self.step}")
        self._data_var = self._make_data_var() if cfg.loss_weighting == "level_variance" else None
        cfg.save(self.run_dir / "config.json")
        self.csv_path = self.run_dir / "loss.csv"
        if not self.csv_path.is_file():
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(CSV_FIELDS)
        else:  # after a crash the log may run past the checkpoint: drop those rows
            with open(self.csv_path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
            with open(self.csv_path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
                w.writeheader()
                w.writerows(rows)
        self._val = self._make_val_batches()

    # ------------------------------------------------------------------ helpers
    def _make_data_var(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """dx -> (median crop std of z/dx / s)^2 * (1 + jitter^2), interpolated in log2(dx)."""
        med = self.train_set.manifest.get("height_stats", {}).get("median_crop_std_over_dx_by_dx", {})
        if not med:
            return lambda dx: torch.ones_like(dx)
        lv = np.array(sorted(float(k) for k in med))
        var = np.array([(med[f"{d:g}"] / self.pcfg.slope_scale_at(d)) ** 2 * (1 + self.cfg.z_ref_jitter**2)
                        for d in lv])
        lx, lvv = np.log2(lv), np.log(var)

        def f(dx: torch.Tensor) -> torch.Tensor:
            v = np.exp(np.interp(np.log2(dx.numpy().astype(np.float64)), lx, lvv))
            return torch.from_numpy(v.astype(np.float32))

        self.log("data variance by dx: " + ", ".join(f"{d:g}: {v:.3g}" for d, v in zip(lv, np.exp(lvv))))
        return f

    def _make_val_batches(self) -> list[tuple[torch.Tensor, ...]]:
        src = self.val_set if len(self.val_set) else None
        if src is None or self.cfg.val_batches <= 0:
            return []
        rng = np.random.default_rng(12345)
        g = torch.Generator().manual_seed(12345)
        out = []
        for _ in range(self.cfg.val_batches):
            x0, dx = src.batch(rng, self.cfg.batch_size, self.cfg.crop_cells, self.pcfg.slope_scale_at,
                               level_power=0.0, jitter=self.cfg.z_ref_jitter, augment=False)
            t = torch.randint(0, self.pcfg.num_train_timesteps, (x0.shape[0],), generator=g)
            eps = torch.randn(x0.shape, generator=g)
            out.append((x0, dx, t, eps))
        return out

    def val_loss(self) -> float | None:
        if not self._val:
            return None
        with torch.no_grad():
            return float(np.mean([_loss(self.ema, *b, data_var=self._data_var).item() for b in self._val]))

    def save_checkpoint(self) -> Path:
        state = {
            "config": self.cfg.to_dict(),
            "prior_config": self.pcfg.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "np_rng": self.rng.bit_generator.state,
            "torch_rng": self.tgen.get_state(),
            "torch_global_rng": torch.get_rng_state(),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
        }
        tmp = self.ckpt_path.with_name("checkpoint.pt.tmp")
        torch.save(state, tmp)
        if self.ckpt_path.is_file():
            self.ckpt_path.replace(self.run_dir / "checkpoint.prev.pt")
        tmp.replace(self.ckpt_path)
        return self.ckpt_path

    def export(self, val_loss: float | None = None) -> Path | None:
        if not self.cfg.export_dir:
            return None
        out = Path(self.cfg.export_dir)
        # fp16 unless it visibly changes the prediction
        x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
        half = copy.deepcopy(self.ema).to(memory_format=torch.contiguous_format)
        for p in half.parameters():
            p.data = p.data.half().float()
        with torch.no_grad():
            ref = self.ema(x, torch.tensor([100, 700]), torch.tensor([60.0, 960.0]))
            got = half(x, torch.tensor([100, 700]), torch.tensor([60.0, 960.0]))
        rel = float((got - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-12))
        dtype = torch.float16 if rel < 1e-2 else torch.float32
        extra = {
            "training": {
                "step": self.step,
                "elapsed_h": round(self.elapsed_s / 3600, 3),
                "val_loss": val_loss,
                "fp16_rel_rms_change": rel,
                "crop_cells": self.cfg.crop_cells,
                "batch_size": self.cfg.batch_size,
                "run_config": {k: v for k, v in self.cfg.to_dict().items() if k not in ("run_dir", "export_dir")},
                "dataset_counts": self.train_set.manifest.get("counts"),
                "heldout_regions": self.train_set.manifest.get("heldout_regions"),
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        }
        wp, _ = save_prior(self.ema, out / "prior.safetensors", dtype=dtype, extra=extra)
        self._write_resume(out / "resume")
        return wp

    def compact_state(self) -> dict[str, Any]:
        """Checkpoint without optimizer moments and with fp16 EMA (resumable, ~6 bytes/param)."""
        return {
            "config": self.cfg.to_dict(),
            "prior_config": self.pcfg.to_dict(),
            "model": self.model.state_dict(),
            "ema": {k: v.half() if v.is_floating_point() else v for k, v in self.ema.state_dict().items()},
            "np_rng": self.rng.bit_generator.state,
            "torch_rng": self.tgen.get_state(),
            "torch_global_rng": torch.get_rng_state(),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "compact": True,
        }

    def _write_resume(self, d: Path) -> Path | None:
        """Copy the full checkpoint to ``d`` if small enough, else a compact one if that fits."""
        limit = self.cfg.resume_copy_max_mb * 2**20
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "checkpoint.pt.tmp"
        if self.ckpt_path.is_file() and self.ckpt_path.stat().st_size < limit:
            shutil.copyfile(self.ckpt_path, tmp)
        else:
            torch.save(self.compact_state(), tmp)
            if tmp.stat().st_size >= limit:
                tmp.unlink()
                self.log(f"resume checkpoint would exceed {self.cfg.resume_copy_max_mb} MB; not copied")
                return None
        tmp.replace(d / "checkpoint.pt")
        shutil.copyfile(self.run_dir / "config.json", d / "config.json")
        return d / "checkpoint.pt"

    def sample_grid(self) -> Path:
        from pixels2peaks.training.viz import save_grid

        crop = self.cfg.crop_cells
        levels = self.train_set.levels
        rng = np.random.default_rng(7)
        tiles, dxs, labels = [], [], []
        for d in levels:  # real crops, top row
            t = self.train_set.tiles[d][rng.integers(len(self.train_set.tiles[d]))]
            tiles.append(t[:crop, :crop])
            dxs.append(d)
            labels.append(f"real {d:g} m")
        for d in levels:
            x = sample(self.ema, 1, crop, d, steps=self.cfg.sample_steps, seed=int(d))
            tiles.append(self.pcfg.normalization(d).decode(x[0, 0].numpy()))
            dxs.append(d)
            labels.append(f"gen {d:g} m")
        return save_grid(tiles, dxs, self.run_dir / "samples" / f"step_{self.step:07d}.png",
                         ncols=len(levels), labels=labels)

    # ------------------------------------------------------------------ loop
    def run(self) -> dict[str, Any]:
        from pixels2peaks.training.viz import plot_loss

        cfg = self.cfg
        stop = _Stop()
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old[sig] = signal.signal(sig, stop)
            except ValueError:  # not in main thread
                pass
        T = self.pcfg.num_train_timesteps
        t_start = time.monotonic()
        last_ckpt = last_export = last_sample = t_start
        interval_losses: list[float] = []
        t_log = time.monotonic()
        steps_this_run = 0
        self.model.train()
        self.log(
            f"training: {self.model.num_params / 1e6:.2f}M params, s={self.pcfg.slope_scale}, "
            f"{len(self.train_set)} train tiles {self.train_set.counts()}, {len(self.val_set)} val tiles, "
            f"batch {cfg.batch_size}x{cfg.crop_cells}^2, threads {cfg.threads}, step {self.step}/{cfg.total_steps}"
        )
        reason = "total_steps reached"
        try:
            while self.step < cfg.total_steps:
                if stop.flag:
                    reason = "signal"
                    break
                if cfg.max_steps and steps_this_run >= cfg.max_steps:
                    reason = "max_steps"
                    break
                if cfg.max_hours and time.monotonic() - t_start > cfg.max_hours * 3600:
                    reason = "max_hours"
                    break
                lr = cfg.lr_at(self.step)
                if self.rewarm_from is not None and self.step - self.rewarm_from < REWARM_STEPS:
                    lr *= (self.step - self.rewarm_from + 1) / REWARM_STEPS
                for gp in self.opt.param_groups:
                    gp["lr"] = lr
                x0, dx = self.train_set.batch(
                    self.rng, cfg.batch_size, cfg.crop_cells, self.pcfg.slope_scale_at,
                    level_power=cfg.level_weight_power, jitter=cfg.z_ref_jitter, augment=cfg.augment,
                )
                t = sample_timesteps(cfg.batch_size, T, self.tgen, cfg.high_noise_fraction, cfg.high_noise_min_t)
                eps = torch.randn(x0.shape, generator=self.tgen)
                loss = _loss(self.model, x0, dx, t, eps, data_var=self._data_var)
                if not torch.isfinite(loss):
                    raise RuntimeError(f"non-finite loss at step {self.step}")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.opt.step()
                self.step += 1
                steps_this_run += 1
                decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
                ema_update(self.ema, self.model, decay)
                interval_losses.append(loss.item())
                now = time.monotonic()
                if self.step % cfg.log_every == 0:
                    sps = len(interval_losses) / max(now - t_log, 1e-9)
                    self.elapsed_s += now - t_log
                    t_log = now
                    self._write_csv(np.mean(interval_losses), lr, sps, None)
                    self.log(f"step {self.step} loss {np.mean(interval_losses):.4f} lr {lr:.2e} {sps:.2f} steps/s")
                    interval_losses = []
                if now - last_ckpt >= cfg.checkpoint_every_s:
                    self._checkpoint_and_val(plot_loss)
                    last_ckpt = time.monotonic()
                if now - last_sample >= cfg.sample_every_s:
                    self.ema.eval()
                    p = self.sample_grid()
                    self.log(f"sample grid {p}")
                    last_sample = time.monotonic()
                if now - last_export >= cfg.export_every_s:
                    vl = self.val_loss()
                    p = self.export(vl)
                    if p:
                        self.log(f"exported EMA weights to {p} (step {self.step})")
                    last_export = time.monotonic()
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
        self.elapsed_s += time.monotonic() - t_log
        vl = self._checkpoint_and_val(plot_loss)
        exported = self.export(vl)
        self.log(f"stopped ({reason}) at step {self.step}; checkpoint {self.ckpt_path}")
        return {"step": self.step, "reason": reason, "val_loss": vl, "checkpoint": str(self.ckpt_path),
                "exported": str(exported) if exported else None}

    def _write_csv(self, loss: float | None, lr: float | None, sps: float | None, val: float | None) -> None:
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow([
                self.step, round(self.elapsed_s, 1),
                "" if loss is None else f"{loss:.6f}", "" if lr is None else f"{lr:.3e}",
                "" if sps is None else f"{sps:.3f}", "" if val is None else f"{val:.6f}",
            ])

    def _checkpoint_and_val(self, plot_loss: Callable) -> float | None:
        vl = self.val_loss()
        if vl is not None:
            self._write_csv(None, None, None, vl)
            self.log(f"step {self.step} val_loss {vl:.4f}")
        self.save_checkpoint()
        try:
            plot_loss(self.csv_path, self.run_dir / "loss.png")
        except Exception as exc:  # noqa: BLE001 - plotting must never stop training
            self.log(f"loss plot failed: {exc}")
        return vl


def train(cfg: TrainConfig, *, fresh: bool = False, init_from: str | Path | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) the prior described by ``cfg``; returns a summary dict."""
    return Trainer(cfg, log=log, fresh=fresh, init_from=init_from).run()
