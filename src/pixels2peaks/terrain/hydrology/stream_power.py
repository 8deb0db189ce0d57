"""Fluvial incision: one implicit step of the stream-power law (Braun & Willett 2013).

    dh/dt = -K A^m S        (n = 1; A = drainage area, S = slope along the D8 flow path)

solved implicitly, outlets first, so that every cell sees its receiver's *new* height:

    h_i <- (h_i + F_i h_rec(i)) / (1 + F_i),     F_i = k A_i^m / L_i

(Braun & Willett 2013, Geomorphology 180, Eq. 24 with n = 1). ``A_i`` in cells, ``L_i`` the
distance to the receiver in cells (1 or sqrt 2), so ``k`` (= K dt dx^(2m-1), dimensionless) is
the same at every cell size and the step is **linear** in the heights: it works in metres or in
normalized units alike, ``erode(a z + b) = a erode(z) + b``. Receivers are the D8
steepest-descent receivers of the breached surface (Algorithm 1), so flow crosses depressions
to the border; a cell below its receiver (inside a pit) is raised towards it.

The step lowers channels (large ``A``) much more than hillslopes: channel slope falls with
area, the concavity ``S ~ A^-theta`` of eroded terrain (theta -> m for repeated steps), which a
learned prior with little training does not produce (docs/model-card.md, "Fluvial polish").
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology.accumulation import drainage_area_cells, flow_network
from pixels2peaks.terrain.hydrology.routing import topological_order

__all__ = ["stream_power_erode"]


@njit(cache=True)
def _implicit_step(z, rec, order, area, k, m, W, fixed, out):  # pragma: no cover - numba
    for q in range(order.size - 1, -1, -1):  # outlets first
        i = order[q]
        r = rec[i]
        if r == i or fixed[i]:
            out[i] = z[i]
            continue
        length = 1.0 if (i // W == r // W or i % W == r % W) else math.sqrt(2.0)
        f = k * area[i] ** m / length
        out[i] = (z[i] + f * out[r]) / (1.0 + f)


def stream_power_erode(z: np.ndarray, k: float, m: float = 0.45, *, fixed: np.ndarray | None = None) -> np.ndarray:
    """One implicit stream-power incision step (n = 1) of a finite ``(H, W)`` heightmap.

    ``k``: erodibility times time step, dimensionless (areas and lengths in cells; 0 = no
    change); ``m``: area exponent (0.45: the concavity of real rivers, Whipple & Tucker 1999).
    ``fixed``: optional ``(H, W)`` bool mask of cells that keep their height (e.g. the seen
    cells of a completion); cells upstream of them still incise towards them. Returns a new
    ``(H, W)`` float64 array in the units of ``z``. Border cells are outlets.

    >>> z = np.full((3, 5), 100.0)
    >>> z[1] = [0.0, 1.0, 2.0, 3.0, 4.0]  # a valley draining west; borders are outlets
    >>> stream_power_erode(z, 1.0, 0.0)[1].tolist()  # m = 0: F = 1 everywhere
    [0.0, 0.5, 1.25, 2.125, 4.0]
    """
    if not (math.isfinite(k) and k >= 0.0) or not (math.isfinite(m) and m >= 0.0):
        raise InputError(f"stream-power k and m must be finite and >= 0, got k={k}, m={m}")
    z = np.asarray(z, dtype=np.float64)
    fx = np.zeros(z.shape, bool) if fixed is None else np.asarray(fixed, dtype=bool)
    if fx.shape != z.shape:
        raise InputError(f"fixed mask shape {fx.shape} differs from the heightmap's {z.shape}")
    if z.ndim != 2 or not np.isfinite(z).all():
        raise InputError("stream-power incision needs a finite (H, W) heightmap")
    if k == 0.0:
        return z.copy()
    _, rec = flow_network(z)
    rec = np.ascontiguousarray(rec, dtype=np.int64)
    out = np.empty(z.size, np.float64)
    _implicit_step(np.ascontiguousarray(z).ravel(), rec, topological_order(rec), drainage_area_cells(rec),
                   float(k), float(m), z.shape[1], np.ascontiguousarray(fx).ravel(), out)
    return out.reshape(z.shape)
