"""Depression filling: exact fill from the depression routing, and Priority-Flood.

Filled heights raise every cell of a closed depression to its spill level: the minimax height
of any D8 path to an outlet (grid border, nodata, or a valid cell next to nodata). Methods:

* ``"routing"`` (default): from :func:`~pixels2peaks.terrain.hydrology.routing.route`
  (Cordonnier, Bovy & Braun 2019): ``filled = max(z, level[basin])`` with the basin fill level
  = max of the pass heights on the basin's MST path to the sea. This equals the max-propagation
  down the receiver forest from the outlets upwards, ``F[c] = max(z[c], F[rec c] + epsilon)``
  (the dual of breaching), which is what is used for ``epsilon > 0``.
* ``"priority_flood"``: Barnes, Lehman & Mulla 2014, *Priority-Flood: An optimal
  depression-filling and watershed-labeling algorithm for digital elevation models*, Computers &
  Geosciences 62, 117-127: Algorithm 2 ("improved", a plain queue for cells in pits) for
  ``epsilon = 0``; for ``epsilon > 0`` their PF+epsilon (Algorithm 3) with a fixed increment:
  a neighbour lower than ``F[c] + epsilon`` is raised to exactly that (processed through the
  heap, so ties and near-ties are handled in height order).

For ``epsilon = 0`` all methods give the same heights as richdem ``FillDepressions`` (exact).
For ``epsilon > 0`` every non-outlet valid cell ends up with a neighbour at least ``epsilon``
lower (``routing``: its receiver), i.e. a strictly descending path to an outlet; the two
methods may then differ in which cells get the increments.

:func:`fill_pointer_jumping` is the max-propagation by pointer jumping in torch (a gather per
round, ``F = max(F, F[P] + d * epsilon)``, ``P = P[P]``), so guided filling runs on the same
device as guided breaching.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from numba import njit

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology.breach import _check_epsilon, _per_grid
from pixels2peaks.terrain.hydrology.routing import (
    _fill_from_levels,
    _prepare,
    _propagate,
    _route_prepared,
)

__all__ = ["fill_depressions", "fill_pointer_jumping", "priority_flood_fill", "FillMethod"]

FillMethod = Literal["routing", "priority_flood"]


# --------------------------------------------------------------------------------------------
# Priority-Flood (numba binary heap keyed by (height, insertion counter))
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _push(hz, hs, hc, n, z, s, c, ties):  # pragma: no cover - numba
    """Sift-up insertion of (z, s, c); ordered by z, then by s when ``ties``."""
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if z < hz[p] or (ties and z == hz[p] and s < hs[p]):
            hz[i] = hz[p]
            hs[i] = hs[p]
            hc[i] = hc[p]
            i = p
        else:
            break
    hz[i] = z
    hs[i] = s
    hc[i] = c
    return n + 1


@njit(cache=True)
def _pop(hz, hs, hc, n, ties):  # pragma: no cover - numba
    """Remove the minimum; returns (cell, new size)."""
    c = hc[0]
    n -= 1
    z = hz[n]
    s = hs[n]
    cl = hc[n]
    i = 0
    while True:
        m = 2 * i + 1
        if m >= n:
            break
        r = m + 1
        if r < n and (hz[r] < hz[m] or (ties and hz[r] == hz[m] and hs[r] < hs[m])):
            m = r
        if hz[m] < z or (ties and hz[m] == z and hs[m] < s):
            hz[i] = hz[m]
            hs[i] = hs[m]
            hc[i] = hc[m]
            i = m
        else:
            break
    hz[i] = z
    hs[i] = s
    hc[i] = cl
    return c, n


@njit(cache=True)
def _priority_flood(z, H, W, eps, out):  # pragma: no cover - numba
    """Barnes et al. 2014 Priority-Flood (Alg. 2 for eps == 0, PF+eps for eps > 0)."""
    N = H * W
    closed = np.zeros(N, np.bool_)
    hz = np.empty(N, out.dtype)
    hs = np.empty(N, np.int64)
    hc = np.empty(N, np.int64)
    pit = np.empty(N if eps == 0.0 else 0, np.int64)
    ties = eps != 0.0  # with eps == 0 the fill is unique whatever the order of equal heights
    n = 0
    seq = 0
    for i in range(N):
        out[i] = z[i]
    # seeds: border cells, nodata (closed), valid cells next to nodata
    for r in range(H):
        for c in range(W):
            i = r * W + c
            if z[i] != z[i]:
                closed[i] = True
                continue
            seed = r == 0 or r == H - 1 or c == 0 or c == W - 1
            if not seed:
                for dr in range(-1, 2):
                    for dc in range(-1, 2):
                        j = (r + dr) * W + c + dc
                        if z[j] != z[j]:
                            seed = True
            if seed:
                closed[i] = True
                n = _push(hz, hs, hc, n, out[i], seq, i, ties)
                seq += 1
    ph = 0
    pt = 0
    while n > 0 or ph < pt:
        if ph < pt:
            ci = pit[ph]
            ph += 1
        else:
            ci, n = _pop(hz, hs, hc, n, ties)
        zc = out[ci]
        r = ci // W
        c = ci - r * W
        for dr in range(-1, 2):
            rr = r + dr
            if rr < 0 or rr >= H:
                continue
            for dc in range(-1, 2):
                cc = c + dc
                if cc < 0 or cc >= W or (dr == 0 and dc == 0):
                    continue
                j = rr * W + cc
                if closed[j]:
                    continue
                closed[j] = True
                if eps == 0.0:
                    if out[j] <= zc:
                        out[j] = zc
                        pit[pt] = j
                        pt += 1
                    else:
                        n = _push(hz, hs, hc, n, out[j], seq, j, ties)
                        seq += 1
                else:
                    v = zc + eps
                    if out[j] < v:
                        out[j] = v
                    n = _push(hz, hs, hc, n, out[j], seq, j, ties)
                    seq += 1


def priority_flood_fill(z: Any, epsilon: float = 0.0, *, valid: Any = None) -> np.ndarray:
    """Priority-Flood fill (Barnes et al. 2014) of a numpy heightmap; see module docstring.

    >>> float(priority_flood_fill(np.array([[5., 5, 5], [5, 1, 5], [5, 4, 5]]))[1, 1])
    4.0
    """
    zz, has_nodata = _prepare(z, valid)
    return _fill_prepared(zz, has_nodata, _check_epsilon(epsilon, zz), "priority_flood")


# --------------------------------------------------------------------------------------------
# routing fill
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _maxprop_sequential(z, rec, eps, order, out):  # pragma: no cover - numba
    """out[c] = max(z[c], out[rec c] + eps), receivers first (reverse topological order); run
    by :func:`~pixels2peaks.terrain.hydrology.routing._propagate`."""
    for t in range(order.size - 1, -1, -1):
        c = order[t]
        r = rec[c]
        zc = z[c]
        if r == c:
            out[c] = zc
        else:
            v = out[r] + eps
            out[c] = v if v > zc else zc


def _fill_prepared(zz: np.ndarray, has_nodata: bool, eps: float, method: FillMethod) -> np.ndarray:
    """Filled ``(H, W)`` heights of validated heights ``zz`` (numba, CPU)."""
    H, W = zz.shape
    if method == "priority_flood":
        out = np.empty_like(zz)
        _priority_flood(zz.ravel(), H, W, eps, out.ravel())
        return out
    if eps == 0.0:
        rt = _route_prepared(zz, has_nodata, carve=False, reuse=True)
        return _fill_from_levels(zz.ravel(), rt.basin, rt.level).reshape(H, W)
    rec = _route_prepared(zz, has_nodata, carve=True, reuse=True).rec
    return _propagate(_maxprop_sequential, zz.ravel(), rec, eps).reshape(H, W)


@torch.no_grad()
def fill_pointer_jumping(z: torch.Tensor, rec: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Max-propagation ``F[c] = max over cells u downstream of c (u = c included) of
    z[u] + d(c, u) * epsilon`` by pointer jumping (gathers only), on ``z``'s device.

    ``z``: ``(N,)`` float heights (m); ``rec``: ``(N,)`` int64 receivers (roots point to
    themselves). Each round every unfinished cell ``c`` does ``F[c] = max(F[c], F[P] + D[c]
    * eps)``, ``D[c] += D[P]``, ``P[c] = P[P]`` (``D``: true step count to ``P``); it finishes
    once ``P`` was finished (roots are finished from the start), so at most
    ``ceil(log2(longest chain)) + 1`` rounds. With the depression-routing receivers and
    ``epsilon = 0`` this is the exact depression fill.

    >>> z = torch.tensor([0.0, 3.0, 1.0, 2.0])  # a chain 3 -> 2 -> 1 -> 0 (root)
    >>> fill_pointer_jumping(z, torch.tensor([0, 0, 1, 2]), 0.5).tolist()
    [0.0, 3.0, 3.5, 4.0]
    """
    n = z.numel()
    dev = z.device
    F = z.clone()
    if n == 0:
        return F
    P = rec.to(device=dev, dtype=torch.int64).clone()
    idx = torch.arange(n, device=dev)
    done = P == idx
    D = (~done).to(z.dtype)
    active = (~done).nonzero().squeeze(1)
    max_rounds = max(1, int(n).bit_length()) + 2
    rounds = 0
    while active.numel() > 0:
        if rounds > max_rounds:
            raise InputError("receivers contain a cycle")
        rounds += 1
        Pa = P[active]
        Da = D[active]
        up = F[Pa] + Da * epsilon if epsilon != 0.0 else F[Pa]
        F[active] = torch.maximum(F[active], up)
        fin = done[Pa]
        D[active] = Da + D[Pa]
        P[active] = P[Pa]
        done[active[fin]] = True
        active = active[~fin]
    return F


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def fill_depressions(
    z: Any,
    epsilon: float | Literal["auto"] = 0.0,
    *,
    valid: Any = None,
    method: FillMethod = "routing",
) -> Any:
    """Fill all depressions (see module docstring for the methods and their citations).

    Parameters
    ----------
    z : (H, W) numpy array or torch tensor; a tensor may also be batched ``(B, 1, H, W)``
        Heights in metres, NaN = nodata.
    epsilon : float >= 0 or "auto"
        Minimum rise in metres per step away from the outlets on filled flats
        (``"auto"``: :func:`~pixels2peaks.terrain.hydrology.breach.default_epsilon`).
    valid : (H, W) bool array/tensor, optional
        False marks extra nodata cells (they become NaN in the output).
    method : "routing" | "priority_flood"
        For torch input on an accelerator ``"routing"`` runs the max-propagation by pointer
        jumping (:func:`fill_pointer_jumping`) on the tensor's device (receivers are computed on
        the CPU); CPU tensors use the numba path. ``"priority_flood"`` runs on the CPU and the
        result is moved back.

    Returns
    -------
    Filled heights (``>= z``), same shape; numpy in -> numpy out (float32/float64 kept,
    integers -> float32 up to 16 bit, else float64); torch in -> torch out, same device/dtype.

    Examples
    --------
    >>> z = np.array([[5., 5, 5, 5], [5, 1, 2, 5], [5, 3, 5, 5], [5, 4, 5, 5]])
    >>> fill_depressions(z)[1:3, 1:3]  # the depression fills up to its pass (4)
    array([[4., 4.],
           [4., 5.]])
    """
    if method not in ("routing", "priority_flood"):
        raise InputError(f"method must be 'routing' or 'priority_flood', got {method!r}")
    if isinstance(z, torch.Tensor):
        return _fill_torch(z, epsilon, valid, method)
    zz, has_nodata = _prepare(z, valid)
    return _fill_prepared(zz, has_nodata, _check_epsilon(epsilon, zz), method)


def _fill_torch(z: torch.Tensor, epsilon, valid, method) -> torch.Tensor:
    def fill_grid(zb, zz, has_nodata, eps):
        # numba on the CPU (faster than torch pointer jumping there), else on zb's device
        if method == "priority_flood" or zb.device.type == "cpu":
            return torch.from_numpy(_fill_prepared(zz, has_nodata, eps, method)).to(zb.device)
        rec = _route_prepared(zz, has_nodata, carve=True, reuse=True).rec
        return fill_pointer_jumping(zb.reshape(-1), torch.from_numpy(rec).to(zb.device), eps)

    return _per_grid(z, epsilon, valid, fill_grid)


def fill_enclosed(z: np.ndarray, mask: np.ndarray, epsilon: float | Literal["auto"] = "auto") -> np.ndarray:
    """The cells of ``mask`` with their depressions that lie wholly inside ``mask`` filled to
    their spill height (:func:`fill_depressions` with the cells outside ``mask`` as nodata, so a
    depression reaching one of them drains there and is left alone). ``epsilon="auto"``:
    :func:`~pixels2peaks.terrain.hydrology.breach.default_epsilon` of the masked heights.
    Heights in metres; NaN outside ``mask``; cells only rise.

    Used where some cells are given and cannot drain through the others: the visible heights
    of a reconstruction (a groove between two depth layers, or a lake seen as a pit) and the
    known cells of a completion after upsampling."""
    from pixels2peaks.terrain.hydrology.breach import default_epsilon

    m = np.asarray(mask, bool)
    a = np.asarray(z)
    if not m.any():
        return a
    zz = np.where(m, a.astype(np.float64), np.nan)
    eps = default_epsilon(zz[m]) if epsilon == "auto" else float(epsilon)
    out = fill_depressions(zz, eps, valid=m)
    return np.where(m, out, np.nan).astype(a.dtype if a.dtype.kind == "f" else np.float64)
