"""Simulated training terrain: steady-state landscape evolution tiles at every dx (``lem`` source).

Real DEMs at 10-100 m are scarce here (five shared rasters); a landscape evolution model makes
fluvial mountains at any cell size, with the drainage laws of real terrain
(:mod:`pixels2peaks.terrain.lem`; Cordonnier et al. 2016). Each tile is one simulation:

1. **Uplift field** (half of the tiles each): GLOBE's coarse relief -- a random window of the
   GLOBE 30" tile (outside the held-out Caucasus box for training tiles, inside it for validation
   tiles), smoothed and rescaled to ``[u_floor, 1]`` -- or a smooth random fBm field
   (``beta`` 3.5-4.5) rescaled the same way. Tectonic uplift sets where the ranges stand.
2. **Erosion parameters** drawn per tile: concavity ``m`` in ``m_range`` (Flint's theta), the
   diffusivity ``D`` log-uniform in ``diffusivity_range_m2_yr``, and the outlets (``borders``:
   one base-level side with periodic flanks -- trunk rivers crossing the tile --, two adjacent
   base sides, or four). With ``n = 1`` only the ratio of incision to diffusion changes the shape,
   so ``K`` and ``U`` are fixed and every simulation runs at ``sim_dx_m``: the simulated shapes
   are the same at every dx (fluvial relief is self-similar over 30 m - 2 km cells), and the dx
   enters through the height scale alone. (Run at the tile's own dx, the grid Peclet number
   grows as dx^1.9 and 960 m tiles become straight D8 gullies.)
3. **Height scale**: the steady surface is linear in ``U / K``; it is rescaled so that the std of
   ``z / dx`` over the tile's central crop is the real training tiles' median at that dx
   (``relief_table``, measured by ``p2p dataset build``: ``height_stats``) times a log-normal
   jitter ``exp(N(0, relief_log_sigma))``. Rescaling equals running with a scaled uplift rate.
4. **Window**: simulated on ``sim_margin`` x the tile size, a tile-sized window taken at a
   random offset and turned by a random multiple of 90 degrees, so outlets face every way.

Why the mix with real data and these ranges: docs/model-card.md ("Simulated terrain").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import numpy as np

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.lem import LEMConfig, steady_state
from pixels2peaks.terrain.noise import fbm

__all__ = ["LEMDataConfig", "lem_tile", "lem_one", "lem_tiles"]

#: Median std(z)/dx of the 128^2 centre crops of the real training tiles, per dx (prior v2 table,
#: docs/model-card.md "Height normalization").
REAL_RELIEF_TABLE = ((30.0, 5.1), (60.0, 3.7), (120.0, 2.7), (960.0, 0.26), (1920.0, 0.17))


@dataclass(frozen=True)
class LEMDataConfig:
    """How many simulated tiles per dx, and the ranges their parameters are drawn from."""

    train_per_dx: int = 48
    val_per_dx: int = 8
    sim_margin: float = 1.0
    globe_share: float = 0.5
    u_floor: float = 0.15
    m_range: tuple[float, float] = (0.35, 0.55)
    diffusivity_range_m2_yr: tuple[float, float] = (0.02, 0.25)
    sim_dx_m: float = 100.0
    borders: tuple[tuple[tuple[str, str, str, str], float], ...] = (
        (("looped", "looped", "closed", "base"), 0.6),
        (("base", "closed", "closed", "base"), 0.2),
        (("base", "base", "base", "base"), 0.2),
    )
    relief_table: tuple[tuple[float, float], ...] = REAL_RELIEF_TABLE
    relief_log_sigma: float = 0.35
    crop_cells: int = 128
    seed: int = 0
    lem: LEMConfig = LEMConfig(max_steps=2000)

    def __post_init__(self) -> None:
        if self.train_per_dx < 0 or self.val_per_dx < 0:
            raise InputError("LEM tile counts must be >= 0")
        if not self.sim_margin >= 1.0:
            raise InputError(f"sim_margin must be >= 1, got {self.sim_margin}")
        if not 0.0 <= self.globe_share <= 1.0:
            raise InputError(f"globe_share must be in [0, 1], got {self.globe_share}")

    def relief_at(self, dx_m: float) -> float:
        """Target std(z)/dx of a centre crop at ``dx_m``: the table interpolated in log-log and
        extrapolated along its end segments (the prior's own rule, ``PriorConfig.slope_scale_at``)."""
        from pixels2peaks.diffusion.model import PriorConfig

        dxs, ss = zip(*self.relief_table)
        return PriorConfig(scale_dx_m=tuple(dxs), scale_slope=tuple(ss)).slope_scale_at(dx_m)

    def draw_lem(self, rng: np.random.Generator) -> LEMConfig:
        """The LEM settings of one tile: ``m``, ``D`` and the borders drawn from their ranges."""
        lo, hi = (math.log(v) for v in self.diffusivity_range_m2_yr)
        kinds, weights = zip(*self.borders)
        borders = kinds[int(rng.choice(len(kinds), p=np.asarray(weights) / sum(weights)))]
        return LEMConfig(**{**self.lem.to_dict(), "area_exp": float(rng.uniform(*self.m_range)),
                            "diffusivity_m2_yr": math.exp(rng.uniform(lo, hi)), "borders": borders})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["relief_table"] = [list(r) for r in self.relief_table]
        d["borders"] = [[list(b), w] for b, w in self.borders]
        return d


def _rescale01(a: np.ndarray, floor: float) -> np.ndarray:
    a = a - a.min()
    top = a.max()
    a = a / top if top > 0 else np.zeros_like(a)
    return floor + (1.0 - floor) * a


def random_uplift(n: int, cfg: LEMDataConfig, rng: np.random.Generator) -> np.ndarray:
    """A smooth fBm uplift pattern in ``[u_floor, 1]``."""
    return _rescale01(fbm((n, n), rng.uniform(3.5, 4.5), rng), cfg.u_floor)


def globe_uplift(n: int, globe: np.ndarray, split: str, cfg: LEMDataConfig, rng: np.random.Generator,
                 val_box_rows_cols: tuple[int, int, int, int]) -> np.ndarray | None:
    """GLOBE's coarse relief as an uplift pattern in ``[u_floor, 1]`` (``None`` if no land window)."""
    from scipy.ndimage import gaussian_filter, zoom

    r0b, r1b, c0b, c1b = val_box_rows_cols
    for _ in range(50):
        win = int(rng.integers(24, 97))  # 22-90 km of GLOBE relief
        if split == "val":
            r, c = int(rng.integers(r0b, r1b - win)), int(rng.integers(c0b, c1b - win))
        else:
            r, c = int(rng.integers(0, globe.shape[0] - win)), int(rng.integers(0, globe.shape[1] - win))
            if r < r1b and r + win > r0b and c < c1b and c + win > c0b:
                continue
        crop = globe[r : r + win, c : c + win].astype(np.float64)
        if (crop <= 0).mean() > 0.02 or crop.max() - crop.min() < 500:
            continue
        crop = gaussian_filter(crop, 1.0)
        up = zoom(crop, n / win, order=3)[:n, :n]
        if up.shape != (n, n):
            continue
        return _rescale01(up, cfg.u_floor)
    return None


def lem_tile(tile_cells: int, dx_m: float, uplift: np.ndarray, cfg: LEMDataConfig,
             rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """One simulated tile ``(tile_cells, tile_cells)`` float32 metres and its provenance."""
    lem = cfg.draw_lem(rng)
    res = steady_state(uplift, cfg.sim_dx_m, lem, rng=rng)
    n = uplift.shape[0]
    r, c = (int(rng.integers(0, n - tile_cells + 1)) for _ in range(2))
    quarter_turns = int(rng.integers(0, 4))  # outlets on any side
    z = np.rot90(res.z[r : r + tile_cells, c : c + tile_cells], quarter_turns)
    crop = min(cfg.crop_cells, tile_cells)
    o = (tile_cells - crop) // 2
    std = float(z[o : o + crop, o : o + crop].std() / dx_m)
    target = cfg.relief_at(dx_m) * math.exp(rng.normal(0.0, cfg.relief_log_sigma))
    scale = target / std if std > 0 else 1.0
    z = (z - z.min()) * scale
    prov = {"source": "lem", "dx_m": dx_m, "m": lem.area_exp, "D_m2_yr": lem.diffusivity_m2_yr,
            "borders": list(lem.borders), "steps": res.steps, "steady": res.steady,
            "change_ratio": res.change_ratio, "height_scale": scale, "window": [r, c],
            "quarter_turns": quarter_turns}
    return z.astype(np.float32), prov


def lem_one(tile_cells: int, level: int, dx: float, k: int, cfg: LEMDataConfig, globe: np.ndarray | None,
            val_box_rows_cols: tuple[int, int, int, int] | None) -> tuple[np.ndarray, float, str, dict[str, Any]]:
    """Tile ``k`` of dx level ``level`` (``dx`` metres): ``(z, dx_m, split, prov)``, from its own
    seed ``(cfg.seed, level, k)`` alone (a build can run its tiles anywhere, in any order)."""
    n = int(math.ceil(tile_cells * cfg.sim_margin))
    split = "train" if k < cfg.train_per_dx else "val"
    rng = np.random.default_rng([cfg.seed, level, k])
    uplift, kind = None, "fbm"
    if globe is not None and val_box_rows_cols is not None and rng.random() < cfg.globe_share:
        uplift = globe_uplift(n, globe, split, cfg, rng, val_box_rows_cols)
        kind = "globe"
    if uplift is None:
        uplift, kind = random_uplift(n, cfg, rng), "fbm"
    z, prov = lem_tile(tile_cells, dx, uplift, cfg, rng)
    prov.update({"uplift": kind, "seed": [cfg.seed, level, k]})
    return z, dx, split, prov


def lem_tiles(tile_cells: int, dx_levels_m: tuple[float, ...], cfg: LEMDataConfig,
              globe: np.ndarray | None, val_box_rows_cols: tuple[int, int, int, int] | None
              ) -> Iterator[tuple[np.ndarray, float, str, dict[str, Any]]]:
    """``(z, dx_m, split, prov)`` for ``train_per_dx`` + ``val_per_dx`` tiles at every dx
    (:func:`lem_one` in order)."""
    for li, dx in enumerate(dx_levels_m):
        for k in range(cfg.train_per_dx + cfg.val_per_dx):
            yield lem_one(tile_cells, li, dx, k, cfg, globe, val_box_rows_cols)
