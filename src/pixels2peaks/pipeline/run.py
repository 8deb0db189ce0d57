"""``p2p run``: photo -> complete heightmap (paper §3-5): perception (§4, with the view bound
of Algorithm 2) then guided completion and polishing (§5), every stage cached.

:func:`run_photo` returns a :class:`RunResult`; :func:`pixels2peaks.pipeline.outputs.write_run`
writes it. The final heightmap is ``size_cells x size_cells``: perception projects onto a square
grid of ``size_cells / u`` cells (``u`` = the polishing upsampling, 2), the guided diffusion runs
there and polishing doubles it (as :func:`pixels2peaks.diffusion.completion.complete` does).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixels2peaks.cache import (
    NullReporter,
    StageCache,
    StageOutcome,
    StageReporter,
    array_digest,
    code_fingerprint,
    file_digest,
)
from pixels2peaks.camera import Camera
from pixels2peaks.diffusion.completion import CompletionConfig, complete
from pixels2peaks.errors import InputError, check_cell_size
from pixels2peaks.perception.geometry import ReconstructOptions
from pixels2peaks.perception.pipeline import VisibleOptions, VisibleResult, estimate_visible

__all__ = ["RunConfig", "Overrides", "RunResult", "run_photo", "RUN_STAGES"]

#: stages in order (the last two are timed by :func:`~pixels2peaks.pipeline.outputs.write_run`)
RUN_STAGES = ("segmentation", "geometry", "priors", "cleaning", "projection", "zmax", "completion",
              "previews", "write")
_COMPLETION_CODE = ("pixels2peaks.diffusion", "pixels2peaks.terrain")
MIN_SIZE_CELLS = 32
#: hidden heights may leave the elevation prior by this share of its range before a warning
PRIOR_MARGIN = 0.10
#: largest final side: perception's grid limit (ReconstructOptions.max_cells)
MAX_SIZE_CELLS = ReconstructOptions().max_cells


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a ``p2p run`` result (saved in ``report.json``).

    size_cells: side of the final square heightmap (cells), when ``dx_m`` is not given.
    dx_m: final cell size in metres (``None`` = automatic: the scene spans ``size_cells``);
        given, the grid covers the scene at that cell size and its size follows.
    perception: the perception options (backends, priors, pitch grid; its grid size and extent
        are set from the two fields above).
    completion: guided completion settings (seed, steps, device, polishing, ...).
    weights: prior weights (``.safetensors`` with its ``.json``); ``None`` = the shipped prior.
    """

    size_cells: int = 1024
    dx_m: float | None = None
    perception: VisibleOptions = VisibleOptions()
    completion: CompletionConfig = CompletionConfig()
    weights: str | None = None

    def __post_init__(self) -> None:
        u = self.upsample
        if self.size_cells < MIN_SIZE_CELLS or self.size_cells % u or self.size_cells > MAX_SIZE_CELLS:
            raise InputError(
                f"--size must be a multiple of {u} from {MIN_SIZE_CELLS} to {MAX_SIZE_CELLS} cells, got {self.size_cells}"
            )
        if self.dx_m is not None:
            object.__setattr__(self, "dx_m", check_cell_size(self.dx_m))

    @property
    def upsample(self) -> int:
        """Polishing upsampling factor ``u`` (1 without polishing)."""
        pol = self.completion.polish
        return int(pol.upsample) if pol.enabled and pol.ts else 1

    def visible_options(self) -> VisibleOptions:
        """Perception options: a square grid of ``size_cells / u`` cells (or cells of
        ``u dx_m``)."""
        u = self.upsample
        ro = dataclasses.replace(
            self.perception.reconstruct,
            target_cells=self.size_cells // u,
            dx_m=None if self.dx_m is None else self.dx_m * u,
        )
        return dataclasses.replace(self.perception, reconstruct=ro, extent="square")

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_cells": self.size_cells,
            "dx_m": self.dx_m,
            "perception": self.perception.to_dict(),
            "completion": self.completion.to_dict(),
            "weights": self.weights,
        }


#: names of the :class:`Overrides` fields in messages
_LABELS = {"pitch_deg": "Pitch (deg)", "fov_x_deg": "Horizontal FOV (deg)", "mean_slope_deg": "Mean slope (deg)"}


@dataclass(frozen=True)
class Overrides:
    """A user's values for one photo (the studio's fields, a ``p2p batch`` CSV row); ``None`` =
    estimated (EXIF, a backend or the builtin default) or, for ``seed``, the run's seed."""

    pitch_deg: float | None = None
    fov_x_deg: float | None = None
    mean_slope_deg: float | None = None
    elevation_range_m: tuple[float, float] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        def bad(what: str, value: Any, allowed: str) -> InputError:
            return InputError(f"{what} must be {allowed}, got {value}")

        for name, lo, hi, allowed in (("pitch_deg", -89.0, 89.0, "in [-89, 89] degrees"),
                                      ("fov_x_deg", 0.0, 180.0, "in (0, 180) degrees"),
                                      ("mean_slope_deg", 0.0, 89.0, "in (0, 89) degrees")):
            v = getattr(self, name)
            if v is None:
                continue
            inclusive = name == "pitch_deg"
            if not (math.isfinite(v) and (lo <= v <= hi if inclusive else lo < v < hi)):
                raise bad(_LABELS[name], v, allowed)
            object.__setattr__(self, name, float(v))
        if self.elevation_range_m is not None:
            lo, hi = (float(v) for v in self.elevation_range_m)
            if not (math.isfinite(lo) and math.isfinite(hi) and abs(lo) <= 1e5 and abs(hi) <= 1e5):
                raise bad("The elevation range", f"{lo:g} to {hi:g}", "finite metres within +-1e5")
            if not hi > lo:
                raise bad("The highest elevation", f"{hi:g} m", f"above the lowest ({lo:g} m)")
            object.__setattr__(self, "elevation_range_m", (lo, hi))
        if self.seed is not None and not (float(self.seed).is_integer() and 0 <= int(self.seed) < 2**32):
            raise InputError(f"the seed must be an integer from 0 to 2^32 - 1, got {self.seed}")

    def apply(self, run: RunConfig) -> RunConfig:
        """``run`` with these values replacing the estimates (a given pitch skips the search)."""
        p = run.perception
        ro = p.reconstruct
        if self.pitch_deg is not None:
            ro = dataclasses.replace(ro, pitch_range_deg=(self.pitch_deg, self.pitch_deg))
        p = dataclasses.replace(
            p, reconstruct=ro,
            fov_x_deg=self.fov_x_deg if self.fov_x_deg is not None else p.fov_x_deg,
            mean_slope_deg=self.mean_slope_deg if self.mean_slope_deg is not None else p.mean_slope_deg,
            elevation_range_m=self.elevation_range_m if self.elevation_range_m is not None else p.elevation_range_m,
        )
        c = run.completion if self.seed is None else dataclasses.replace(run.completion, seed=int(self.seed))
        return dataclasses.replace(run, perception=p, completion=c)


@dataclass(frozen=True)
class RunResult:
    """The complete heightmap ``z`` (float32 metres, ``(N, N)``) at ``dx_m``, ``known`` = the
    visible cells on that grid, the perception result, completion metrics and every stage."""

    config: RunConfig
    visible: VisibleResult
    z: np.ndarray
    known: np.ndarray
    dx_m: float
    metrics: dict[str, float]
    completion_timings: dict[str, float]
    model: dict[str, Any]
    stages: dict[str, StageOutcome] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """Sanity checks of the result (e.g. a diverged completion), for the report."""
        zv = self.visible.z[self.visible.mask]
        relief = float(np.ptp(zv)) if zv.size else 0.0
        if not np.isfinite(self.z).all():
            return ["the completed heightmap has non-finite heights"]
        span = float(np.ptp(self.z))
        if span > 10.0 * relief + 1000.0:
            return [f"the completed heights span {span:.3g} m for {relief:.3g} m of visible relief: "
                    "the completion diverged (check the prior weights)"]
        out = []
        lo, hi = self.visible.priors.elevation_range_m
        pad = PRIOR_MARGIN * (hi - lo)
        hidden = self.z[~self.known]
        outside = float(((hidden < lo - pad) | (hidden > hi + pad)).mean()) if hidden.size else 0.0
        if outside > 0.0:
            out.append(f"{100 * outside:.1f} % of the hidden cells lie outside the elevation prior widened by "
                       f"{100 * PRIOR_MARGIN:.0f} % ({lo - pad:.0f} to {hi + pad:.0f} m; hidden heights "
                       f"{float(hidden.min()):.0f} to {float(hidden.max()):.0f} m): the completion ran past "
                       "the photo's range (check --elevation-range)")
        return out

    @property
    def camera(self) -> Camera:
        """The estimated camera, paired with the output grid."""
        return self.visible.camera.replace(dx_m=self.dx_m)

    def report(self, extra_seconds: dict[str, float] | None = None) -> dict[str, Any]:
        """``report.json`` (see ``docs/formats.md``)."""
        vr = self.visible.report
        seconds = {k: round(v.seconds, 3) for k, v in self.stages.items()}
        seconds.update({k: round(v, 3) for k, v in (extra_seconds or {}).items()})
        seconds["total"] = round(sum(seconds.values()), 3)
        return {
            "format": "pixels2peaks.run/1",
            "input": {"image": vr["image"], "sha256": vr["image_sha256"], "size_px": vr["image_size"]},
            "mdd_m": self.metrics["mdd_m"],
            "vve_m": self.metrics["vve_m"],
            "ove_m": self.metrics["ove_m"],
            "dx_m": self.dx_m,
            "size_cells": list(self.z.shape),
            "extent_m": [self.z.shape[1] * self.dx_m, self.z.shape[0] * self.dx_m],
            "pitch_deg": self.visible.camera.pitch_deg,
            "fov_x_deg": vr["fov_x_deg"],
            "fov_source": vr["fov_source"],
            "visible_fraction": round(float(self.known.mean()), 6),
            "elevation_m": [float(self.z.min()), float(self.z.max())],
            "seconds": seconds,
            "warnings": self.warnings,
            "stages": {k: v.record() for k, v in self.stages.items()},
            "backends": vr["backends"],
            "priors": vr["priors"],
            "model": self.model,
            "metrics": self.metrics,
            "completion_seconds": self.completion_timings,
            "perception": vr,
            "config": self.config.to_dict(),
        }


def _model_source(weights: str | None, model: Any) -> tuple[dict[str, Any], Callable[[], Any]]:
    """(identity for reports and cache keys, loader) of the prior: a given model (hash of its
    parameters), a weights file or the shipped one (hash of the files)."""
    if model is not None:
        digest = array_digest(np.concatenate(
            [p.detach().cpu().float().numpy().ravel() for p in model.state_dict().values()]))
        return {"weights": "in-memory model", "sha256": digest}, lambda: model
    from pixels2peaks.diffusion.model import DEFAULT_CONFIG, DEFAULT_WEIGHTS, load_default_model, load_prior

    wp = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    cp = wp.with_suffix(".json") if weights is not None else DEFAULT_CONFIG
    for p in (wp, cp):
        if not p.is_file():
            raise InputError(f"prior {'weights' if p == wp else 'config'} not found: {p}")
    ident = {"weights": str(wp) if weights is not None else "shipped",
             "sha256": file_digest(wp), "config_sha256": file_digest(cp)}
    load = (lambda: load_prior(wp)) if weights is not None else load_default_model
    return ident, _once_per_process(ident["sha256"] + ident["config_sha256"], load)


#: the prior last loaded in this process, by file digests (a batch worker loads it once)
_LOADED: dict[str, Any] = {}


def _once_per_process(digest: str, load: Callable[[], Any]) -> Callable[[], Any]:
    def get() -> Any:
        if digest not in _LOADED:
            _LOADED.clear()  # one prior in memory at a time
            _LOADED[digest] = load()
        return _LOADED[digest]

    return get


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def run_photo(
    image: str | Path | bytes | np.ndarray,
    config: RunConfig = RunConfig(),
    *,
    cache: StageCache = StageCache(),
    reporter: StageReporter | None = None,
    model: Any = None,
) -> RunResult:
    """Photo (path, encoded bytes or RGB array) -> :class:`RunResult` (see the module doc).

    ``cache``: stage cache (default: off); ``reporter``: stage events (``completion`` reports
    its diffusion steps); ``model``: a :class:`~pixels2peaks.diffusion.model.TerrainPrior` to
    use instead of ``config.weights``.
    """
    rep = reporter or NullReporter()
    ident, load = _model_source(config.weights, model)
    vis = estimate_visible(image, config.visible_options(), cache=cache, reporter=rep)
    cfg = config.completion

    def compute() -> dict[str, Any]:
        res = complete(vis.z, vis.mask, vis.z_max, vis.dx_m, cfg, model=load(),
                       progress=lambda stage, done, total: rep.update("completion", done, total))
        return {"z": res.z, "known": res.known, "dx_m": res.dx_m, "metrics": res.metrics,
                "timings": res.timings}

    settings = {"config": cfg.to_dict(), "model": ident, "device": _device(cfg.device),
                "code": code_fingerprint(*_COMPLETION_CODE)}
    done = cache.run("completion", settings, [vis.stages["zmax"].key], compute, rep)
    c = done.value
    return RunResult(
        config=config, visible=vis, z=c["z"], known=c["known"], dx_m=float(c["dx_m"]),
        metrics=dict(c["metrics"]), completion_timings=dict(c["timings"]), model=ident,
        stages={**vis.stages, "completion": done},
    )
