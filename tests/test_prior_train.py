import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from pixels2peaks.training.synthetic import fractal
from pixels2peaks.diffusion.model import load_prior
from pixels2peaks.errors import InputError
from pixels2peaks.training.config import TrainConfig, load_train_config
from pixels2peaks.training.dataset import CurationConfig, build_dataset
from pixels2peaks.training.train import Trainer, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from pixels2peaks.io import write_geotiff

    root = tmp_path_factory.mktemp("prior")
    src = root / "dems"
    src.mkdir()
    for i in range(3):
        write_geotiff(src / f"m{i}.tif", fractal(192, 10 + i, 2500.0), dx_m=30.0)
    cfg = CurationConfig(tile_cells=64, stride_cells=32, dx_levels_m=(30.0, 60.0), thumb_patch_cells=16)
    build_dataset([str(src)], root / "ds", cfg)
    return root / "ds"


def tiny(dataset, run_dir, **kw) -> TrainConfig:
    base = dict(
        data_dir=str(dataset), run_dir=str(run_dir), export_dir="", crop_cells=32, batch_size=8,
        block_out_channels=(32, 32), attention_levels=(1,), layers_per_block=1, lr=2e-3, lr_min=1e-4,
        warmup_steps=5, total_steps=400, log_every=10, checkpoint_every_s=1e9, export_every_s=1e9,
        sample_every_s=1e9, val_batches=2, threads=1, seed=0, ema_decay=0.9,
    )
    base.update(kw)
    return TrainConfig(**base)


def _losses(run_dir):
    with open(run_dir / "loss.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["loss"]]


def test_tiny_model_loss_falls(dataset, tmp_path):
    res = train(tiny(dataset, tmp_path / "run", max_steps=120), log=lambda s: None)
    assert res["step"] == 120 and res["reason"] == "max_steps"
    losses = _losses(tmp_path / "run")
    assert len(losses) == 12
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:2])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["slope_scale"] > 0  # resolved from the manifest
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_resume_is_exact(dataset, tmp_path):
    train(tiny(dataset, tmp_path / "a", max_steps=12), log=lambda s: None)
    train(tiny(dataset, tmp_path / "b", max_steps=6), log=lambda s: None)
    train(tiny(dataset, tmp_path / "b", max_steps=6), log=lambda s: None)  # resumes at step 6
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 12
    for k in a["ema"]:
        torch.testing.assert_close(a["ema"][k], b["ema"][k], atol=1e-6, rtol=1e-5)


def test_resume_refuses_other_model(dataset, tmp_path):
    train(tiny(dataset, tmp_path / "r", max_steps=2), log=lambda s: None)
    with pytest.raises(InputError):
        Trainer(tiny(dataset, tmp_path / "r", block_out_channels=(32, 64)), log=lambda s: None)


def test_export_and_sample_grid(dataset, tmp_path):
    cfg = tiny(dataset, tmp_path / "run", export_dir=str(tmp_path / "w"), max_steps=3, sample_steps=2,
               resume_copy_max_mb=1000)
    tr = Trainer(cfg, log=lambda s: None)
    tr.run()
    m = load_prior(tmp_path / "w" / "prior.safetensors")
    meta = json.loads((tmp_path / "w" / "prior.json").read_text())
    assert meta["training"]["step"] == 3 and m.cfg.slope_scale == tr.pcfg.slope_scale
    assert (tmp_path / "w" / "resume" / "checkpoint.pt").is_file()
    png = tr.sample_grid()
    assert png.is_file()


def test_toml_config(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[data]\ncrop_cells = 64\n[run]\nthreads = 2\nseed = 3\n')
    cfg = load_train_config(p)
    assert (cfg.crop_cells, cfg.threads, cfg.seed) == (64, 2, 3)
    p.write_text("[data]\nnot_a_key = 1\n")
    with pytest.raises(InputError):
        load_train_config(p)
    with pytest.raises(InputError):
        load_train_config(tmp_path / "missing.toml")
    assert replace(cfg, lr=1e-4).lr_at(10_000_000) == pytest.approx(cfg.lr_min)


def test_shipped_config_is_valid():
    from pathlib import Path

    cfg = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "prior.toml")
    assert cfg.threads >= 1 and cfg.crop_cells % cfg.prior_config().downsample_factor == 0


def test_compact_resume_checkpoint(dataset, tmp_path):
    cfg = tiny(dataset, tmp_path / "run", export_dir=str(tmp_path / "w"), max_steps=4)
    tr = Trainer(cfg, log=lambda s: None)
    tr.run()
    full = (tmp_path / "run" / "checkpoint.pt").stat().st_size / 2**20
    # limit between compact and full size -> the compact checkpoint is written
    tr.cfg = replace(tr.cfg, resume_copy_max_mb=full * 0.7)
    p = tr._write_resume(tmp_path / "w" / "resume2")
    assert p is not None and torch.load(p, weights_only=False).get("compact")
    # a fresh machine: new run dir, warm start from the compact checkpoint continues the step count
    logs = []
    res = train(tiny(dataset, tmp_path / "run2", max_steps=3), init_from=p, log=logs.append)
    assert res["step"] == 7 and any("compact" in s for s in logs)
    tr.cfg = replace(tr.cfg, resume_copy_max_mb=full * 0.01)
    assert tr._write_resume(tmp_path / "w" / "resume3") is None


def test_sample_timesteps_high_noise_share():
    from pixels2peaks.training.train import sample_timesteps

    g = torch.Generator().manual_seed(0)
    plain = sample_timesteps(4000, 1000, torch.Generator().manual_seed(3))
    torch.testing.assert_close(plain, torch.randint(0, 1000, (4000,), generator=torch.Generator().manual_seed(3)))
    t = sample_timesteps(20000, 1000, g, 0.5, 900)
    assert t.min() >= 0 and t.max() <= 999
    share = float((t >= 900).float().mean())  # 0.5 + 0.5 * 0.1
    assert abs(share - 0.55) < 0.02
    assert abs(float((t < 900).float().mean()) - 0.45) < 0.02


def test_high_noise_fraction_may_change_on_resume(dataset, tmp_path):
    cfg = tiny(dataset, tmp_path / "run", max_steps=2)
    train(cfg, log=lambda s: None)
    lines = []
    out = train(replace(cfg, high_noise_fraction=0.5, max_steps=2), log=lines.append)
    assert out["step"] == 4 and any("high_noise_fraction 0.0 -> 0.5" in s for s in lines)
    with pytest.raises(InputError):
        TrainConfig(high_noise_fraction=1.5)


def test_ema_update_blends_parameters_and_copies_buffers():
    from pixels2peaks.training.train import ema_update

    model, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(4.0)
        ema.weight.zero_()
        model.running_mean.fill_(5.0)
    ema_update(ema, model, 0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 1.0))  # 0.75 * 0 + 0.25 * 4
    assert torch.equal(ema.running_mean, model.running_mean)
    ema_update(ema, model, 0.0)
    assert torch.equal(ema.weight, model.weight)
