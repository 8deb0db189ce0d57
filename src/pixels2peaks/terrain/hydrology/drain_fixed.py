"""Drainage around cells that must not change: Priority-Flood-ordered breaching with fixed
cells, and valleys instead of one-cell trenches.

A completed heightmap keeps its known (visible) cells. Breaching the whole map and putting the
known cells back undoes every carve that crossed a known cell: a visible valley whose outlet
runs through hidden terrain stays a pit (issue [hidden-terrain]: "the visible valley sits as a
pit in a plateau"). Here only the other cells change:

1. **Priority-Flood order** (Barnes et al. 2014): from the border, cells are visited lowest
   first; each cell's *parent* is the neighbour it was reached from, so the parent chains are
   the minimax (lowest-pass) paths to the border.
2. **Breach along the chains** (complete breaching, Lindsay 2016, on the Priority-Flood tree):
   a cell that is not ``epsilon`` above its parent lowers the free cells of its parent chain to
   a descending staircase below it, until the chain is low enough. A fixed cell on the chain
   stops the carve (the depression stays; it is counted in ``unresolved``).
3. **Valleys, not slots.** A carve through a ridge is one cell wide and as deep as the ridge.
   Free cells near a carve are lowered towards ``carved height + distance x dx x side_slope``
   (a cone of slope ``side_slope``, 8-neighbour chamfer distances, through free cells only),
   by at most the carve's depth minus ``dx x side_slope`` per cell of distance: a notch whose
   sides drain into it and fade into the untouched terrain without a step.

4. **Fill what is left**: a free cell whose every route crosses a higher fixed cell (a hole
   among fixed cells) cannot drain by lowering; it is raised to its spill height.

Fixed cells never change. Every free cell ends with a descending path (``epsilon`` per step) to
the border, unless it drains into a fixed cell that itself has none. Heights in metres; ``dx_m`` in metres; ``side_slope`` is a tangent.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from numba import njit

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology.fill import fill_depressions

__all__ = ["drain_around_fixed"]

_DY = np.array([-1, -1, 0, 1, 1, 1, 0, -1], dtype=np.int64)
_DX = np.array([0, 1, 1, 1, 0, -1, -1, -1], dtype=np.int64)


@njit(cache=True)
def _flood_order(z, fixed, H, W):  # pragma: no cover - numba
    n = H * W
    parent = np.full(n, -1, dtype=np.int64)
    key = np.empty(n)
    seen = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int64)
    heap = [(0.0, 0.0, np.int64(0))]
    heap.pop()
    for i in range(H):
        for j in range(W):
            if i == 0 or j == 0 or i == H - 1 or j == W - 1:
                c = i * W + j
                seen[c] = True
                key[c] = z[c] if fixed[c] else -np.inf
                heapq.heappush(heap, (key[c], z[c], np.int64(c)))
    k = 0
    while len(heap) > 0:
        kc, _, c = heapq.heappop(heap)
        order[k] = c
        k += 1
        ci, cj = c // W, c % W
        for d in range(8):
            ni, nj = ci + _DY[d], cj + _DX[d]
            if ni < 0 or nj < 0 or ni >= H or nj >= W:
                continue
            nb = ni * W + nj
            if seen[nb]:
                continue
            seen[nb] = True
            parent[nb] = c
            key[nb] = max(kc, z[nb]) if fixed[nb] else kc
            heapq.heappush(heap, (key[nb], z[nb], np.int64(nb)))
    return order, parent


@njit(cache=True)
def _breach_chains(z, fixed, order, parent, eps):  # pragma: no cover - numba
    unresolved = 0
    for k in range(order.size):
        c = order[k]
        p = parent[c]
        if p < 0 or z[p] <= z[c] - eps:
            continue
        target = z[c] - eps
        while p >= 0 and z[p] > target:
            if fixed[p]:
                unresolved += 1
                break
            z[p] = target
            target -= eps
            p = parent[p]
    return unresolved


@njit(cache=True)
def _valleys(z, orig, free, carved, H, W, rise, passes):  # pragma: no cover - numba
    """Widen the carves into notches: a free cell next to a lowered (or carved) one is lowered
    towards ``h(y) + rise * d(x, y)``, by at most the carve depth of its source minus ``rise`` per
    cell of distance (chamfer sweeps). The lowering fades out with distance, so the notch meets
    the terrain without a step, and every lowered cell stays above the neighbour it descends
    to."""
    h = z.copy()
    budget = np.zeros(H * W)  # what the cell may still pass on: the source's depth minus distance
    for c in range(H * W):
        if carved[c]:
            budget[c] = orig[c] - z[c]
    diag = rise * math.sqrt(2.0)
    for _ in range(passes):
        for sweep in range(2):
            for s in range(H * W):
                c = s if sweep == 0 else H * W - 1 - s
                if not free[c]:
                    continue
                ci, cj = c // W, c % W
                for d in range(8):
                    ni, nj = ci + _DY[d], cj + _DX[d]
                    if ni < 0 or nj < 0 or ni >= H or nj >= W:
                        continue
                    nb = ni * W + nj
                    step = rise if d % 2 == 0 else diag
                    left = budget[nb] - step
                    if left <= 0.0:
                        continue
                    v = h[nb] + step
                    lower = min(orig[c] - v, left)
                    if lower > 0.0 and orig[c] - lower < h[c]:
                        h[c] = orig[c] - lower
                        budget[c] = left
    return h


def drain_around_fixed(
    z: np.ndarray,
    fixed: np.ndarray,
    dx_m: float,
    *,
    epsilon: float,
    side_slope: float = 0.5,
    passes: int = 2,
) -> tuple[np.ndarray, dict[str, float]]:
    """Drain ``z`` to its border, changing only the cells where ``fixed`` is False, and only
    downwards (module docstring). Returns ``(heights, info)``; ``info``: ``carved_cells`` (cells
    the breach lowered), ``lowered_cells`` (all cells lowered, valleys included),
    ``max_lowering_m`` and ``unresolved`` (carves a fixed cell stopped)."""
    a = np.asarray(z, dtype=np.float64)
    f = np.asarray(fixed, dtype=bool)
    if a.ndim != 2 or a.shape != f.shape or min(a.shape) < 2:
        raise InputError(f"heights {a.shape} and fixed mask {f.shape} must be one 2-D grid, at least 2 x 2")
    if not np.isfinite(a).all():
        raise InputError("drainage needs finite heights everywhere")
    if not (math.isfinite(dx_m) and dx_m > 0 and math.isfinite(side_slope) and side_slope > 0 and epsilon >= 0):
        raise InputError("dx and side_slope must be positive and epsilon >= 0")
    H, W = a.shape
    flat = a.ravel().copy()
    fixed_flat = f.ravel()
    order, parent = _flood_order(flat, fixed_flat, H, W)
    unresolved = int(_breach_chains(flat, fixed_flat, order, parent, float(epsilon)))
    carved = flat < a.ravel()
    rise = max(float(side_slope) * float(dx_m), 2.0 * float(epsilon))
    h = _valleys(flat, a.ravel(), ~fixed_flat, carved, H, W, rise, int(passes))
    # what no carve could drain (a free hole among fixed cells) is filled to its spill height
    filled = fill_depressions(h.reshape(H, W), float(epsilon)).ravel()
    raised = ~fixed_flat & (filled > h)
    out = np.where(fixed_flat, a.ravel(), np.where(raised, filled, h)).reshape(H, W)
    low = out < a
    info = {"carved_cells": int(carved.sum()), "lowered_cells": int(low.sum()), "filled_cells": int(raised.sum()),
            "max_lowering_m": float((a - out).max()), "unresolved": unresolved}
    return out, info
