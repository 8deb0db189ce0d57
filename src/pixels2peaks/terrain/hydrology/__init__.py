"""Hydrology core: depression routing, breaching, filling and depression statistics.

* :func:`flow_receivers` -- D8 receivers with depression routing (Cordonnier et al. 2019,
  as in FastFlow, Jain et al. 2024b).
* :func:`breach_depressions` -- depression breaching H of the paper's Eq. 7 (Algorithm 1,
  GPU-Breach by pointer jumping, or a sequential numba pass).
* :func:`fill_depressions` -- exact depression filling (routing, or Priority-Flood by Barnes
  et al. 2014); :func:`fill_enclosed` -- only the depressions inside a mask.
* :func:`drain_around_fixed` -- drainage that changes only the cells outside a fixed mask, and
  only downwards, with valleys instead of one-cell trenches.
* :func:`depression_depth`, :func:`mean_depression_depth` (MDD), :func:`depression_fraction`.
* :func:`drainage_area_cells`, :func:`stream_power_erode` -- flow accumulation and one implicit
  stream-power incision step (Braun & Willett 2013; the fluvial polish of unconditional samples).
* :func:`hydrology_target` -- the stop-gradient target of the hydrological guidance (torch).

Conventions: ``docs/conventions.md`` (``(H, W)`` row 0 north, NaN nodata, flat C-order
indices, D8 order N, NE, E, SE, S, SW, W, NW).
"""

from __future__ import annotations

from typing import Literal

import torch

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.hydrology.breach import breach_depressions, default_epsilon
from pixels2peaks.terrain.hydrology.depressions import (
    depression_depth,
    depression_fraction,
    mean_depression_depth,
)
from pixels2peaks.terrain.hydrology.fill import fill_depressions, fill_enclosed
from pixels2peaks.terrain.hydrology.drain_fixed import drain_around_fixed
from pixels2peaks.terrain.hydrology.routing import flow_receivers
from pixels2peaks.terrain.hydrology.accumulation import drainage_area_cells
from pixels2peaks.terrain.hydrology.stream_power import stream_power_erode

__all__ = [
    "flow_receivers",
    "breach_depressions",
    "fill_depressions",
    "fill_enclosed",
    "drain_around_fixed",
    "depression_depth",
    "mean_depression_depth",
    "depression_fraction",
    "hydrology_target",
    "default_epsilon",
    "drainage_area_cells",
    "stream_power_erode",
]


@torch.no_grad()
def hydrology_target(
    z_torch: torch.Tensor,
    method: Literal["breach", "fill"] = "breach",
    epsilon: float | Literal["auto"] = "auto",
) -> torch.Tensor:
    """Hydrologically conditioned target for the diffusion guidance, ``sg[H(D_sigma(Z0))]``.

    ``z_torch``: ``(B, 1, H, W)`` or ``(H, W)`` heights in metres on any device. ``method``:
    ``"breach"`` (paper Eq. 7: depression breaching by pointer jumping, Algorithm 1) or
    ``"fill"`` (paper Fig. 10h: depression filling by max-propagation). ``epsilon``: drop per
    receiver step in metres, ``"auto"`` = 4 float32 ulps of the largest height (see
    :func:`default_epsilon`). Returns a detached tensor of the same shape, dtype and device.
    Receivers are always computed on the CPU (numba); the propagation runs by pointer jumping
    on the tensor's device, except for CPU tensors, where the equivalent sequential numba pass
    is used (several times faster than torch pointer jumping on a CPU).

    >>> z = torch.tensor([[5., 5, 5], [5, 1, 5], [5, 4, 5]])[None, None]
    >>> hydrology_target(z, "fill", 0.0)[0, 0, 1, 1].item()
    4.0
    """
    if not isinstance(z_torch, torch.Tensor):
        raise InputError(f"hydrology_target expects a torch.Tensor, got {type(z_torch).__name__}")
    z = z_torch.detach()
    on_cpu = z.device.type == "cpu"
    if method == "breach":
        return breach_depressions(z, epsilon, method="sequential" if on_cpu else "pointer_jumping")
    if method == "fill":
        return fill_depressions(z, epsilon, method="routing")
    raise InputError(f"method must be 'breach' or 'fill', got {method!r}")
