"""Flow accumulation: drainage area of every cell of a D8 receiver forest.

``drainage_area_cells(rec)``: the number of cells whose receiver chain passes through each cell,
itself included (O'Callaghan & Mark 1984; one pass over the topological order, donors first,
as in Braun & Willett 2013, Geomorphology 180, §2.3). ``flow_network(z)``: the breached heights
(Algorithm 1) and their D8 steepest-descent receivers, on which every chain reaches the border.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology.breach import breach_depressions
from pixels2peaks.terrain.hydrology.routing import flow_receivers, topological_order

__all__ = ["drainage_area_cells", "flow_network"]


@njit(cache=True)
def _accumulate(rec, order, acc):  # pragma: no cover - numba
    for k in range(order.size):
        i = order[k]
        r = rec[i]
        if r != i:
            acc[r] += acc[i]


def drainage_area_cells(rec: np.ndarray) -> np.ndarray:
    """Number of cells draining through each cell (itself included), ``(N,)`` float64, for a
    receiver forest ``rec`` (``rec[i] == i`` at outlets).

    >>> drainage_area_cells(np.array([0, 0, 1, 1, 0])).tolist()
    [5.0, 3.0, 1.0, 1.0, 1.0]
    """
    rec = np.ascontiguousarray(rec, dtype=np.int64)
    order = topological_order(rec)
    acc = np.ones(rec.size, np.float64)
    _accumulate(rec, order, acc)
    return acc


def flow_network(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(breached heights (H, W) float64, D8 receivers (H*W,))`` of a finite heightmap (metres)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or not np.isfinite(z).all():
        raise InputError("flow routing needs a finite (H, W) heightmap")
    zb = breach_depressions(z, "auto")
    return zb, flow_receivers(zb)
