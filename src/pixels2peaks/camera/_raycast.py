"""numba kernels: exact ray / heightfield intersection with a max-mip hierarchy, and the
Algorithm 2 view-bound march. Internal; see :mod:`pixels2peaks.camera.render` and
:mod:`pixels2peaks.camera.viewbound` for the documented semantics.

Grid coordinates of a world point ``(x, y)``: ``s = x / dx + off`` (columns, east) and
``r = H - y / dx + off`` (rows, south). Leaves are unit squares ``[j, j+1] x [i, i+1]`` in
``(s, r)``:

* mode 0, ``BILINEAR``: ``off = 0.5``; ``zl`` is the heightmap padded by one edge-replicated
  cell on each side, leaf ``(i, j)`` is the bilinear patch between the cell centres
  ``zl[i:i+2, j:j+2]``; the domain is ``[0.5, W + 0.5] x [0.5, H + 0.5]`` (the grid extent).
  Intersections solve the quadratic (ray z - bilinear height) exactly in each patch.
* mode 1, ``BLOCKS``: ``off = 0``; ``zl`` is the heightmap, leaf = cell = a flat-topped column of
  height ``z`` over its footprint (the paper's Algorithm 2 terrain model); the domain is
  ``[0, W] x [0, H]``. A ray hits a column iff its lowest point over the footprint is
  *strictly* below the column top.

NaN leaves (any NaN corner for patches) are holes: never hit. Traversal: every ray is clipped to
the domain and walks the leaves it crosses in order, skipping whole max-mip nodes whose maximum
is below the ray over the node; leaf tests depend only on (ray, leaf), not on the path taken,
so results are deterministic. Every loop is bounded (no hangs on any input).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

BILINEAR = 0
BLOCKS = 1
_INF = np.inf


@njit(cache=True, inline="always")
def _slab(o, k, lo, hi):
    """Parameter interval in which ``o + k t`` lies in ``[lo, hi]``."""
    if k > 0.0:
        inv = 1.0 / k
        return (lo - o) * inv, (hi - o) * inv
    if k < 0.0:
        inv = 1.0 / k
        return (hi - o) * inv, (lo - o) * inv
    if lo <= o and o <= hi:
        return -_INF, _INF
    return _INF, -_INF


@njit(cache=True, inline="always")
def _start_index(p, k, n):
    """Leaf index containing coordinate ``p`` for a ray moving with slope ``k`` (ties go to the
    leaf ahead), clipped to ``[0, n - 1]``."""
    i = int(math.floor(p))
    if k < 0.0 and i == p:
        i -= 1
    if i < 0:
        i = 0
    if i > n - 1:
        i = n - 1
    return i


@njit(cache=True, inline="always")
def _clip(s0, r0, ks, kr, s_lo, s_hi, r_lo, r_hi, t_min, t_max):
    """Parameter interval ``(t_lo, t_hi)`` of the ray inside the box ``[s_lo, s_hi] x
    [r_lo, r_hi]`` and ``[t_min, t_max]`` (empty unless ``t_lo < t_hi``)."""
    a_in, a_out = _slab(s0, ks, s_lo, s_hi)
    b_in, b_out = _slab(r0, kr, r_lo, r_hi)
    return max(max(a_in, b_in), t_min), min(min(a_out, b_out), t_max)


@njit(cache=True, inline="always")
def _start_leaf(s0, r0, ks, kr, t, nr, nc):
    """Leaf ``(i, j)`` of an ``nr x nc`` grid where the ray is at parameter ``t``."""
    return _start_index(r0 + kr * t, kr, nr), _start_index(s0 + ks * t, ks, nc)


@njit(cache=True, inline="always")
def _exit_t(o, k, lo, hi):
    """Parameter where ``o + k t`` leaves ``[lo, hi]`` (inf if ``k == 0``)."""
    if k > 0.0:
        return (hi - o) / k
    if k < 0.0:
        return (lo - o) / k
    return _INF


@njit(cache=True, inline="always")
def _node(ic, jc, level, s0, r0, ks, kr):
    """Max-mip node of ``level`` holding leaf ``(ic, jc)``: ``(bi, bj, ty, tx, r_a, r_b, s_a,
    s_b)``, its index, the ray's exit times across its row and column sides and its leaf
    ranges ``[r_a, r_b) x [s_a, s_b)``."""
    n = 1 << level
    bi = ic >> level
    bj = jc >> level
    r_a = bi * n
    s_a = bj * n
    return (bi, bj, _exit_t(r0, kr, r_a, r_a + n), _exit_t(s0, ks, s_a, s_a + n), r_a, r_a + n,
            s_a, s_a + n)


@njit(cache=True, inline="always")
def _next_leaf(node, ic, jc, level, nlev, s0, r0, ks, kr, nr, nc):
    """``(ic, jc, level)`` after the ray leaves ``node`` (:func:`_node`): the leaf it enters
    (outside ``[0, nr) x [0, nc)`` when it leaves the grid), one level up if that leaf lies
    outside the node's parent."""
    bi, bj, ty, tx, r_a, r_b, s_a, s_b = node
    te = min(tx, ty)
    if tx <= ty:
        jc = s_b if ks > 0.0 else s_a - 1
    if ty <= tx:
        ic = r_b if kr > 0.0 else r_a - 1
    if tx < ty:
        ic = min(max(_start_index(r0 + kr * te, kr, nr), r_a), r_b - 1)
    elif ty < tx:
        jc = min(max(_start_index(s0 + ks * te, ks, nc), s_a), s_b - 1)
    if level < nlev - 1 and ((jc >> (level + 1)) != (bj >> 1) or (ic >> (level + 1)) != (bi >> 1)):
        level += 1
    return ic, jc, level


@njit(cache=True, inline="always")
def _pixel_dir(R, f, cx, cy, u, v):
    """Unit world direction of the ray through pixel coordinates ``(u, v)``."""
    a = (u - cx) / f
    b = (v - cy) / f
    dx = R[0, 0] * a + R[0, 1] * b + R[0, 2]
    dy = R[1, 0] * a + R[1, 1] * b + R[1, 2]
    dz = R[2, 0] * a + R[2, 1] * b + R[2, 2]
    n = math.sqrt(dx * dx + dy * dy + dz * dz)
    return dx / n, dy / n, dz / n


@njit(cache=True)
def _leaf_interval(i, j, s0, r0, ks, kr, t_lo, t_hi):
    a_in, a_out = _slab(s0, ks, float(j), float(j + 1))
    b_in, b_out = _slab(r0, kr, float(i), float(i + 1))
    ta = max(max(a_in, b_in), t_lo)
    tb = min(min(a_out, b_out), t_hi)
    return ta, tb, a_in, b_in


@njit(cache=True)
def _hit_bilinear(zl, i, j, s0, r0, z0, ks, kr, kz, t_lo, t_hi):
    """First ``t`` in patch ``(i, j)`` where the ray reaches the bilinear surface, or inf."""
    z00 = zl[i, j]
    z10 = zl[i, j + 1]
    z01 = zl[i + 1, j]
    z11 = zl[i + 1, j + 1]
    if z00 != z00 or z10 != z10 or z01 != z01 or z11 != z11:
        return _INF
    ta, tb, _, _ = _leaf_interval(i, j, s0, r0, ks, kr, t_lo, t_hi)
    if not ta <= tb:
        return _INF
    a0 = s0 + ks * ta - j
    b0 = r0 + kr * ta - i
    e = z10 - z00
    g = z01 - z00
    q = z00 - z10 - z01 + z11
    h0 = z00 + e * a0 + g * b0 + q * a0 * b0
    h1 = e * ks + g * kr + q * (a0 * kr + b0 * ks)
    A = -q * ks * kr
    B = kz - h1
    C = z0 + kz * ta - h0
    if C <= 0.0:
        return ta
    L = tb - ta
    tau = _INF
    if A == 0.0:
        if B < 0.0:
            tau = -C / B
    else:
        disc = B * B - 4.0 * A * C
        if disc >= 0.0:
            sq = math.sqrt(disc)
            qq = -0.5 * (B + (sq if B >= 0.0 else -sq))
            if qq != 0.0:
                r1 = qq / A
                r2 = C / qq
                if r1 >= 0.0 and r1 < tau:
                    tau = r1
                if r2 >= 0.0 and r2 < tau:
                    tau = r2
    if tau <= L:
        return ta + tau
    return _INF


@njit(cache=True)
def _hit_block(zl, i, j, s0, r0, z0, ks, kr, kz, t_lo, t_hi):
    """First ``t`` where the ray enters column ``(i, j)`` strictly below its top, or inf."""
    zc = zl[i, j]
    if zc != zc:
        return _INF
    ta, tb, _, _ = _leaf_interval(i, j, s0, r0, ks, kr, t_lo, t_hi)
    if not ta <= tb:
        return _INF
    za = z0 + kz * ta
    if za < zc:
        return ta
    zb = z0 + kz * tb
    if zb < zc:
        return ta + (zc - za) / kz
    return _INF


@njit(cache=True)
def _trace(mode, zl, nr, nc, mip, lv_off, lv_w, nlev, s0, r0, z0, ks, kr, kz, t_min, t_max, dom_s0,
           dom_s1, dom_r0, dom_r1):
    """Closest hit ``(t, i, j)`` of one ray (t = inf, -1, -1 on a miss)."""
    t_lo, t_hi = _clip(s0, r0, ks, kr, dom_s0, dom_s1, dom_r0, dom_r1, t_min, t_max)
    if not t_lo < t_hi:
        return _INF, -1, -1
    ic, jc = _start_leaf(s0, r0, ks, kr, t_lo, nr, nc)
    level = nlev - 1
    t = t_lo
    max_iter = 4 * (nlev + 2) * (nr + nc + 4)
    for _ in range(max_iter):
        node = _node(ic, jc, level, s0, r0, ks, kr)
        bi, bj, ty, tx = node[:4]
        te = min(tx, ty)
        t_end = min(te, t_hi)
        zn = mip[lv_off[level] + bi * lv_w[level] + bj]
        za = z0 + kz * t
        zb = z0 + kz * t_end
        if min(za, zb) <= zn:
            if level > 0:
                level -= 1
                continue
            if mode == 0:
                th = _hit_bilinear(zl, ic, jc, s0, r0, z0, ks, kr, kz, t_lo, t_hi)
            else:
                th = _hit_block(zl, ic, jc, s0, r0, z0, ks, kr, kz, t_lo, t_hi)
            if th < _INF:
                return th, ic, jc
        if te >= t_hi:
            return _INF, -1, -1
        ic, jc, level = _next_leaf(node, ic, jc, level, nlev, s0, r0, ks, kr, nr, nc)
        if jc < 0 or jc >= nc or ic < 0 or ic >= nr:
            return _INF, -1, -1
        if te > t:
            t = te
    return _INF, -1, -1  # pragma: no cover - bound not reached by construction


@njit(cache=True)
def _normal(mode, zl, i, j, s0, r0, z0, ks, kr, kz, t, t_lo_dom, dx):
    """Unit world normal at the hit ``t`` of leaf ``(i, j)``."""
    if mode == 0:
        a = min(max(s0 + ks * t - j, 0.0), 1.0)
        b = min(max(r0 + kr * t - i, 0.0), 1.0)
        z00 = zl[i, j]
        z10 = zl[i, j + 1]
        z01 = zl[i + 1, j]
        z11 = zl[i + 1, j + 1]
        q = z00 - z10 - z01 + z11
        hx = (z10 - z00 + q * b) / dx
        hy = -(z01 - z00 + q * a) / dx
        n = math.sqrt(1.0 + hx * hx + hy * hy)
        return -hx / n, -hy / n, 1.0 / n
    ta, tb, a_in, b_in = _leaf_interval(i, j, s0, r0, ks, kr, t_lo_dom, _INF)
    if z0 + kz * ta < zl[i, j]:  # side wall
        if a_in >= b_in:
            return (-1.0 if ks > 0.0 else 1.0), 0.0, 0.0
        return 0.0, (1.0 if kr > 0.0 else -1.0), 0.0
    return 0.0, 0.0, 1.0


@njit(cache=True)
def _ray_start(mode, H, W, x, y, dx):
    off = 0.5 if mode == 0 else 0.0
    return x / dx + off, H - y / dx + off


@njit(parallel=True, cache=True)
def render_kernel(mode, zl, mip, lv_off, lv_w, nlev, H, W, dx, R, f, cx, cy, cam, img_h, img_w,
                  t_out, pts_out, nrm_out, leaf_out):
    """Primary rays through every pixel centre. Writes depth ``t`` (inf = miss), world points
    (NaN on a miss), unit normals (NaN on a miss) and the hit leaf ``(i, j)`` (-1 on a miss)."""
    nr, nc = (H + 1, W + 1) if mode == 0 else (H, W)
    off = 0.5 if mode == 0 else 0.0
    d_s1 = W + off
    d_r1 = H + off
    s0, r0 = _ray_start(mode, H, W, cam[0], cam[1], dx)
    z0 = cam[2]
    for p in prange(img_h * img_w):
        row = p // img_w
        col = p - row * img_w
        ddx, ddy, ddz = _pixel_dir(R, f, cx, cy, col + 0.5, row + 0.5)
        ks = ddx / dx
        kr = -ddy / dx
        t, i, j = _trace(mode, zl, nr, nc, mip, lv_off, lv_w, nlev, s0, r0, z0, ks, kr, ddz, 0.0,
                         _INF, off, d_s1, off, d_r1)
        t_out[row, col] = t
        leaf_out[row, col, 0] = i
        leaf_out[row, col, 1] = j
        if t < _INF:
            pts_out[row, col, 0] = cam[0] + t * ddx
            pts_out[row, col, 1] = cam[1] + t * ddy
            pts_out[row, col, 2] = z0 + t * ddz
            t_dom, _ = _clip(s0, r0, ks, kr, off, d_s1, off, d_r1, 0.0, _INF)
            nx, ny, nz = _normal(mode, zl, i, j, s0, r0, z0, ks, kr, ddz, t, t_dom, dx)
            nrm_out[row, col, 0] = nx
            nrm_out[row, col, 1] = ny
            nrm_out[row, col, 2] = nz
        else:
            for k in range(3):
                pts_out[row, col, k] = np.nan
                nrm_out[row, col, k] = np.nan


@njit(parallel=True, cache=True)
def cast_kernel(mode, zl, mip, lv_off, lv_w, nlev, H, W, dx, origins, dirs, t_min, t_max, t_out):
    """Arbitrary rays (unit ``dirs``; ``origins``/``dirs`` of length N or 1, broadcast): the
    distance to the first hit in ``[t_min, t_max]`` or inf."""
    nr, nc = (H + 1, W + 1) if mode == 0 else (H, W)
    off = 0.5 if mode == 0 else 0.0
    n = t_out.shape[0]
    so = 1 if origins.shape[0] > 1 else 0
    sd = 1 if dirs.shape[0] > 1 else 0
    for k in prange(n):
        o = origins[k * so]
        d = dirs[k * sd]
        s0, r0 = _ray_start(mode, H, W, o[0], o[1], dx)
        t, _, _ = _trace(mode, zl, nr, nc, mip, lv_off, lv_w, nlev, s0, r0, o[2], d[0] / dx,
                         -d[1] / dx, d[2], t_min, t_max, off, W + off, off, H + off)
        t_out[k] = t


@njit(cache=True)
def _dda_bound_ray(zv, H, W, s0, r0, z0, ks, kr, kz, out, write):
    """One ray of Algorithm 2 by the plain cell walk (blocks model). With ``write``, each cell the
    ray crosses before its hit gets ``min(out, lowest ray z over the cell's footprint)``. Returns
    True when the ray hits a known column."""
    t_lo, t_hi = _clip(s0, r0, ks, kr, 0.0, float(W), 0.0, float(H), 0.0, _INF)
    if not t_lo < t_hi:
        return False
    i, j = _start_leaf(s0, r0, ks, kr, t_lo, H, W)
    dj = 1 if ks > 0.0 else -1
    di = 1 if kr > 0.0 else -1
    inv_s = 1.0 / ks if ks != 0.0 else 0.0
    inv_r = 1.0 / kr if kr != 0.0 else 0.0
    # slab times of the current cell, updated incrementally with the same expressions
    # as _leaf_interval, so the hit test is bit-identical to the renderer's
    sa, sb = _slab(s0, ks, float(j), float(j + 1))
    ra, rb = _slab(r0, kr, float(i), float(i + 1))
    p = i * W + j
    za = z0 + kz * max(max(sa, ra), t_lo)
    for _ in range(2 * (H + W) + 4):
        tb = min(min(sb, rb), t_hi)
        zb = z0 + kz * tb
        m = za if za < zb else zb
        if m < zv[p]:  # False for NaN (empty cell)
            return True
        if write and m < out[p]:
            out[p] = m
        if tb >= t_hi:
            return False
        step_i = rb <= sb
        if sb <= rb:
            j += dj
            if j < 0 or j >= W:
                return False
            p += dj
            sa = sb
            sb = (float(j + 1) - s0) * inv_s if dj > 0 else (float(j) - s0) * inv_s
        if step_i:
            i += di
            if i < 0 or i >= H:
                return False
            p += di * W
            ra = rb
            rb = (float(i + 1) - r0) * inv_r if di > 0 else (float(i) - r0) * inv_r
        za = zb
    return False


@njit(parallel=True, cache=True)
def view_bound_kernel(zv, H, W, dx, R, f, cx, cy, cam, img_h, img_w, sub_x, sub_y, nthreads,
                      need_hit, buf):
    """Algorithm 2 (blocks model, exact cell traversal): rays through ``sub_x x sub_y`` points of
    every pixel; each cell a ray crosses before its hit gets ``min(buf, lowest ray z over the
    cell's footprint)``. ``zv``: flat ``(H*W,)`` heights (NaN = empty); ``need_hit``: flat
    ``(img_h*img_w,)`` uint8, 1 where a pixel's rays bound only if they hit a known column (the
    photo shows terrain there); ``buf``: ``(nthreads, H*W)``, one buffer per thread (no atomics),
    reduced by the caller."""
    s0, r0 = _ray_start(1, H, W, cam[0], cam[1], dx)
    z0 = cam[2]
    n_rays = img_h * sub_y * img_w * sub_x
    per = (n_rays + nthreads - 1) // nthreads
    for th in prange(nthreads):
        out = buf[th]
        for k in range(th * per, min(n_rays, (th + 1) * per)):
            rr = k // (img_w * sub_x)
            cc = k - rr * (img_w * sub_x)
            u = cc // sub_x + ((cc % sub_x) + 0.5) / sub_x
            v = rr // sub_y + ((rr % sub_y) + 0.5) / sub_y
            ddx, ddy, kz = _pixel_dir(R, f, cx, cy, u, v)
            ks = ddx / dx
            kr = -ddy / dx
            if need_hit[(rr // sub_y) * img_w + cc // sub_x] and not _dda_bound_ray(
                    zv, H, W, s0, r0, z0, ks, kr, kz, out, False):
                continue
            _dda_bound_ray(zv, H, W, s0, r0, z0, ks, kr, kz, out, True)


@njit(cache=True)
def _rebuild_bound_mip(out, known, mip, lv_off, lv_w, lv_h, nlev):
    """Max-mip of the current bounds of the *unknown* cells (known cells count as -inf): a ray
    whose lowest point over a node is at or above it cannot lower any bound in the node."""
    n0 = lv_h[0] * lv_w[0]
    for p in range(n0):
        mip[p] = -_INF if known[p] else out[p]
    for lv in range(1, nlev):
        hp, wp, op = lv_h[lv - 1], lv_w[lv - 1], lv_off[lv - 1]
        for bi in range(lv_h[lv]):
            for bj in range(lv_w[lv]):
                m = -_INF
                for di in range(2):
                    i = 2 * bi + di
                    if i < hp:
                        for dj in range(2):
                            j = 2 * bj + dj
                            if j < wp and mip[op + i * wp + j] > m:
                                m = mip[op + i * wp + j]
                mip[lv_off[lv] + bi * lv_w[lv] + bj] = m


@njit(cache=True)
def _view_bound_ray(zv, zv2, known, zmip, omip, lv_off, lv_w, nlev, out, H, W, s0, r0, z0, ks, kr,
                    kz, need_hit):
    """One ray of Algorithm 2 with max-mip skipping: nodes where the ray can neither hit a known
    column nor lower a bound are skipped; cells are tested exactly as in the plain walk. With
    ``need_hit`` a ray that hits no known column (``zv2``: the ``(H, W)`` heights) bounds nothing."""
    t_lo, t_hi = _clip(s0, r0, ks, kr, 0.0, float(W), 0.0, float(H), 0.0, _INF)
    if not t_lo < t_hi:
        return
    if need_hit:
        th, _, _ = _trace(1, zv2, H, W, zmip, lv_off, lv_w, nlev, s0, r0, z0, ks, kr, kz, 0.0, _INF,
                          0.0, float(W), 0.0, float(H))
        if th == _INF:
            return
    ic, jc = _start_leaf(s0, r0, ks, kr, t_lo, H, W)
    level = nlev - 1
    t = t_lo
    for _ in range(4 * (nlev + 2) * (H + W + 4)):
        node = _node(ic, jc, level, s0, r0, ks, kr)
        bi, bj, ty, tx = node[:4]
        te = min(tx, ty)
        t_end = min(te, t_hi)
        za = z0 + kz * t
        zb = z0 + kz * t_end
        # margin >> rounding of the node times: skipping is conservative
        zmin = min(za, zb) - 1e-9 * (1.0 + abs(za) + abs(zb))
        q = lv_off[level] + bi * lv_w[level] + bj
        if not (zmin >= zmip[q] and zmin >= omip[q]):
            if level > 0:
                level -= 1
                continue
            ta, tb, _, _ = _leaf_interval(ic, jc, s0, r0, ks, kr, t_lo, t_hi)
            if ta <= tb:
                m = min(z0 + kz * ta, z0 + kz * tb)
                p = ic * W + jc
                if m < zv[p]:
                    return
                if not known[p] and m < out[p]:
                    out[p] = m
        if te >= t_hi:
            return
        ic, jc, level = _next_leaf(node, ic, jc, level, nlev, s0, r0, ks, kr, H, W)
        if jc < 0 or jc >= W or ic < 0 or ic >= H:
            return
        if te > t:
            t = te


@njit(parallel=True, cache=True)
def view_bound_mip_kernel(zv, known, zmip, lv_off, lv_w, lv_h, nlev, H, W, dx, R, f, cx, cy, cam,
                          img_h, img_w, sub_x, sub_y, nthreads, rebuild_rows, need_hit, buf, omips):
    """:func:`view_bound_kernel` with max-mip skipping (same result). Each thread takes every
    ``nthreads``-th row of rays from the **bottom** of the image up, so lower rays bound the
    cells first and the rays above them skip whole nodes; its bound pyramid is rebuilt every
    ``rebuild_rows`` rows (a stale pyramid only skips less)."""
    s0, r0 = _ray_start(1, H, W, cam[0], cam[1], dx)
    z0 = cam[2]
    n_rows = img_h * sub_y
    n_cols = img_w * sub_x
    zv2 = zv.reshape(H, W)
    for th in prange(nthreads):
        out = buf[th]
        omip = omips[th]
        _rebuild_bound_mip(out, known, omip, lv_off, lv_w, lv_h, nlev)
        done = 0
        for k in range(th, n_rows, nthreads):
            rr = n_rows - 1 - k
            v = rr // sub_y + ((rr % sub_y) + 0.5) / sub_y
            for cc in range(n_cols):
                u = cc // sub_x + ((cc % sub_x) + 0.5) / sub_x
                ddx, ddy, kz = _pixel_dir(R, f, cx, cy, u, v)
                _view_bound_ray(zv, zv2, known, zmip, omip, lv_off, lv_w, nlev, out, H, W, s0, r0,
                                z0, ddx / dx, -ddy / dx, kz, need_hit[(rr // sub_y) * img_w + cc // sub_x])
            done += 1
            if done % rebuild_rows == 0:
                _rebuild_bound_mip(out, known, omip, lv_off, lv_w, lv_h, nlev)


def build_mip(leaf_max: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Max-mip pyramid of a 2-D leaf-max array (``-inf`` = hole) flattened for the kernels:
    ``(flat, level offsets, level widths, n_levels)``; the last level is a single node."""
    levels = [np.ascontiguousarray(leaf_max, dtype=np.float64)]
    while levels[-1].shape[0] > 1 or levels[-1].shape[1] > 1:
        a = levels[-1]
        h, w = a.shape
        ph, pw = h + (h % 2), w + (w % 2)
        p = np.full((ph, pw), -np.inf)
        p[:h, :w] = a
        levels.append(p.reshape(ph // 2, 2, pw // 2, 2).max(axis=(1, 3)))
    offs = np.cumsum([0] + [lv.size for lv in levels[:-1]]).astype(np.int64)
    widths = np.array([lv.shape[1] for lv in levels], dtype=np.int64)
    flat = np.concatenate([lv.ravel() for lv in levels])
    return flat, offs, widths, len(levels)


def mip_heights(leaf_shape: tuple[int, int], nlev: int) -> np.ndarray:
    """Row counts of the :func:`build_mip` levels of a ``leaf_shape`` array."""
    h = leaf_shape[0]
    out = []
    for _ in range(nlev):
        out.append(h)
        h = (h + 1) // 2
    return np.array(out, dtype=np.int64)
