"""Landscape evolution to steady state: uplift, stream-power incision and hillslope diffusion.

    dz/dt = U(x) - K A^m S^n + D lap(z)

on a raster whose four borders are base level (height 0), integrated with fastscapelib's
operators (Bovy et al., *fastscapelib*, 2025): one flow graph (single-direction D8 routing with
closed depressions resolved by a minimum spanning tree of basins, Cordonnier, Bovy & Braun 2019)
built once and updated every step, the implicit stream-power solver (Braun & Willett 2013,
Geomorphology 180) and the ADI linear diffusion solver. Uplift is applied first, then incision,
then diffusion (operator splitting, as in FastScape).

At **steady state** erosion balances uplift at every cell; with ``n = 1`` the steady surface is
linear in ``U / K`` (and in ``U / D``), so its *shape* is set by the uplift pattern and the
dimensionless ratio of incision to diffusion, and its *height scale* may be set afterwards by a
single factor, which equals running with a proportionally scaled ``U`` (see
:func:`pixels2peaks.training.lem_data`). Such surfaces have the drainage laws of real fluvial
terrain: Hack/Flint concavity ``theta ~ m / n`` and an area-exceedance exponent ``tau ~ 1.43``
(Rodriguez-Iturbe & Rinaldo 1997). This is how the paper's last author builds terrain
(Cordonnier et al. 2016, *Large scale terrain generation from tectonic uplift and fluvial
erosion*, CGF 35(2)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pixels2peaks.errors import InputError

__all__ = ["LEMConfig", "LEMResult", "steady_state", "fastscapelib_available", "BORDER_STATUS"]

#: Border kinds of :class:`LEMConfig` and fastscapelib's ``NodeStatus`` names for them.
BORDER_STATUS = {"base": "FIXED_VALUE", "closed": "CORE", "looped": "LOOPED"}


def fastscapelib_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("fastscapelib") is not None


@dataclass(frozen=True)
class LEMConfig:
    """Parameters of :func:`steady_state` (SI units: metres, years).

    * ``k_sp``: stream-power erodibility ``K`` (yr^-1 m^(1-2m)); ``area_exp`` ``m``,
      ``slope_exp`` ``n``.
    * ``diffusivity_m2_yr``: hillslope diffusivity ``D``.
    * ``uplift_m_yr``: mean uplift rate; the uplift field passed in is rescaled to this mean.
    * ``dt_yr``: time step; ``min_steps`` .. ``max_steps`` steps.
    * ``borders`` (left, right, top, bottom): ``"base"`` = base level (height 0, no uplift,
      rivers leave there), ``"closed"`` = no flux, ``"looped"`` = periodic with the opposite
      border. One base border with looped sides and a closed top gives trunk rivers that cross
      the grid; four base borders give basins draining to the nearest edge.
    * steady state: every ``check_every`` steps, the mean absolute height change per year over
      the interior, divided by the mean uplift rate, must fall below ``steady_tol`` (1 % by
      default: the surface moves by less than 1 % of what uplift alone would add).
    """

    k_sp: float = 2e-5
    area_exp: float = 0.45
    slope_exp: float = 1.0
    diffusivity_m2_yr: float = 0.05
    uplift_m_yr: float = 1e-3
    dt_yr: float = 2e4
    min_steps: int = 100
    max_steps: int = 3000
    check_every: int = 25
    steady_tol: float = 0.01
    borders: tuple[str, str, str, str] = ("base", "base", "base", "base")

    def __post_init__(self) -> None:
        object.__setattr__(self, "borders", tuple(str(b) for b in self.borders))
        if len(self.borders) != 4 or not set(self.borders) <= set(BORDER_STATUS):
            raise InputError(f"LEM borders must be 4 of {sorted(BORDER_STATUS)} (left, right, top, bottom), got {self.borders}")
        if (self.borders[0] == "looped") != (self.borders[1] == "looped") or (
                self.borders[2] == "looped") != (self.borders[3] == "looped"):
            raise InputError("LEM looped borders come in opposite pairs (left+right, top+bottom)")
        if "base" not in self.borders:
            raise InputError("LEM needs at least one base-level border, where the rivers leave the grid")
        for name in ("k_sp", "area_exp", "slope_exp", "uplift_m_yr", "dt_yr", "steady_tol"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"LEM {name} must be a positive finite number, got {v}")
        if not (math.isfinite(self.diffusivity_m2_yr) and self.diffusivity_m2_yr >= 0):
            raise InputError(f"LEM diffusivity_m2_yr must be >= 0, got {self.diffusivity_m2_yr}")
        if not (1 <= self.check_every and 1 <= self.min_steps <= self.max_steps):
            raise InputError("LEM needs 1 <= check_every and 1 <= min_steps <= max_steps")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LEMResult:
    """``z`` float64 metres ``(H, W)`` (borders 0); ``steps`` taken; ``steady``: whether the
    steady-state test passed; ``change_ratio``: its last value (mean |dz/dt| / mean U)."""

    z: np.ndarray
    steps: int
    steady: bool
    change_ratio: float


def steady_state(
    uplift: np.ndarray,
    dx_m: float,
    cfg: LEMConfig = LEMConfig(),
    z0: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> LEMResult:
    """Run the landscape evolution model from ``z0`` (default: 1 m of white noise) until steady.

    ``uplift``: non-negative ``(H, W)`` pattern (any unit; rescaled so its interior mean is
    ``cfg.uplift_m_yr``); ``dx_m``: cell size in metres. Base-level border cells are fixed at 0
    and get no uplift.
    """
    try:
        import fastscapelib as fs
    except ImportError as e:  # pragma: no cover - the dependency is declared
        raise InputError("the landscape evolution model needs fastscapelib (pip install fastscapelib)") from e
    u = np.asarray(uplift, dtype=np.float64)
    if u.ndim != 2 or min(u.shape) < 8:
        raise InputError(f"uplift must be a 2-D array of at least 8 x 8 cells, got shape {u.shape}")
    if not np.isfinite(u).all() or (u < 0).any():
        raise InputError("uplift must be finite and non-negative")
    if not (math.isfinite(dx_m) and dx_m > 0):
        raise InputError(f"cell size must be a positive number of metres, got {dx_m}")
    h, w = u.shape
    interior = np.ones((h, w), dtype=bool)  # cells that are not base level
    for side, kind in zip(("left", "right", "top", "bottom"), cfg.borders):
        if kind == "base":
            interior[{"left": (slice(None), 0), "right": (slice(None), -1),
                      "top": (0, slice(None)), "bottom": (-1, slice(None))}[side]] = False
    mean_u = float(u[interior].mean())
    if not mean_u > 0:
        raise InputError("uplift is zero everywhere inside the grid")
    u = u * (cfg.uplift_m_yr / mean_u)
    u[~interior] = 0.0
    if z0 is None:
        rng = rng or np.random.default_rng(0)
        z = rng.random((h, w))
    else:
        z = np.array(z0, dtype=np.float64, copy=True)
        if z.shape != u.shape:
            raise InputError(f"z0 shape {z.shape} differs from the uplift's {u.shape}")
    z[~interior] = 0.0

    status = [getattr(fs.NodeStatus, BORDER_STATUS[b]) for b in cfg.borders]
    grid = fs.RasterGrid([h, w], [dx_m, dx_m], fs.RasterBoundaryStatus(status))
    graph = fs.FlowGraph(grid, [fs.SingleFlowRouter(), fs.MSTSinkResolver()])
    incision = fs.SPLEroder(graph, cfg.k_sp, cfg.area_exp, cfg.slope_exp, 1e-5)
    diffusion = fs.DiffusionADIEroder(grid, cfg.diffusivity_m2_yr) if cfg.diffusivity_m2_yr > 0 else None
    dt = cfg.dt_yr
    ref = z.copy()
    ratio, steady, step = math.inf, False, 0
    while step < cfg.max_steps:
        z = z + dt * u
        graph.update_routes(z)
        area = graph.accumulate(1.0)
        z = z - incision.erode(z, area, dt)
        if diffusion is not None:
            z = z - diffusion.erode(z, dt)
        step += 1
        if step % cfg.check_every == 0:
            ratio = float(np.abs(z - ref)[interior].mean() / (cfg.check_every * dt * cfg.uplift_m_yr))
            ref = z.copy()
            if step >= cfg.min_steps and ratio < cfg.steady_tol:
                steady = True
                break
    return LEMResult(z=z, steps=step, steady=steady, change_ratio=ratio)
