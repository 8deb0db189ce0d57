"""D8 flow receivers with depression routing (every receiver chain reaches an outlet).

Semantics of Cordonnier, Bovy & Braun 2019, *A versatile, linear complexity algorithm for flow
routing in topographies with depressions* ("Alleviating ..."; Earth Surf. Dynam. 7, 549-562), as
used by FastFlow (Jain, Kerbl, Gain, Finley, Cordonnier 2024, *FastFlow: GPU acceleration of
flow and depression routing for landscape simulation*, CGF 43(7)):

1. **Outlets** (roots, ``rec[i] == i``): every grid-border cell, every nodata cell and every
   valid cell 8-adjacent to a nodata cell (the seeding of Priority-Flood, Barnes et al. 2014;
   the fills below equal TopoToolbox ``fillsinks`` with NaN, and richdem ``FillDepressions`` on
   grids without nodata -- richdem2 2.4.3 treats no_data cells as ordinary heights there).
2. **Steepest descent**: every other cell points to the D8 neighbour with the largest
   ``drop / distance`` (distance 1 or ``sqrt(2)`` cells); ties go to the first neighbour in the
   fixed order N, NE, E, SE, S, SW, W, NW. A cell without a strictly lower neighbour is a
   **pit**. Pits on flats are resolved first, cheaply and exactly: pits of a flat that touches
   an equal-height non-pit cell (an outlet or a cell with a lower neighbour) point along a
   breadth-first shortest D8 path to it; every closed flat (e.g. a GLOBE lake or sea at 0 not
   touching the border) becomes one basin rooted at its first cell in C order. Exactness: the
   chains stay non-ascending, so a cell's spill level is still ``max(z, level of its basin)``.
   (Without this, a 4096^2 GLOBE crop has 4.6 M single-cell pits.)
3. **Basins**: every cell is labelled by the pit its chain ends in; all outlets together form the
   virtual sea node 0.
4. **Basin graph + MST**: every 8-neighbour pair of valid cells in different basins is an edge of
   weight ``max(z_a, z_b)``; Kruskal (stable sort by weight -- ties in scan order --,
   union-find) builds the minimum spanning tree, oriented from the sea by BFS. A basin's
   **pass** is its MST edge towards its parent (``c_in`` inside the basin, ``c_out`` in the
   parent). Parallel edges that are not lighter than an earlier one are dropped while scanning
   (a small basin-pair cache); stable Kruskal would reject them anyway, so the tree is
   unchanged.
5. **Carving**: the receiver chain from ``c_in`` down to the basin's pit is reversed and
   ``rec[c_in] = c_out``. The result is a forest rooted at the outlets (no cycles).

The **fill level** of a basin is ``max(pass weight, fill level of parent)`` (the minimax height
to the sea), so ``max(z, level[basin])`` is the exact Priority-Flood fill.

Cost: ``O(N)`` for receivers/flats/labels/edges/carving plus ``O(E log E)`` to sort the ``E``
inter-basin edges (``E`` ~ total basin perimeter, usually ``<< N``); single-threaded numba.
Large scratch arrays are reused per thread (:class:`_Workspace`) by the internal callers.
"""

from __future__ import annotations

import math
import threading
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from pixels2peaks.errors import InputError

__all__ = [
    "flow_receivers",
    "Routing",
    "route",
    "prepare_heights",
    "topological_order",
    "clear_workspace",
]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)

# label codes used while building the routing
_NODATA = -1
_PIT = -2
_UNSET = -3
_PAIR_CACHE = 1 << 12  # entries of the direct-mapped basin-pair cache in _edges_rows


# --------------------------------------------------------------------------------------------
# input validation (shared by breach/fill/depressions)
# --------------------------------------------------------------------------------------------
def prepare_heights(z: Any, valid: Any = None) -> np.ndarray:
    """Validate a heightmap; return C-contiguous float heights with NaN on nodata.

    ``z``: ``(H, W)`` array-like in metres (NaN = nodata). ``valid``: optional ``(H, W)`` bool
    mask (False = nodata). float32/float64 keep their dtype (a C-contiguous input without a mask
    is returned as is, **not copied**: callers must not write into it); integers of at most 16
    bits become float32 (exact), other numbers float64.
    Raises :class:`~pixels2peaks.errors.InputError` for non-2-D, empty, ``H < 2`` or ``W < 2``
    grids (a 1-row/column grid is all border), non-numeric data, infinite heights or no valid
    cell.
    """
    return _prepare(z, valid)[0]


def _prepare(z: Any, valid: Any = None) -> tuple[np.ndarray, bool]:
    """:func:`prepare_heights` plus whether any nodata cell exists."""
    a = np.asarray(z)
    if a.ndim != 2:
        raise InputError(f"heightmap must be 2-D (H, W), got shape {a.shape}")
    h, w = a.shape
    if h == 0 or w == 0:
        raise InputError("heightmap is empty")
    if h < 2 or w < 2:
        raise InputError(f"heightmap must be at least 2 x 2 cells, got {h} x {w}")
    if a.dtype == np.bool_ or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise InputError(f"heightmap must be numeric, got dtype {a.dtype}")
    if a.dtype in (np.float32, np.float64):
        dt = a.dtype
    elif np.issubdtype(a.dtype, np.integer) and a.dtype.itemsize <= 2:
        dt = np.dtype(np.float32)
    else:
        dt = np.dtype(np.float64)
    if valid is not None:
        m = np.asarray(valid)
        if m.shape != a.shape:
            raise InputError(f"valid mask shape {m.shape} does not match heightmap {a.shape}")
        out = np.array(a, dtype=dt, order="C", copy=True)
        out[~m.astype(bool)] = np.nan
    else:
        out = np.ascontiguousarray(a, dtype=dt)
    n_nan, n_inf = _count_nonfinite(out.ravel())
    if n_inf:
        raise InputError("heightmap contains infinite values")
    if n_nan == out.size:
        raise InputError("heightmap has no valid (non-nodata) cell")
    return out, n_nan > 0


@njit(cache=True)
def _count_nonfinite(a):  # pragma: no cover - numba
    n_nan = 0
    n_inf = 0
    for i in range(a.size):
        v = a[i]
        if v != v:
            n_nan += 1
        elif math.isinf(v):
            n_inf += 1
    return n_nan, n_inf


class _Workspace(threading.local):
    """Per-thread scratch buffers reused across calls (grow-only).

    Fresh multi-MB allocations cost page faults on every call (on the 2-core benchmark VM about
    3 us per 4 KiB page, i.e. ~0.1 s for the receivers and labels of a 4096^2 grid); reusing
    scratch memory avoids that. Arrays handed to users are never workspace views.
    """

    def __init__(self) -> None:
        self.bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype: Any, keep: np.ndarray | None = None) -> np.ndarray:
        dtype = np.dtype(dtype)
        b = self.bufs.get(name)
        if b is None or b.dtype != dtype or b.size < n:
            nb = np.empty(max(int(n), 1), dtype)
            if keep is not None:
                nb[: keep.size] = keep
            self.bufs[name] = b = nb
        return b[:n]


_WS = _Workspace()


def clear_workspace() -> None:
    """Release this thread's cached scratch buffers."""
    _WS.bufs.clear()


# --------------------------------------------------------------------------------------------
# numba kernels (hand-unrolled D8 loops: ~10x faster than looping over an offset table)
# --------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _steepest(z, H, W, rec, label):  # pragma: no cover - numba
    """Steepest-descent receivers and initial labels, written into ``rec`` and ``label``.

    label: 0 outlet, -1 nodata, -2 pit, -3 unlabelled (has a receiver)."""
    N = H * W
    D = _INV_SQRT2
    for i in range(W):
        rec[i] = i
        label[i] = 0
        j = N - W + i
        rec[j] = j
        label[j] = 0
    for r in range(1, H - 1):
        base = r * W
        rec[base] = base
        label[base] = 0
        e = base + W - 1
        rec[e] = e
        label[e] = 0
        for i in range(base + 1, e):
            zi = z[i]
            # NaN drops compare False: a NaN cell or a cell with only NaN/higher neighbours
            # becomes a "pit" here and is fixed by _nodata_outlets.
            s0 = zi - z[i - W]
            s1 = (zi - z[i - W + 1]) * D
            s2 = zi - z[i + 1]
            s3 = (zi - z[i + W + 1]) * D
            s4 = zi - z[i + W]
            s5 = (zi - z[i + W - 1]) * D
            s6 = zi - z[i - 1]
            s7 = (zi - z[i - W - 1]) * D
            best = 0.0
            o = 0
            o = -W if s0 > best else o
            best = max(best, s0)
            o = -W + 1 if s1 > best else o
            best = max(best, s1)
            o = 1 if s2 > best else o
            best = max(best, s2)
            o = W + 1 if s3 > best else o
            best = max(best, s3)
            o = W if s4 > best else o
            best = max(best, s4)
            o = W - 1 if s5 > best else o
            best = max(best, s5)
            o = -1 if s6 > best else o
            best = max(best, s6)
            o = -W - 1 if s7 > best else o
            rec[i] = i + o
            label[i] = _PIT if o == 0 else _UNSET


@njit(cache=True)
def _nodata_outlets(z, rec, label, H, W):  # pragma: no cover - numba
    """Nodata cells become label -1 roots; their valid 8-neighbours become outlets (label 0)."""
    found = False
    for r in range(H):
        for c in range(W):
            i = r * W + c
            if z[i] == z[i]:
                continue
            found = True
            rec[i] = i
            label[i] = _NODATA
            for dr in range(-1, 2):
                rr = r + dr
                if rr < 0 or rr >= H:
                    continue
                for dc in range(-1, 2):
                    cc = c + dc
                    if cc < 0 or cc >= W:
                        continue
                    j = rr * W + cc
                    if z[j] == z[j]:
                        rec[j] = j
                        label[j] = 0
    return found


@njit(cache=True)
def _resolve_flat_pits(z, rec, label, W, jmp):  # pragma: no cover - numba
    """Give pits on flats a receiver of the same height (exact for filling, see module doc).

    1. *Draining flats*: pits with an equal-height non-pit neighbour (an outlet, or a cell with
       a strictly lower neighbour) point to the first such neighbour in D8 order; a
       multi-source BFS from them over equal-height pits points every other pit of the flat one
       step closer, so each chain follows a shortest D8 path to the flat's outflow.
    2. The remaining pits form closed flats (or are single-cell pits): each connected
       equal-height group is one basin whose pit is its first cell in C order, the others
       forming a BFS tree towards it.

    Pits are interior cells, so all 8 neighbours exist. Returns the number of basins including
    the sea (node 0); basin pits are marked -4, all other former pits become -6 ("flat cell")
    with ``jmp[p]`` = the cell their flat drains through (the outflow cell of a draining flat,
    the root of a closed flat): a shortcut that spares :func:`_label_basins` walking the BFS
    trees of big flats.
    """
    N = z.size
    npit = 0
    for p in range(N):
        if label[p] == _PIT:
            npit += 1
    if npit == 0:
        return 1
    # list the pits; 1) draining flats: seeds (pits with an equal-height outflow neighbour),
    # then a BFS from them (-6 marks resolved pits)
    pits = np.empty(npit, np.int64)
    queue = np.empty(npit, np.int64)
    k = 0
    tail = 0
    for p in range(N):
        if label[p] != _PIT:
            continue
        pits[k] = p
        k += 1
        zp = z[p]
        for j in (p - W, p - W + 1, p + 1, p + W + 1, p + W, p + W - 1, p - 1, p - W - 1):
            lj = label[j]
            if (lj == _UNSET or lj == 0) and z[j] == zp:
                rec[p] = j
                jmp[p] = j
                label[p] = -6
                queue[tail] = p
                tail += 1
                break
    head = 0
    while head < tail:
        q = queue[head]
        head += 1
        zq = z[q]
        e = jmp[q]
        for j in (q - W, q - W + 1, q + 1, q + W + 1, q + W, q + W - 1, q - 1, q - W - 1):
            if label[j] == _PIT and z[j] == zq:
                label[j] = -6
                rec[j] = q
                jmp[j] = e
                queue[tail] = j
                tail += 1
    # 2) closed flats and single pits (BFS trees rooted at their first cell in C order)
    nb = 1
    for t in range(npit):
        p = pits[t]
        if label[p] != _PIT:
            continue
        nb += 1
        label[p] = -4
        zp = z[p]
        q = p
        head = tail
        while True:
            for j in (q - W, q - W + 1, q + 1, q + W + 1, q + W, q + W - 1, q - 1, q - W - 1):
                if label[j] == _PIT and z[j] == zp:
                    label[j] = -6
                    rec[j] = q
                    jmp[j] = p
                    queue[tail] = j
                    tail += 1
            if head == tail:
                break
            q = queue[head]
            head += 1
    return nb


@njit(cache=True)
def _label_basins(rec, label, nb, jmp):  # pragma: no cover - numba
    """Basin roots (marked -4) get ids 1..nb-1 in C order; every other cell gets the label of
    its chain's end. Cells of resolved flats (-6) take the label of ``jmp`` (their flat's
    outflow cell or root). A backward sweep labels cells whose successor comes later in C
    order and is already labelled; the forward sweep labels the rest (the successor is either
    earlier, hence labelled, or the chain is walked), avoiding most pointer chasing.
    Returns pit_of (cell index of each basin's pit; -1 for the sea)."""
    N = rec.size
    pit_of = np.empty(nb, np.int64)
    pit_of[0] = -1
    b = 1
    for i in range(N):
        if label[i] == -4:
            label[i] = b
            pit_of[b] = i
            b += 1
    for i in range(N - 1, -1, -1):
        li = label[i]
        if li == _UNSET:
            r = rec[i]
            if r > i:
                lr = label[r]
                if lr >= 0:
                    label[i] = lr
        elif li == -6:
            lr = label[jmp[i]]
            if lr >= 0:
                label[i] = lr
    stack = np.empty(1024, np.int64)
    for i in range(N):
        li = label[i]
        if li >= _NODATA:  # labelled or nodata
            continue
        if li == _UNSET:
            r = rec[i]
            if r < i:
                label[i] = label[r]
                continue
        else:
            lr = label[jmp[i]]
            if lr >= 0:
                label[i] = lr
                continue
        n = 0
        cur = i
        while True:
            lc = label[cur]
            if lc >= 0:
                break
            if n == stack.size:
                tmp = np.empty(stack.size * 2, np.int64)
                tmp[:n] = stack[:n]
                stack = tmp
            stack[n] = cur
            n += 1
            cur = rec[cur] if lc == _UNSET else jmp[cur]
        for t in range(n):
            label[stack[t]] = lc
    return pit_of


@njit(cache=True)
def _edges_rows(z, label, H, W, r0, ea, eb, ew, ela, elb, m, ckey, cw):  # pragma: no cover
    """Scan rows ``r0..`` appending inter-basin edges at position ``m`` until the buffers could
    overflow; returns (next row, new m). See :func:`_edges`."""
    cap = ea.size
    mask = ckey.size - 1
    for r in range(r0, H):
        if m + 4 * W > cap:
            return r, m
        last_row = r == H - 1
        for c in range(W):
            a = r * W + c
            la = label[a]
            if la < 0:
                continue
            fast = not last_row and c >= 1 and c < W - 1
            if fast and (
                label[a + 1] == la
                and label[a + W + 1] == la
                and label[a + W] == la
                and label[a + W - 1] == la
            ):
                continue
            za = z[a]
            for k in range(4):  # forward neighbours E, SE, S, SW: every pair once
                if k == 0:
                    if c + 1 >= W:
                        continue
                    b = a + 1
                elif k == 1:
                    if last_row or c + 1 >= W:
                        continue
                    b = a + W + 1
                elif k == 2:
                    if last_row:
                        continue
                    b = a + W
                else:
                    if last_row or c == 0:
                        continue
                    b = a + W - 1
                lb = label[b]
                if lb < 0 or lb == la:
                    continue
                w = max(za, z[b])
                # drop if the pair cache holds a parallel edge that is not heavier (it is
                # earlier in scan order, so stable Kruskal would reject this one anyway)
                lo = min(la, lb)
                hi = max(la, lb)
                key = lo * 2147483648 + hi
                h = ((lo * 0x9E3779B1) ^ (hi * 0x85EBCA77)) & mask
                if ckey[h] == key and cw[h] <= w:
                    continue
                ckey[h] = key
                cw[h] = w
                ea[m] = a
                eb[m] = b
                ew[m] = w
                ela[m] = la
                elb[m] = lb
                m += 1
    return H, m


def _edges(z, label, H, W, ws):
    """Inter-basin edges ``(a, b, max(z_a, z_b))`` in scan order, with their basins.

    Each 8-neighbour pair of valid cells in different basins is visited once (from its first
    cell in C order, towards E, SE, S, SW). Parallel edges (same basin pair) that are not
    lighter than an earlier emitted one are dropped through a small direct-mapped pair cache:
    they could never enter the stable Kruskal MST, so the tree is unchanged while the edge count
    shrinks several-fold. Returns (ea, eb, ew, ela, elb) (views into workspace buffers).
    """
    N = H * W
    cap = max(8 * W, N // 8)
    idx = np.int32 if N < 2**31 - 1 else np.int64  # cell ids of edges
    bufs = [ws.get(k, cap, dt) for k, dt in
            (("ea", idx), ("eb", idx), ("ew", z.dtype), ("ela", np.int32), ("elb", np.int32))]
    ckey = np.full(_PAIR_CACHE, -1, np.int64)
    cw = np.empty(_PAIR_CACHE, z.dtype)
    r, m = _edges_rows(z, label, H, W, 0, *bufs, 0, ckey, cw)
    while r < H:
        cap = 2 * cap
        grown = []
        for k, b in zip(("ea", "eb", "ew", "ela", "elb"), bufs):
            nbuf = ws.get(k, cap, b.dtype, keep=b[:m])
            grown.append(nbuf)
        bufs = grown
        r, m = _edges_rows(z, label, H, W, r, *bufs, m, ckey, cw)
    return tuple(b[:m] for b in bufs)


@njit(cache=True)
def _make_keys(ew_bits, keys):  # pragma: no cover - numba
    """keys[m] = (order-preserving uint32 of the float32 weight) << 32 | m (unique keys)."""
    for m in range(ew_bits.size):
        u = np.uint64(ew_bits[m])
        if u & np.uint64(0x80000000):
            u = ~u & np.uint64(0xFFFFFFFF)
        else:
            u = u | np.uint64(0x80000000)
        keys[m] = (u << np.uint64(32)) | np.uint64(m)


@njit(cache=True)
def _stabilize_ties(order, ks):  # pragma: no cover - numba
    """Sort ``order`` ascending inside every run of equal sorted keys ``ks`` (stable result)."""
    n = order.size
    i = 0
    while i < n:
        j = i + 1
        while j < n and ks[j] == ks[i]:
            j += 1
        if j - i > 1:
            order[i:j] = np.sort(order[i:j])
        i = j


@njit(cache=True)
def _f32_exact(w):  # pragma: no cover - numba
    for i in range(w.size):
        if np.float64(np.float32(w[i])) != w[i]:
            return False
    return True


def _edge_order(ew: np.ndarray, ws) -> tuple[np.ndarray, bool]:
    """Stable order of the edge weights (ties in scan order).

    Fast path (weights exactly representable in float32, e.g. float32 or integer heights, and
    fewer than 2**32 edges): a sort of unique packed uint64 keys; returns (keys, True), the edge
    id being ``key & 0xFFFFFFFF``. Otherwise an argsort with ties re-sorted: (order, False).
    """
    m = ew.size
    if m < 2**32 and (ew.dtype == np.float32 or _f32_exact(ew)):
        w32 = ew if ew.dtype == np.float32 else ew.astype(np.float32)
        keys = ws.get("keys", m, np.uint64)
        _make_keys(w32.view(np.uint32), keys)
        keys.sort()
        return keys, True
    order = np.argsort(ew)
    _stabilize_ties(order, ew[order])
    return order, False


@njit(cache=True)
def _find(parent, x):  # pragma: no cover - numba
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True)
def _kruskal(order, packed, ela, elb, nb):  # pragma: no cover - numba
    """Kruskal MST over basins (union by size, path halving). ``order``: sorted packed keys
    (``packed``) or edge ids. Returns the ids of the MST edges."""
    parent = np.arange(nb)
    size = np.ones(nb, np.int64)
    mst = np.empty(max(nb - 1, 0), np.int64)
    nm = 0
    mask = np.uint64(0xFFFFFFFF)
    for t in range(order.size):
        if nm == nb - 1:
            break
        e = np.int64(order[t] & mask) if packed else np.int64(order[t])
        ra = _find(parent, ela[e])
        rb = _find(parent, elb[e])
        if ra == rb:
            continue
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]
        mst[nm] = e
        nm += 1
    return mst[:nm]


@njit(cache=True)
def _orient_and_carve(ma, mb, mw, mla, mlb, rec, pit_of, nb, carve):  # pragma: no cover
    """Orient the MST (edges: cells ma/mb, weights mw, basins mla/mlb) from the sea by BFS,
    compute the fill levels and optionally carve the passes. Returns (level, basins reached).
    """
    nm = ma.size
    deg = np.zeros(nb + 1, np.int64)
    for t in range(nm):
        deg[mla[t] + 1] += 1
        deg[mlb[t] + 1] += 1
    for b in range(nb):
        deg[b + 1] += deg[b]
    adj = np.empty(2 * nm, np.int64)
    fillp = deg[:nb].copy()
    for t in range(nm):
        la = mla[t]
        lb = mlb[t]
        adj[fillp[la]] = t
        fillp[la] += 1
        adj[fillp[lb]] = t
        fillp[lb] += 1
    level = np.empty(nb, mw.dtype)
    level[0] = -np.inf
    seen = np.zeros(nb, np.bool_)
    seen[0] = True
    queue = np.empty(nb, np.int64)
    queue[0] = 0
    head = 0
    tail = 1
    while head < tail:
        b = queue[head]
        head += 1
        for k in range(deg[b], deg[b + 1]):
            t = adj[k]
            if mla[t] == b:  # c_in = the cell in the child basin, c_out = the cell in b
                child = mlb[t]
                cin = mb[t]
                cout = ma[t]
            else:
                child = mla[t]
                cin = ma[t]
                cout = mb[t]
            if seen[child]:
                continue
            seen[child] = True
            level[child] = max(mw[t], level[b])
            queue[tail] = child
            tail += 1
            if carve:
                prev = cout
                cur = cin
                pit = pit_of[child]
                while cur != pit:
                    nxt = rec[cur]
                    rec[cur] = prev
                    prev = cur
                    cur = nxt
                rec[pit] = prev
    return level, tail


@njit(cache=True)
def _fill_from_levels(z, label, level):  # pragma: no cover - numba
    """out = max(z, level[basin]) (NaN stays NaN)."""
    out = np.empty_like(z)
    for i in range(z.size):
        lab = label[i]
        zi = z[i]
        if lab > 0:
            lv = level[lab]
            out[i] = lv if lv > zi else zi
        else:
            out[i] = zi
    return out


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
class Routing(NamedTuple):
    """Depression routing of a heightmap (see module docstring).

    rec: ``(H*W,)`` int64 receivers (flat indices, ``rec[i] == i`` for outlets and nodata).
    basin: ``(H*W,)`` int32
    basin of every cell before carving (0 = drains directly to an outlet, -1 = nodata).
    level: ``(n_basins,)`` fill level of each basin in metres (``-inf`` for basin 0).
    z: the validated float heights (NaN nodata), ``(H, W)``; may be the caller's array.
    """

    rec: np.ndarray
    basin: np.ndarray
    level: np.ndarray
    z: np.ndarray


def route(z: Any, valid: Any = None, *, carve: bool = True) -> Routing:
    """Compute the depression routing of ``z`` (``(H, W)`` metres, NaN nodata); see
    :class:`Routing`. ``carve=False`` skips carving the passes (``rec`` then still has pits as
    roots, but ``basin``/``level`` are complete: enough for filling). Validates input like
    :func:`prepare_heights`."""
    zz, has_nodata = _prepare(z, valid)
    return _route_prepared(zz, has_nodata, carve)


def _route_prepared(
    zz: np.ndarray, has_nodata: bool = True, carve: bool = True, reuse: bool = False
) -> Routing:
    """Routing of validated heights. ``reuse=True`` keeps rec/basin in this thread's workspace
    buffers (no page faults for big grids; only valid until the next call in this thread);
    otherwise they are fresh arrays. Edge buffers always live in the workspace."""
    H, W = zz.shape
    N = H * W
    zf = zz.ravel()
    ws = _WS
    # int64 receivers: their stores vectorize in _steepest (int32 stores do not)
    rec = ws.get("rec", N, np.int64) if reuse else np.empty(N, np.int64)
    label = ws.get("label", N, np.int32) if reuse else np.empty(N, np.int32)
    _steepest(zf, H, W, rec, label)
    if has_nodata:
        _nodata_outlets(zf, rec, label, H, W)
    jmp = ws.get("jmp", N, np.int64)  # only written/read at flat cells
    nb = _resolve_flat_pits(zf, rec, label, W, jmp)
    pit_of = _label_basins(rec, label, nb, jmp)
    if nb > 1:
        ea, eb, ew, ela, elb = _edges(zf, label, H, W, ws)
        order, packed = _edge_order(ew, ws)
        mst = _kruskal(order, packed, ela, elb, nb)
        level, reached = _orient_and_carve(
            ea[mst], eb[mst], ew[mst], ela[mst], elb[mst], rec, pit_of, nb, carve
        )
        if reached != nb:  # pragma: no cover - impossible for a connected grid
            raise RuntimeError("depression routing: some basins are not connected to an outlet")
    else:
        level = np.full(1, -np.inf, dtype=zf.dtype)
    return Routing(rec, label, level, zz)


def flow_receivers(z: Any, valid: Any = None) -> np.ndarray:
    """D8 steepest-descent receivers with depression routing (Cordonnier et al. 2019).

    Parameters
    ----------
    z : (H, W) array-like
        Heights in metres; NaN is nodata. Row 0 north, C-order flat indices ``i = row * W + col``.
    valid : (H, W) bool array, optional
        False marks additional nodata cells.

    Returns
    -------
    (H*W,) int64 array of flat receiver indices. ``rec[i] == i`` for outlets (border cells,
    nodata cells and valid cells touching nodata); every other chain reaches an outlet without
    cycles. Inside depressions the chains run to the basin's pass (the carved path), so they
    may go uphill there.

    Raises
    ------
    InputError
        Empty, ``H < 2`` or ``W < 2`` grids, infinite heights, no valid cell.

    Examples
    --------
    >>> z = np.array([[5., 5, 5], [5, 1, 5], [5, 0, 5]])
    >>> int(flow_receivers(z)[4])  # the pit (1, 1) drains to the lowest border cell (2, 1)
    7
    """
    return route(z, valid).rec


# --------------------------------------------------------------------------------------------
# topological order of a receiver forest (shared by breach/fill)
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _topological_order(rec, indeg, order):  # pragma: no cover - numba
    """Kahn's algorithm: ``order`` lists every cell after all of its donors (sources first,
    roots last within their tree). ``indeg`` is scratch. Returns the number of cells placed
    (``< N`` only if ``rec`` has a cycle)."""
    N = rec.size
    for i in range(N):
        indeg[i] = 0
    for i in range(N):
        r = rec[i]
        if r != i:
            indeg[r] += 1
    tail = 0
    for i in range(N):
        if indeg[i] == 0:
            order[tail] = i
            tail += 1
    head = 0
    while head < tail:
        c = order[head]
        head += 1
        r = rec[c]
        if r != c:
            d = indeg[r] - 1
            indeg[r] = d
            if d == 0:
                order[tail] = r
                tail += 1
    return tail


def _propagate(kernel, zf: np.ndarray, rec: np.ndarray, eps: float) -> np.ndarray:
    """New heights ``out`` from ``kernel(zf, rec, eps, order, out)``, a numba pass over the
    topological ``order`` of the receivers ``rec`` (donors first). Raises
    :class:`~pixels2peaks.errors.InputError` if ``rec`` has a cycle."""
    N = zf.size
    order = _WS.get("order", N, np.int64)
    if _topological_order(rec, _WS.get("indeg", N, np.int32), order) != N:
        raise InputError("receivers contain a cycle")
    out = np.empty_like(zf)
    kernel(zf, rec, eps, order, out)
    return out


def topological_order(rec: np.ndarray, *, reuse: bool = False) -> np.ndarray:
    """Order of the cells of a receiver forest such that every cell comes after all cells
    draining into it (donors first, outlets last). ``rec``: ``(N,)`` flat receivers.
    Raises ``ValueError`` if ``rec`` contains a cycle or out-of-range index."""
    rec = np.asarray(rec)
    N = rec.size
    if N and (rec.min() < 0 or rec.max() >= N):
        raise ValueError("receiver index out of range")
    ws = _WS if reuse else _Workspace()
    indeg = ws.get("indeg", N, np.int32)
    order = ws.get("order", N, np.int64) if reuse else np.empty(N, np.int64)
    n = _topological_order(rec, indeg, order)
    if n != N:
        raise ValueError("receivers contain a cycle")
    return order
