"""Depression breaching along the depression-routed receiver forest (paper Eq. 7, Algorithm 1).

The breached height of a cell ``r`` is

    H(r) = min over all cells u upstream of r (u = r included) of  z[u] - d(u, r) * epsilon

where "upstream" and the distance ``d`` (in receiver steps) refer to the receiver forest of
:func:`~pixels2peaks.terrain.hydrology.routing.flow_receivers` (D8 steepest descent with
depression routing, Cordonnier et al. 2019; FastFlow, Jain et al. 2024b). Each depression is
thus carved along its routed path over the pass down to the outlet instead of being filled;
cells never rise (``H <= z``) and, for ``epsilon > 0``, heights strictly decrease along every
receiver chain, so every valid cell has a strictly descending D8 path to an outlet (a border
cell, or a cell next to nodata). Nodata (NaN) stays NaN.

Two equivalent evaluations:

* ``"sequential"``: one pass in topological order (sources first),
  ``H[rec c] = min(H[rec c], H[c] - epsilon)`` -- O(N), numba, CPU.
* ``"pointer_jumping"``: the paper's Algorithm 1 (GPU-Breach) in vectorised torch. Round ``k``
  pushes ``H[c] - 2^k * epsilon`` to the ``2^k``-th successor with
  ``scatter_reduce_(..., "amin")`` and doubles the pointers (``P = P[P]``); a cell leaves the
  active set as soon as its pointer chain reaches a root, so the loop stops after
  ``ceil(log2(longest chain))`` rounds. Device-agnostic (runs wherever the input tensor lives).

Both give identical heights for ``epsilon = 0`` and for dyadic ``epsilon`` with integer-valued
heights (every intermediate value is then exactly representable). Otherwise they agree to
floating-point rounding only (``~1e-9`` relative in float64, ~float32 epsilon in float32):
sequential subtracts ``epsilon`` once per step, accumulating one rounding per step, whereas
pointer jumping subtracts ``2^k * epsilon`` in one go, so the rounding order differs.

Choice of ``epsilon``: heights are routinely stored as float32. A drop smaller than the float32
spacing of the heights is lost when rounding, so strict descent needs ``epsilon`` above it:
``epsilon="auto"`` (:func:`default_epsilon`) uses 4 float32 ulps of ``max(|z|, 1 m)``, a power
of two (so integer DEMs stay exact) and never subnormal -- unlike a per-cell ``nextafter``, which
at elevation 0 (sea in GLOBE) yields 5e-324 increments that routers then ignore.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from numba import njit

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology.routing import _prepare, _propagate, _route_prepared

__all__ = ["breach_depressions", "breach_pointer_jumping", "default_epsilon", "BreachMethod"]

BreachMethod = Literal["sequential", "pointer_jumping"]


def default_epsilon(z: Any) -> float:
    """Default slope differential in metres per receiver step: 4 float32 ulps of the largest
    absolute valid height (at least 1 m), i.e. ``2**(e - 22)`` with ``max(|z|, 1) = m * 2**e``,
    ``0.5 <= m < 1``. A power of two, never subnormal; e.g. 2**-8 m for heights up to 8848 m.

    >>> default_epsilon(np.array([[0.0, 100.0], [8848.0, 5.0]]))
    0.00390625
    """
    if isinstance(z, torch.Tensor):
        a = z.detach()
        a = a[~torch.isnan(a)]
        m = float(a.abs().max()) if a.numel() else 1.0
    else:
        a = np.asarray(z, dtype=np.float64)
        m = float(np.nanmax(np.abs(a))) if np.any(~np.isnan(a)) else 1.0
    m = max(m, 1.0)
    if not math.isfinite(m):
        raise InputError("heightmap contains infinite values")
    _, e = math.frexp(m)
    return math.ldexp(1.0, e - 22)


def _check_epsilon(epsilon: Any, z: Any) -> float:
    if isinstance(epsilon, str):
        if epsilon != "auto":
            raise InputError(f"epsilon must be a number >= 0 or 'auto', got {epsilon!r}")
        return default_epsilon(z)
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise InputError(f"epsilon must be a number >= 0 or 'auto', got {epsilon!r}") from None
    if not math.isfinite(eps) or eps < 0:
        raise InputError(f"epsilon must be finite and >= 0, got {epsilon!r}")
    return eps


def _check_receivers(receivers: Any, n: int) -> np.ndarray:
    rec = receivers.detach().cpu().numpy() if isinstance(receivers, torch.Tensor) else receivers
    rec = np.asarray(rec)
    if rec.shape not in ((n,),) and rec.size != n:
        raise InputError(f"receivers must have H*W = {n} entries, got shape {rec.shape}")
    if not np.issubdtype(rec.dtype, np.integer):
        raise InputError(f"receivers must be integer flat indices, got dtype {rec.dtype}")
    rec = np.ascontiguousarray(rec.reshape(n), dtype=np.int64)
    if n and (rec.min() < 0 or rec.max() >= n):
        raise InputError("receivers contain an out-of-range flat index")
    return rec


def _receivers(zz: np.ndarray, has_nodata: bool, receivers: Any) -> np.ndarray:
    """The given ``receivers`` (checked) or the carved depression routing of ``zz``."""
    if receivers is None:
        return _route_prepared(zz, has_nodata, carve=True, reuse=True).rec
    return _check_receivers(receivers, zz.size)


def _per_grid(z: torch.Tensor, epsilon: Any, valid: Any, fn) -> torch.Tensor:
    """Torch front end shared by breach and fill: ``fn(zb, zz, has_nodata, eps)`` on every
    ``(H, W)`` grid of ``z`` (``(H, W)`` or batched; integers become float32), where ``zb`` is
    the grid with the ``valid == False`` cells NaN, ``zz, has_nodata`` its validated numpy copy
    and ``eps`` the checked ``epsilon``. The results are stacked back into ``z``'s shape."""
    if not z.is_floating_point():
        z = z.to(torch.float32)
    if z.ndim < 2:
        raise InputError(f"heightmap must be (H, W) or (B, 1, H, W), got shape {tuple(z.shape)}")
    H, W = z.shape[-2:]
    flat = z.detach().reshape(-1, H, W)
    vmask = None
    if valid is not None:
        vmask = torch.as_tensor(valid, device=z.device).to(torch.bool)
        vmask = vmask.reshape(-1, H, W).expand(flat.shape[0], H, W)
    outs = []
    with torch.no_grad():
        for b in range(flat.shape[0]):
            zb = flat[b]
            if vmask is not None:
                zb = torch.where(vmask[b], zb, torch.full_like(zb, float("nan")))
            zz, has_nodata = _prepare(zb.cpu().numpy())
            eps = _check_epsilon(epsilon, zz)
            outs.append(fn(zb, zz, has_nodata, eps).reshape(H, W).to(z.dtype))
    return torch.stack(outs).reshape(z.shape)


# --------------------------------------------------------------------------------------------
# sequential (numba)
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _minprop_sequential(z, rec, eps, order, out):  # pragma: no cover - numba
    """out[rec c] = min(out[rec c], out[c] - eps) from out = z, donors first (topological
    order); run by :func:`~pixels2peaks.terrain.hydrology.routing._propagate`."""
    for i in range(z.size):
        out[i] = z[i]
    for t in range(order.size):
        c = order[t]
        r = rec[c]
        if r != c:
            v = out[c] - eps
            if v < out[r]:
                out[r] = v


# --------------------------------------------------------------------------------------------
# pointer jumping (torch, Algorithm 1)
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def breach_pointer_jumping(z: torch.Tensor, rec: torch.Tensor, epsilon: float) -> torch.Tensor:
    """GPU-Breach (paper Algorithm 1) on flat tensors: ``z`` ``(N,)`` float heights (m),
    ``rec`` ``(N,)`` int64 receivers (flat indices, roots point to themselves), both on the same
    device. Returns the breached ``(N,)`` heights (new tensor, same device/dtype).

    Invariant after round ``k``: ``M[t] = min z[u] - d(u, t) * eps`` over the cells ``u`` at
    most ``2^k - 1`` steps upstream of ``t``. Round ``k`` lets every *active* cell ``c`` (one
    whose pointer ``P[c]`` is exactly ``2^k`` steps ahead) push ``M[c] - 2^k eps`` to ``P[c]``,
    extending the window to ``2^(k+1) - 1``. A cell whose successor ``P[c]`` is no longer
    active (its chain hits a root within ``2^k`` steps) is dropped: the cells it would
    still report are reported, at the same distances, by the cell exactly ``2^(k+1)`` steps
    upstream of the root. Duplicate reports are harmless (``min`` is idempotent).

    >>> z = torch.tensor([0.0, 3.0, 1.0, 2.0])  # a chain 3 -> 2 -> 1 -> 0 (root)
    >>> breach_pointer_jumping(z, torch.tensor([0, 0, 1, 2]), 0.5).tolist()
    [0.0, 0.5, 1.0, 2.0]
    """
    n = z.numel()
    dev = z.device
    M = z.clone()
    if n == 0:
        return M
    P = rec.to(device=dev, dtype=torch.int64).clone()
    exact = P != torch.arange(n, device=dev)  # pointer exactly 2^k steps ahead (not a root)
    active = exact.nonzero().squeeze(1)
    alive = torch.ones(active.numel(), dtype=torch.bool, device=dev)
    inf = torch.tensor(float("inf"), dtype=M.dtype, device=dev)
    step = 1
    max_rounds = max(1, int(n).bit_length()) + 1
    for _ in range(max_rounds + 1):
        if active.numel() == 0:
            return M
        Pa = P.index_select(0, active)
        src = M.index_select(0, active)
        if epsilon != 0.0:
            src.sub_(step * epsilon)
        if not bool(alive.all()):
            src = torch.where(alive, src, inf)  # dropped cells contribute nothing
        M.scatter_reduce_(0, Pa, src, reduce="amin", include_self=True)
        keep = alive & exact.index_select(0, Pa)
        newP = P.index_select(0, Pa)
        exact.index_copy_(0, active, keep)
        P.index_copy_(0, active, newP)
        n_keep = int(keep.sum())
        if n_keep * 2 < active.numel():  # compact only when it pays off
            active = active[keep]
            alive = torch.ones(active.numel(), dtype=torch.bool, device=dev)
        else:
            alive = keep
        if n_keep == 0:
            return M
        step *= 2
    raise InputError("receivers contain a cycle")


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def breach_depressions(
    z: Any,
    epsilon: float | Literal["auto"] = 0.0,
    *,
    valid: Any = None,
    method: BreachMethod = "sequential",
    receivers: Any = None,
) -> Any:
    """Breach all depressions along the depression-routed D8 receivers (see module docstring).

    Parameters
    ----------
    z : (H, W) numpy array or torch tensor; a tensor may also be batched ``(B, 1, H, W)``
        Heights in metres, NaN = nodata.
    epsilon : float >= 0 or "auto"
        Height drop in metres enforced per receiver step (``"auto"``: :func:`default_epsilon`).
    valid : (H, W) bool array/tensor, optional
        False marks extra nodata cells (they become NaN in the output).
    method : "sequential" | "pointer_jumping"
        Evaluation strategy; same result (see module docstring).
    receivers : (H*W,) int array/tensor, optional
        Precomputed receivers (e.g. :func:`flow_receivers`); computed if omitted. Only for an
        unbatched grid.

    Returns
    -------
    Breached heights, same shape as ``z``; numpy in -> numpy out (float32/float64 kept,
    integers -> float32 up to 16 bit, else float64); torch in -> torch out on the same device
    and dtype. Cells never rise: ``H <= z``.

    Raises
    ------
    InputError
        Bad grid (see :func:`~pixels2peaks.terrain.hydrology.routing.prepare_heights`), bad
        ``epsilon``/``method``/``receivers``.

    Examples
    --------
    >>> z = np.array([[9., 9, 9, 9], [9, 1, 5, 9], [9, 9, 3, 9], [9, 9, 2, 9]])
    >>> breach_depressions(z)[:, 2]  # the pit (1) drains over 3 -> 2: both cut down to 1
    array([9., 5., 1., 1.])
    """
    if method not in ("sequential", "pointer_jumping"):
        raise InputError(f"method must be 'sequential' or 'pointer_jumping', got {method!r}")
    if isinstance(z, torch.Tensor):
        return _breach_torch(z, epsilon, valid, method, receivers)
    zz, has_nodata = _prepare(z, valid)
    eps = _check_epsilon(epsilon, zz)
    H, W = zz.shape
    zf = zz.ravel()
    rec = _receivers(zz, has_nodata, receivers)
    if method == "sequential":
        out = _propagate(_minprop_sequential, zf, rec, eps)
    else:
        zt = torch.from_numpy(zf if zf.flags.writeable else zf.copy())  # torch warns on r/o
        out = breach_pointer_jumping(zt, torch.from_numpy(rec), eps).numpy()
    return out.reshape(H, W)


def _breach_torch(z: torch.Tensor, epsilon, valid, method, receivers) -> torch.Tensor:
    # z holds more than one (H, W) grid (an empty grid is left to fail in _per_grid)
    if receivers is not None and z.ndim >= 2 and z.numel() != z.shape[-2] * z.shape[-1]:
        raise InputError("receivers can only be given for a single (unbatched) grid")

    def breach_grid(zb, zz, has_nodata, eps):
        rec = _receivers(zz, has_nodata, receivers)
        if method == "sequential":
            return torch.from_numpy(_propagate(_minprop_sequential, zz.ravel(), rec, eps)).to(zb.device)
        return breach_pointer_jumping(zb.reshape(-1), torch.from_numpy(rec).to(zb.device), eps)

    return _per_grid(z, epsilon, valid, breach_grid)
