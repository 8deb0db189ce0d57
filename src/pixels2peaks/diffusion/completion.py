"""Guided terrain completion (paper §5): ``complete(z_v, m_v, z_max, dx_m, config) -> result``.

Pipeline (``docs/guided-completion.md`` has the details and the measurements behind the defaults):

1. **Initialization** (§5.3): by default (``init="lem"``, since session 12) a landscape evolution
   model's steady state with the visible terrain's local relief
   (:func:`~pixels2peaks.diffusion.initialization.lem_init`; Algorithm 3 when fastscapelib is
   missing, with a warning); ``"procedural"``: the paper's Algorithm 3
   (:func:`~pixels2peaks.diffusion.initialization.procedural_init`); the ablation baselines
   ``"laplacian"`` (harmonic interpolation) / ``"noise"`` (pure noise, walk from ``t = 1``).
2. **Guided tiled diffusion** (§5.1, §5.2, §5.4): SDEdit from ``t_start`` with a walk of
   ``steps`` steps of the named ``sampler`` (DDIM by default); the denoiser is ``guided(SpotTiledDenoiser(ModelDenoiser(prior)))`` with the
   composite loss of Eq. 5 evaluated on the whole map in normalized units, and RePaint (Eq. 3)
   re-injects the noised known cells before every step with ``t >= repaint_t_min``.
3. **Polishing** (§5.5): Algorithm 4 at ``dx / u`` (see :mod:`~pixels2peaks.diffusion.polishing`).
4. **Known cells**: with ``paste_known`` (default) the known cells are put back at the end, so
   the output equals ``z_v`` on them: bit-exactly without polishing; after polishing, every
   ``u x u`` output block of a known cell averages to ``z_v`` (back-projected bicubic upsampling,
   ``|block mean - z_v| <= 1e-4 m + 1e-6 x relief``), except where the final drainage filled a
   pit that the upsampling made among the known cells (``metrics["drain_known_filled_cells"]``).
5. **Drainage** (``drain``, default; ours): the map is drained to its border around the known
   cells, lowering hidden cells into V-shaped valleys (:func:`drain_known`).

Deterministic for a given ``seed`` on one machine (all noise is drawn on the CPU from seeded
generators; tile shifts from a seeded numpy generator). ``device``: ``auto`` (CUDA if available),
``cpu`` or ``cuda``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch

from pixels2peaks.diffusion.guidance import CompletionLoss, GuidanceConfig, guided
from pixels2peaks.diffusion.initialization import laplacian_init, lem_init, procedural_init
from pixels2peaks.diffusion.polishing import (
    PolishConfig,
    back_projected_upsample,
    block_mean,
    polish,
    upsample_bicubic,
    upsample_nearest,
)
from pixels2peaks.diffusion.sampling import ModelDenoiser, Profiler, RePaint, get_sampler, section
from pixels2peaks.diffusion.schedule import noise_to, walk_timesteps
from pixels2peaks.diffusion.tiling import SpotTiledDenoiser
from pixels2peaks.errors import InputError
from pixels2peaks.terrain.lem import fastscapelib_available
from pixels2peaks.terrain.view_error import occluded_view_error, view_errors, visible_view_error

__all__ = [
    "CompletionConfig",
    "CompletionResult",
    "PolishConfig",
    "GuidanceConfig",
    "complete",
    "resample_inputs",
    "vve",
    "ove",
    "view_errors",
    "INIT_MODES",
]

INIT_MODES = ("lem", "procedural", "laplacian", "noise")
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CompletionConfig:
    """Everything that determines a completion (saved with the result as ``to_dict()``)."""

    seed: int = 0
    steps: int = 20
    t_start: float = 0.5
    init: str = "lem"
    init_octaves: int | None = None
    init_noise_gain: float = 0.5
    init_smooth_iters: int = 8
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    repaint_t_min: float = 0.05
    tile_cells: int | None = None  # None: the prior's inference tile (PriorConfig.sample_size, 256)
    tile_min_edge_cells: int = 64
    tile_batch: int = 4
    tile_shift: str = "random"
    tile_overlap: int = 16  # cells blended between neighbouring tiles (0 = the paper's contiguous tiles)
    polish: PolishConfig = field(default_factory=PolishConfig)
    paste_known: bool = True
    #: the denoising walk, by name (:data:`~pixels2peaks.diffusion.sampling.SAMPLERS`)
    sampler: str = "ddim"
    #: end by draining the map around the known cells (:func:`drain_known`)
    drain: bool = True
    #: then lift the free cells deeper than this many dx below their 5 x 5 median (slots,
    #: :func:`lift_slots`; None = off)
    slot_depth_dx: float | None = 5.0
    eta: float = 0.0
    device: str = "auto"
    bf16: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.guidance, dict):
            object.__setattr__(self, "guidance", GuidanceConfig(**self.guidance))
        if isinstance(self.polish, dict):
            object.__setattr__(self, "polish", PolishConfig(**self.polish))
        if self.steps < 1:
            raise InputError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 < float(self.t_start) <= 1.0:
            raise InputError(f"t_start must be in (0, 1], got {self.t_start}")
        if self.init not in INIT_MODES:
            raise InputError(f"init must be one of {INIT_MODES}, got {self.init!r}")
        get_sampler(self.sampler)  # a one-line error for an unknown name
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not 0.0 <= self.repaint_t_min <= 1.0:
            raise InputError(f"repaint_t_min must be in [0, 1], got {self.repaint_t_min}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["polish"]["ts"] = list(d["polish"]["ts"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompletionConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown completion config key(s): {sorted(unknown)}")
        return cls(**d)

    def replace(self, **kw: Any) -> CompletionConfig:
        return replace(self, **kw)


@dataclass
class CompletionResult:
    """``z``: completed heightmap (metres, float32, ``(H', W')``), ``dx_m`` its cell size (half of
    the input's after ``u = 2`` polishing), ``known`` the known mask on that grid, ``z_main`` the
    result of the main diffusion at the input grid (before polishing), ``metrics`` (``mdd_m``,
    ``vve_m``, ``ove_m``, ...), ``timings`` (seconds per stage) and ``profile`` (exclusive seconds
    per section: unet, unet_backward, guidance_loss, breach, tiling, ...)."""

    z: np.ndarray
    dx_m: float
    known: np.ndarray
    z_main: np.ndarray
    config: CompletionConfig
    metrics: dict[str, float]
    timings: dict[str, float]
    profile: dict[str, dict[str, float]]
    upsample: int = 1
    history: list[dict] = field(default_factory=list)
    #: the polished map before the final projection (``PolishConfig.final_projection``), else None
    z_before_projection: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------
# view metrics (paper §7.3)
# ----------------------------------------------------------------------------------------------
# VVE / OVE (paper §7.3): the one definition is pixels2peaks.terrain.view_error
ove, vve = occluded_view_error, visible_view_error


# ----------------------------------------------------------------------------------------------
# input checks and resampling
# ----------------------------------------------------------------------------------------------
MIN_CELLS = 8


def _validate(z_v, m_v, z_max, dx_m):
    z_v = np.asarray(z_v, dtype=np.float64)
    m_v = np.asarray(m_v)
    if m_v.dtype != bool:
        m_v = m_v != 0
    if z_v.ndim != 2:
        raise InputError(f"visible heights must be a 2-D grid, got shape {z_v.shape}")
    if m_v.shape != z_v.shape:
        raise InputError(f"mask {m_v.shape} and visible heights {z_v.shape} differ in shape")
    if min(z_v.shape) < MIN_CELLS:
        raise InputError(f"heightmap {z_v.shape[0]}x{z_v.shape[1]} is too small (min {MIN_CELLS} cells a side)")
    try:
        dx = float(dx_m)
    except (TypeError, ValueError):
        raise InputError(f"dx must be a positive number of metres, got {dx_m!r}") from None
    if not math.isfinite(dx) or dx <= 0:
        raise InputError(f"dx must be a positive number of metres, got {dx_m!r}")
    n_known = int(m_v.sum())
    if n_known == 0:
        raise InputError("the mask marks no visible cell: nothing to complete from")
    if n_known == m_v.size:
        raise InputError("the mask marks every cell visible: nothing to complete")
    bad = m_v & ~np.isfinite(z_v)
    if bad.any():
        raise InputError(f"{int(bad.sum())} visible cell(s) have no finite height (NaN/inf where the mask is set)")
    zm = None
    if z_max is not None:
        zm = np.asarray(z_max, dtype=np.float64)
        if zm.shape != z_v.shape:
            raise InputError(f"zmax {zm.shape} and visible heights {z_v.shape} differ in shape")
        zm = np.where(np.isnan(zm), np.inf, zm)
        if np.isneginf(zm).any():
            raise InputError("zmax contains -inf")
        relief = float(np.ptp(z_v[m_v])) if n_known > 1 else 0.0
        tol = 0.01 + 1e-3 * relief
        below = m_v & (zm < z_v - tol)
        if below.any():
            worst = float(np.max((z_v - zm)[below]))
            raise InputError(
                f"zmax is below the visible heights at {int(below.sum())} visible cell(s) (by up to {worst:.3g} m): "
                "zmax and the visible heightmap do not belong together"
            )
    return z_v, m_v, zm, dx


def resample_inputs(
    z_v: np.ndarray, m_v: np.ndarray, z_max: np.ndarray | None, dx_m: float, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """Resample the inputs so the longer side has ``size`` cells (square cells kept, ``dx``
    scaled by ``max(H, W) / size``): heights by area-weighted bilinear resampling of the known
    cells only, the mask by majority (a cell is known when >= half of its footprint is), ``Z_max``
    by the minimum over each cell's footprint when shrinking (conservative), nearest otherwise."""
    import torch.nn.functional as F

    H, W = m_v.shape
    if size < MIN_CELLS:
        raise InputError(f"--size must be >= {MIN_CELLS}, got {size}")
    f = max(H, W) / float(size)
    h, w = max(1, round(H / f)), max(1, round(W / f))
    if (h, w) == (H, W):
        return z_v, m_v, z_max, float(dx_m)
    m = torch.from_numpy(m_v.astype(np.float64))[None, None]
    zk = torch.from_numpy(np.where(m_v, z_v, 0.0).astype(np.float64))[None, None]
    mode = "area" if f > 1 else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    mf = F.interpolate(m, size=(h, w), mode=mode, **kw)[0, 0].numpy()
    zs = F.interpolate(zk, size=(h, w), mode=mode, **kw)[0, 0].numpy()
    m2 = mf >= 0.5 - 1e-9
    z2 = np.where(m2, zs / np.maximum(mf, 1e-12), np.nan)
    zm2 = None
    if z_max is not None:
        zm = np.where(np.isfinite(z_max), z_max, 1e30)
        t = torch.from_numpy(zm.astype(np.float64))[None, None]
        if f > 1:
            zm2 = -F.adaptive_max_pool2d(-t, (h, w))[0, 0].numpy()
        else:
            zm2 = F.interpolate(t, size=(h, w), mode="nearest")[0, 0].numpy()
        zm2 = np.where(zm2 >= 1e29, np.inf, zm2)
        zm2 = np.where(m2, np.maximum(zm2, np.nan_to_num(z2, nan=-np.inf)), zm2)
    return z2, m2, zm2, float(dx_m) * f


# ----------------------------------------------------------------------------------------------
# completion
# ----------------------------------------------------------------------------------------------
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


def _t(a: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None].to(device)


class _Walker:
    """Builds the guided tiled denoiser for one grid and runs RePaint-anchored DDIM walks."""

    def __init__(self, model, cfg: CompletionConfig, *, dx_m, z_ref, known, z_known, z_max, tile_seed,
                 generator, profiler, history, repaint_t_min):
        self.cfg = cfg
        self.device = next(model.parameters()).device
        self.norm = model.cfg.normalization(dx_m, z_ref)
        self.abar = model.alphas_cumprod.detach().cpu().to(torch.float64)
        self.T = len(self.abar)
        self.generator = generator
        known_t = _t(known.astype(np.float32), self.device)
        zk_n = _t(self.norm.encode(np.where(known, z_known, 0.0)), self.device)
        zmax_n = None
        if z_max is not None:
            zm = np.where(np.isfinite(z_max), self.norm.encode(np.where(np.isfinite(z_max), z_max, 0.0)), np.inf)
            zmax_n = _t(zm, self.device)
        base = ModelDenoiser(model, dx_m, bf16=cfg.bf16, profiler=profiler)
        self.tiled = SpotTiledDenoiser(
            base, cfg.tile_cells, seed=tile_seed, shift=cfg.tile_shift, min_edge_cells=cfg.tile_min_edge_cells,
            max_batch=cfg.tile_batch, overlap_cells=cfg.tile_overlap, profiler=profiler,
        )
        self.denoiser = self.tiled
        self.guided = None
        g = cfg.guidance
        if g.active:
            self.loss = CompletionLoss(known_t, g, z_max=zmax_n, profiler=profiler)
            self.guided = guided(self.tiled, self.loss, g.scale, g.gradient_mode, kappa_max=g.kappa_max,
                                 profiler=profiler)
            self.guided.history = history
            self.denoiser = self.guided
        self.hook = RePaint(zk_n, known_t, self.abar, repaint_t_min)

    def walk(self, z_m: np.ndarray | None, t_start: float, steps: int, on_step) -> np.ndarray:
        ts = walk_timesteps(self.T, t_start, steps)
        if z_m is None:
            x = torch.randn((1, 1) + self.hook.mask.shape[-2:], generator=self.generator).to(self.device)
        else:
            x = noise_to(_t(self.norm.encode(z_m), self.device), ts[0], self.abar, self.generator)
        x0 = get_sampler(self.cfg.sampler)(self.denoiser, x, ts, known=self.hook, callback=on_step,
                                           generator=self.generator, eta=self.cfg.eta)
        return self.norm.decode(x0[0, 0].detach().cpu().numpy().astype(np.float64))


def _fit_overlap(overlap: int, tile: int, multiple: int) -> int:
    """The largest tile overlap ``<= overlap`` that the tiling accepts: below a quarter of the
    tile and ``2 x overlap`` a multiple of the U-Net's ``multiple`` (small test priors have small
    tiles; the result saves the value used)."""
    half = max(1, multiple // 2) if multiple % 2 == 0 else multiple
    o = min(int(overlap), tile // 4)
    return max(0, o - o % half)


#: free holes of at most this many output cells, cut off from the border by known cells, count
#: as part of the known cells' basins (:func:`drain_known`)
HOLE_CELLS = 64


def known_slope(z_v: np.ndarray, m_v: np.ndarray, dx_m: float) -> float:
    """Median slope (tangent) of the known cells whose 4 neighbours are known too; 0.5 when
    there are none. Clipped to [0.05, 1.5]."""
    z = np.where(m_v, z_v, np.nan)
    gy, gx = np.gradient(z, float(dx_m))
    s = np.hypot(gx, gy)
    s = s[np.isfinite(s)]
    return float(np.clip(np.median(s), 0.05, 1.5)) if s.size else 0.5


def fill_basins(z: np.ndarray, fixed: np.ndarray, hole_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """``(filled, inner)``: ``z`` with the depressions of ``inner`` filled, ``inner`` being the
    fixed cells plus the holes of at most ``hole_cells`` free cells that they cut off from the
    border (:func:`~pixels2peaks.terrain.hydrology.fill_enclosed`; cells outside ``inner`` are
    outlets and keep their heights)."""
    from scipy.ndimage import label

    from pixels2peaks.terrain.hydrology import fill_enclosed

    lab, _ = label(~fixed, structure=np.ones((3, 3)))
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    small = np.flatnonzero(np.bincount(lab.ravel()) <= hole_cells)
    inner = fixed | ((lab > 0) & ~np.isin(lab, edge) & np.isin(lab, small))
    return np.where(inner, fill_enclosed(z, inner), z), inner


def lift_slots(z: np.ndarray, free: np.ndarray, dx_m: float, depth_dx: float = 5.0,
               margin: float = 0.9, iterations: int = 12) -> tuple[np.ndarray, int]:
    """``(z', lifted)``: the ``free`` cells lying more than ``depth_dx`` cells (``depth_dx * dx_m``
    metres) below the median of their 5 x 5 neighbourhood -- slots, the issue [hidden-terrain]
    criterion (:func:`pixels2peaks.evaluation.artifacts.slot_mask` measures the same) -- raised
    to ``margin * depth_dx * dx_m`` below it, repeated until none is left (raising a cell raises
    its neighbours' medians, so a few passes); then the free cells of the depressions the lift
    made are filled to their spill height (Priority-Flood, the known cells as given). Most slots
    are one- or two-cell hidden gaps between visible fingers, which the drainage's carve cannot
    widen because known cells stand on both sides. Cells only rise; known cells never change."""
    from scipy.ndimage import median_filter

    from pixels2peaks.terrain.hydrology import default_epsilon, fill_depressions

    z = np.asarray(z, dtype=np.float64)
    free = np.asarray(free, bool)
    lim = depth_dx * float(dx_m)
    out = z.copy()
    for _ in range(iterations):
        med = median_filter(out, size=5, mode="nearest")
        low = free & (med - out > lim)
        if not low.any():
            break
        out = np.where(low, med - margin * lim, out)
    lifted = int((out > z + 1e-6).sum())
    if lifted:
        filled = fill_depressions(out, default_epsilon(out))
        out = np.where(free, np.maximum(out, filled), out)
    return out, lifted


def drain_known(
    z: np.ndarray, fixed: np.ndarray, dx_m: float, *, side_slope: float, fill_fixed: bool = True,
    hole_cells: int = HOLE_CELLS, protect: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Final drainage of a completion (ours; issue [hidden-terrain]). Breaching the whole map
    and pasting the known cells back undid every carve through a known cell, so a visible valley
    whose outlet crosses hidden terrain stayed a pit ("the visible valley sits as a pit in a
    plateau").

    1. With ``fill_fixed``: fill the depressions wholly inside ``fixed`` and the holes of at
       most ``hole_cells`` free cells it cuts off from the border. After upsampling, the back-projected bicubic known cells of a rough visible
       surface get pits of their own, which nothing outside can drain
       (:func:`~pixels2peaks.terrain.hydrology.fill_enclosed`). Larger enclosed free regions
       are left to step 2's fill: raising the known cells of a whole reconstructed basin (one
       photo's visible valley: 27 000 cells by up to 336 m) would change the view. Cells of
       ``protect`` are never filled (the caller's own pits among the known cells, which were
       there before the upsampling).
    2. Drain the rest to the border, lowering only the other cells, with V-shaped valleys of
       side slope ``side_slope`` (tangent; the visible terrain's, :func:`known_slope`) instead
       of one-cell trenches (:func:`~pixels2peaks.terrain.hydrology.drain_around_fixed`).

    Returns the heights and ``known_filled_cells``, ``known_fill_max_m`` plus the drainage's
    counts."""
    from pixels2peaks.terrain.hydrology import default_epsilon, drain_around_fixed

    z = np.asarray(z, dtype=np.float64)
    info: dict[str, float] = {"known_filled_cells": 0, "known_fill_max_m": 0.0}
    if fill_fixed and fixed.any():
        zk, inner = fill_basins(z, fixed, hole_cells)
        rise = np.where(inner, zk - z, 0.0)
        if protect is not None:
            rise = np.where(protect, 0.0, rise)
        info = {"known_filled_cells": int(((rise > 0.01) & fixed).sum()),
                "known_fill_max_m": float(rise[fixed].max())}
        z = z + rise
    out, more = drain_around_fixed(z, fixed, dx_m, epsilon=default_epsilon(z), side_slope=side_slope)
    return out, {**info, **more}


def _n_steps(T: int, t: float, steps: int) -> int:
    return len(walk_timesteps(T, t, steps))


def complete(
    z_v: np.ndarray,
    m_v: np.ndarray,
    z_max: np.ndarray | None,
    dx_m: float,
    config: CompletionConfig | None = None,
    *,
    model: Any = None,
    progress: ProgressFn | None = None,
) -> CompletionResult:
    """Complete the occluded cells of ``z_v`` (metres; any value where ``m_v`` is False).

    ``m_v``: ``(H, W)`` bool, True = visible/known. ``z_max``: view bound (metres, ``None`` or
    non-finite = unbounded; it must not be below ``z_v`` on visible cells). ``model``: a
    :class:`~pixels2peaks.diffusion.model.TerrainPrior` (default: the shipped prior). ``progress``:
    ``progress(stage, done, total)`` with global step counts over all stages.
    The model is moved to the configured device, put in eval mode, channels_last on CPU, and its
    parameters get ``requires_grad=False`` (in place).
    Raises :class:`~pixels2peaks.errors.InputError` on bad input (see :func:`_validate`).
    """
    cfg = config or CompletionConfig()
    t_all = time.perf_counter()
    z_v, m_v, zm, dx = _validate(z_v, m_v, z_max, dx_m)
    device = _device(cfg.device)
    if model is None:
        from pixels2peaks.diffusion.model import load_default_model

        model = load_default_model()
    model = model.to(device).eval()
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    if cfg.tile_cells is None:  # the prior's tile; the result saves the resolved value
        cfg = cfg.replace(tile_cells=int(model.cfg.sample_size))
    cfg = cfg.replace(tile_overlap=_fit_overlap(cfg.tile_overlap, cfg.tile_cells, int(model.cfg.downsample_factor)))
    T = int(model.cfg.num_train_timesteps)
    profiler = Profiler()
    timings: dict[str, float] = {}
    history: list[dict] = []
    ss = np.random.SeedSequence(int(cfg.seed))
    s_init, s_tile_main, s_tile_polish = ss.spawn(3)
    gen = torch.Generator().manual_seed(int(cfg.seed))

    t_start = 1.0 if cfg.init == "noise" else float(cfg.t_start)
    pol = cfg.polish
    n_main = _n_steps(T, t_start, cfg.steps)
    n_pol = sum(_n_steps(T, t, pol.steps) for t in pol.ts) if pol.enabled else 0
    total = n_main + n_pol
    done = [0]

    def tick(stage: str):
        def cb(i, t, x, x0):
            done[0] += 1
            if progress is not None:
                progress(stage, done[0], total)

        return cb

    if progress is not None:
        progress("init", 0, total)

    # 1. initialization (metres)
    t0 = time.perf_counter()
    with section(profiler, "init"):
        init = cfg.init
        if init == "lem" and not fastscapelib_available():
            warnings.warn("the LEM start needs fastscapelib (pip install 'pixels2peaks[lem]'); "
                          "using the procedural start (Algorithm 3)", stacklevel=2)
            init = "procedural"
        if init == "lem":
            z_init = lem_init(z_v, m_v, zm, dx_m=dx, seed=np.random.default_rng(s_init), profiler=profiler)
        elif init == "procedural":
            z_init = procedural_init(
                z_v, m_v, zm, octaves=cfg.init_octaves, noise_gain=cfg.init_noise_gain,
                smooth_iters=cfg.init_smooth_iters, seed=np.random.default_rng(s_init), profiler=profiler,
            )
        else:
            z_init = laplacian_init(z_v, m_v, octaves=cfg.init_octaves)
    timings["init_s"] = time.perf_counter() - t0
    z_ref = float(z_v[m_v].mean())

    # 2. guided tiled diffusion at the input grid
    t0 = time.perf_counter()
    walker = _Walker(model, cfg, dx_m=dx, z_ref=z_ref, known=m_v, z_known=z_v, z_max=zm,
                     tile_seed=np.random.default_rng(s_tile_main), generator=gen, profiler=profiler, history=history,
                     repaint_t_min=cfg.repaint_t_min)
    z_main = walker.walk(None if cfg.init == "noise" else z_init, t_start, cfg.steps, tick("diffusion"))
    if cfg.paste_known:
        z_main = np.where(m_v, z_v, z_main)
    timings["diffusion_s"] = time.perf_counter() - t0

    # 3. polishing at dx / u
    z_out, dx_out, known_out, u = z_main, dx, m_v, 1
    proj_change = z_unprojected = None
    if pol.enabled and pol.ts:
        t0 = time.perf_counter()
        u = int(pol.upsample)
        dx_out = dx / u
        known_out = upsample_nearest(m_v, u)
        zm_out = None if zm is None else upsample_nearest(zm, u)
        ref = back_projected_upsample(z_main, u) if u > 1 else z_main
        z_up = upsample_bicubic(z_main, u)
        pwalker = _Walker(model, cfg, dx_m=dx_out, z_ref=z_ref, known=known_out, z_known=ref, z_max=zm_out,
                          tile_seed=np.random.default_rng(s_tile_polish), generator=gen, profiler=profiler,
                          history=history, repaint_t_min=cfg.repaint_t_min)
        cb = tick("polish")
        last = [None]
        z_out = polish(
            z_up, zm_out if zm_out is not None else np.full(z_up.shape, np.inf),
            lambda z, t: pwalker.walk(z, t, pol.steps, cb), pol.ts,
            breach_factor=pol.breach_factor, method="breach", final_projection=pol.final_projection,
            erosion_k=pol.erosion_k, fixed=known_out,
            profiler=profiler, callback=lambda i, z: last.__setitem__(0, z),
        )
        if pol.final_projection and last[0] is not None:
            proj_change = np.abs(z_out - last[0])
            z_unprojected = last[0] if not cfg.paste_known else np.where(known_out, ref, last[0])
        if cfg.paste_known:
            z_out = np.where(known_out, ref, z_out)
        timings["polish_s"] = time.perf_counter() - t0

    # 4. drainage around the known cells
    drain_info: dict[str, float] = {}
    if cfg.drain:
        t0 = time.perf_counter()
        with section(profiler, "drain"):
            fixed = known_out if cfg.paste_known else np.zeros(known_out.shape, bool)
            own = None  # basins the known cells already had at the input grid stay as given
            if u > 1 and cfg.paste_known:
                filled, _ = fill_basins(z_main.astype(np.float64), m_v, HOLE_CELLS // (u * u))
                own = upsample_nearest(filled - z_main > 1e-3, u)
            z_out, drain_info = drain_known(z_out, fixed, dx_out, side_slope=known_slope(z_v, m_v, dx),
                                            fill_fixed=u > 1, protect=own)
            if cfg.slot_depth_dx is not None:
                z_out, drain_info["slots_lifted"] = lift_slots(z_out, ~fixed, dx_out, cfg.slot_depth_dx)
        timings["drain_s"] = time.perf_counter() - t0

    # 5. metrics: MDD on the output grid, view errors on the input grid
    t0 = time.perf_counter()
    from pixels2peaks.terrain.hydrology import mean_depression_depth

    z_cmp = block_mean(z_out, u) if u > 1 else z_out
    metrics = {"mdd_m": float(mean_depression_depth(z_out)), **view_errors(z_cmp, z_v, zm, m_v)}
    metrics["mdd_main_m"] = float(mean_depression_depth(z_main))
    metrics.update({f"main_{k}": v for k, v in view_errors(z_main, z_v, zm, m_v).items()})
    metrics["known_max_abs_err_m"] = float(np.max(np.abs(z_cmp - z_v)[m_v]))
    metrics.update({f"drain_{k}": float(v) for k, v in drain_info.items()})
    if proj_change is not None:  # size of the final hard projection (occluded cells)
        metrics["final_projection_mean_abs_m"] = float(proj_change[~known_out].mean())
        metrics["final_projection_max_abs_m"] = float(proj_change[~known_out].max())
    timings["metrics_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all
    return CompletionResult(
        z=z_out.astype(np.float32),
        dx_m=dx_out,
        known=known_out,
        z_main=z_main.astype(np.float32),
        config=cfg,
        metrics=metrics,
        timings={k: round(v, 3) for k, v in timings.items()},
        profile=profiler.to_dict(),
        upsample=u,
        history=history,
        z_before_projection=None if z_unprojected is None else z_unprojected.astype(np.float32),
    )
