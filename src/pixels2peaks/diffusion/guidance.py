"""Consistency guidance (paper §5.2, Eqs. 5-9).

Loss terms are small pure functions of the clean-sample estimate ``x0`` (``(B, 1, H, W)``). They
are unit-agnostic; the completion pipeline evaluates them in the prior's **normalized units**
(``z_n = (z - z_ref) / (s dx)``, :mod:`pixels2peaks.diffusion.normalization`), where a height
difference between neighbouring cells is ``slope / s`` at every cell size, so one set of weights
works at every ``dx`` (see ``docs/guided-completion.md`` for the rescaling of the paper's Table 2).

* :func:`hydrology_loss` (Eq. 7): ``E[(D(x0) - sg[H(D(x0))])^2]``, ``H`` = breaching (default) or
  filling (the paper's Fig. 10h option), ``D`` = Gaussian smoothing + downsampling.
* :func:`geomorph_loss` (Eq. 8): squared differences between the mean slope / curvature of the
  unknown and (stop-gradient) known cells of ``D(x0)`` (binary ``M_sigma``, :func:`geo_masks`).
* :func:`view_loss` (Eq. 9): ``E_{1-M}[ReLU(x0 - sg Z_max)^2]``.
* :class:`HydrologyGuidance`, :class:`GeomorphGuidance`, :class:`ViewGuidance`: one frozen config
  per term (weight and the term's own settings), gathered in :class:`GuidanceConfig` with the
  scale and gradient mode of Eq. 6;
* :class:`CompletionLoss`: the weighted composite ``L_guide`` (Eq. 5), the sum of the terms.
* :func:`guided` wraps a denoiser so its ``eps`` follows Eq. 6 (sign chosen so that the guide
  loss *decreases*, see :class:`Guided`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from pixels2peaks.diffusion.sampling import Denoiser, Profiler, section
from pixels2peaks.errors import InputError
from pixels2peaks.terrain.attributes import downsample_smooth, laplacian, slope
from pixels2peaks.terrain.hydrology import hydrology_target

__all__ = [
    "hydrology_loss",
    "geomorph_loss",
    "view_loss",
    "masked_mean",
    "geo_masks",
    "HydrologyGuidance",
    "GeomorphGuidance",
    "ViewGuidance",
    "GuidanceConfig",
    "CompletionLoss",
    "Guided",
    "guided",
    "GRADIENT_MODES",
]

GRADIENT_MODES = ("x0", "unet")
HydMethod = Literal["breach", "fill"]
CurvatureMode = Literal["abs", "signed"]
GeoMask = Literal["binary", "soft"]
#: a coarse cell of ``D(M)`` is "pure" known / unknown when its known fraction is within this of 1 / 0
PURE_TOL = 1e-3

#: stand-in for an unbounded Z_max (inf would give inf - inf = NaN in some code paths)
UNBOUNDED = 1e6


def masked_mean(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted mean ``sum(w v) / sum(w)`` (0 when ``sum(w) == 0``)."""
    den = w.sum()
    return (w * v).sum() / den.clamp_min(1e-12)


def hydrology_loss(
    x0: torch.Tensor,
    *,
    factor: int = 2,
    method: HydMethod = "breach",
    epsilon: float | str = "auto",
    profiler: Profiler | None = None,
) -> torch.Tensor:
    """Eq. 7: ``mean((D(x0) - sg[H(D(x0))])^2)`` with ``D`` = :func:`downsample_smooth` by
    ``factor`` (Gaussian sigma ``factor/2`` cells) and ``H`` = :func:`hydrology_target`."""
    d = downsample_smooth(x0, factor)
    with section(profiler, "breach"):
        target = hydrology_target(d, method=method, epsilon=epsilon)
    return ((d - target) ** 2).mean()


def geo_masks(known: torch.Tensor, factor: int, mask: GeoMask = "binary") -> tuple[torch.Tensor, torch.Tensor]:
    """Expectation weights ``(M_sigma, 1 - M_sigma)`` of Eq. 8 at the resolution of ``D(x0)``.

    ``"binary"`` (default): the paper's binary ``M_sigma``; a coarse cell counts as known (unknown)
    when the whole support of its slope / curvature stencil is known (unknown): its 3 x 3 coarse
    neighbourhood is, after ``D``, made of known (unknown) cells only. The seam cells mixing both
    and the outer ring (one-sided differences) are in neither expectation: their slope and
    curvature belong to the seam, not to either region, and a striped camera mask is mostly seam.
    ``"soft"``: the known fraction ``D(M)`` and its complement as weights (every cell counts in
    both).
    """
    ms = downsample_smooth(known.to(torch.float32), factor).clamp(0.0, 1.0)
    if mask == "soft":
        return ms, 1.0 - ms
    if mask != "binary":
        raise InputError(f"geo mask must be 'binary' or 'soft', got {mask!r}")
    inner = torch.zeros_like(ms)
    inner[..., 1:-1, 1:-1] = 1.0

    def pure(p: torch.Tensor) -> torch.Tensor:  # erode by the 3 x 3 stencil
        return 1.0 - F.max_pool2d(1.0 - p.to(ms.dtype), 3, stride=1, padding=1)

    return pure(ms >= 1.0 - PURE_TOL) * inner, pure(ms <= PURE_TOL) * inner


def geomorph_loss(
    x0: torch.Tensor,
    known: torch.Tensor,
    *,
    factor: int = 2,
    lambda_s: float = 1.0,
    lambda_c: float = 1.0,
    curvature: CurvatureMode = "abs",
    mask: GeoMask = "binary",
    relative: bool = False,
) -> torch.Tensor:
    """Eq. 8 on ``D(x0)``: ``lambda_s (E_u[S] - sg E_k[S])^2 + lambda_c (E_u[C] - sg E_k[C])^2``.

    ``known`` is the known-cell mask at the resolution of ``x0`` (1 = known); ``D`` =
    :func:`downsample_smooth` by ``factor``, the expectations use :func:`geo_masks` (``mask``; 0
    when a region has no cell). ``S`` = gradient magnitude, ``C`` = 5-point Laplacian, both with
    the coarse cell as the length unit. ``curvature="abs"`` (default) matches the mean *absolute*
    Laplacian: the signed mean of the paper's Eq. 8 is a boundary term (the mean Laplacian of a
    region is its boundary flux over its area), nearly 0 for any large region whatever its
    roughness; ``"signed"`` is the literal Eq. 8. ``relative=True`` divides each difference by the
    larger of the two means (stop-gradient): unit-free relative mismatches, but the loss is then
    homogeneous of degree 0 in the heights, so its gradient steps are relatively larger on gentle
    terrain (not scale-invariant); the default absolute form (degree 2, the literal Eq. 8) changes
    slopes by the same relative amount at every relief.
    """
    d = downsample_smooth(x0, factor)
    m, u = (w.to(x0.dtype) for w in geo_masks(known, factor, mask))
    if m.shape[0] != d.shape[0]:
        m, u = m.expand(d.shape[0], -1, -1, -1), u.expand(d.shape[0], -1, -1, -1)
    if float(m.sum()) == 0.0 or float(u.sum()) == 0.0:
        return (x0 * 0.0).sum()  # nothing to compare (keeps the graph for autograd callers)
    s = slope(d, float(factor), unit="tan")
    c = laplacian(d, float(factor))
    if curvature == "abs":
        c = c.abs()
    elif curvature != "signed":
        raise InputError(f"curvature must be 'abs' or 'signed', got {curvature!r}")
    loss = x0.new_zeros(())
    for lam, v in ((lambda_s, s), (lambda_c, c)):
        if not lam:
            continue
        known_mean = masked_mean(v, m).detach()
        unknown_mean = masked_mean(v, u)
        diff = unknown_mean - known_mean
        if relative:
            scale = torch.maximum(known_mean.abs(), unknown_mean.detach().abs()).clamp_min(1e-12)
            diff = diff / scale
        loss = loss + lam * diff**2
    return loss


def view_loss(x0: torch.Tensor, z_max: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Eq. 9: ``E_{1-M}[ReLU(x0 - sg Z_max)^2]`` (mean over the unknown cells; non-finite
    ``z_max`` = unbounded)."""
    zm = torch.nan_to_num(z_max.detach().to(x0.dtype), nan=UNBOUNDED, posinf=UNBOUNDED).clamp_max(UNBOUNDED)
    u = 1.0 - known.to(x0.dtype)
    excess = torch.relu(x0 - zm)
    return masked_mean(excess**2, u.expand_as(excess))


def _check_weight(name: str, v: float) -> float:
    v = float(v)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"guidance weight {name} must be a finite number >= 0, got {v!r}")
    return v


def _check_factor(name: str, f) -> int:
    if isinstance(f, bool) or not isinstance(f, int) or f < 1:
        raise InputError(f"guidance {name} must be an integer >= 1, got {f!r}")
    return int(f)


@dataclass(frozen=True)
class HydrologyGuidance:
    """``L_hyd`` (Eq. 7) on ``D_factor(x0)`` with the target ``method`` (``"breach"``, default,
    or ``"fill"``, the paper's Fig. 10h option). ``weight`` is per cell (see
    :class:`CompletionLoss`)."""

    weight: float = 5.0
    factor: int = 2
    method: HydMethod = "breach"
    name = "hyd"

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _check_weight("hydrology", self.weight))
        object.__setattr__(self, "factor", _check_factor("hydrology factor", self.factor))
        if self.method not in ("breach", "fill"):
            raise InputError(f"hydrology method must be 'breach' or 'fill', got {self.method!r}")

    def cells(self, known: torch.Tensor) -> dict[str, float]:
        return {"hyd": float(known[0, 0].numel())}

    def terms(self, x0, known, z_max, cells, profiler) -> dict[str, torch.Tensor]:
        return {"hyd": hydrology_loss(x0, factor=self.factor, method=self.method, profiler=profiler)}

    def total(self, terms: dict[str, torch.Tensor], cells: dict[str, float]) -> torch.Tensor:
        return self.weight * cells["hyd"] * terms["hyd"]


@dataclass(frozen=True)
class GeomorphGuidance:
    """``L_geo`` (Eq. 8): ``lambda_s`` times the slope statistic on ``D_slope_factor(x0)`` plus
    ``lambda_c`` times the curvature statistic on ``D_curvature_factor(x0)``, each at its own
    scale (docs/guided-completion.md); ``curvature`` and ``mask`` as in :func:`geomorph_loss`."""

    weight: float = 3.0
    lambda_s: float = 1.0
    lambda_c: float = 10.0
    slope_factor: int = 4
    curvature_factor: int = 2
    curvature: CurvatureMode = "abs"
    mask: GeoMask = "binary"
    name = "geo"

    def __post_init__(self) -> None:
        for k in ("weight", "lambda_s", "lambda_c"):
            object.__setattr__(self, k, _check_weight(k, getattr(self, k)))
        for k in ("slope_factor", "curvature_factor"):
            object.__setattr__(self, k, _check_factor(k, getattr(self, k)))
        if self.curvature not in ("abs", "signed"):
            raise InputError(f"curvature must be 'abs' or 'signed', got {self.curvature!r}")
        if self.mask not in ("binary", "soft"):
            raise InputError(f"geo mask must be 'binary' or 'soft', got {self.mask!r}")

    def cells(self, known: torch.Tensor) -> dict[str, float]:
        # the input cells each unknown expectation runs over (f^2 per coarse cell)
        def n(f: int) -> float:
            return float(geo_masks(known, f, self.mask)[1].sum()) * f * f

        return {"geo_slope": n(self.slope_factor), "geo_curv": n(self.curvature_factor),
                "n_unknown": float((1.0 - known[0, 0]).sum()), "n_cells": float(known[0, 0].numel())}

    def terms(self, x0, known, z_max, cells, profiler) -> dict[str, torch.Tensor]:
        if not 0 < cells["n_unknown"] < cells["n_cells"]:
            return {}
        kw = dict(curvature=self.curvature, mask=self.mask)
        zero = (x0 * 0.0).sum()
        out = {"geo_slope": geomorph_loss(x0, known, factor=self.slope_factor, lambda_s=self.lambda_s, lambda_c=0.0, **kw)
               if self.lambda_s else zero,
               "geo_curv": geomorph_loss(x0, known, factor=self.curvature_factor, lambda_s=0.0, lambda_c=self.lambda_c, **kw)
               if self.lambda_c else zero}
        out["geo"] = out["geo_slope"] + out["geo_curv"]  # Eq. 8 (each statistic at its own scale)
        return out

    def total(self, terms: dict[str, torch.Tensor], cells: dict[str, float]) -> torch.Tensor:
        return self.weight * (cells["geo_slope"] * terms["geo_slope"] + cells["geo_curv"] * terms["geo_curv"])


@dataclass(frozen=True)
class ViewGuidance:
    """``L_view`` (Eq. 9): occluded cells above the view bound ``Z_max``."""

    weight: float = 5.0
    name = "view"

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _check_weight("view", self.weight))

    def cells(self, known: torch.Tensor) -> dict[str, float]:
        return {"view": float((1.0 - known[0, 0]).sum())}

    def terms(self, x0, known, z_max, cells, profiler) -> dict[str, torch.Tensor]:
        if z_max is None or cells["view"] <= 0:
            return {}
        return {"view": view_loss(x0, z_max.to(x0.device), known)}

    def total(self, terms: dict[str, torch.Tensor], cells: dict[str, float]) -> torch.Tensor:
        return self.weight * cells["view"] * terms["view"]


GuidanceTerm = HydrologyGuidance | GeomorphGuidance | ViewGuidance
_TERM_FIELDS = {"hydrology": HydrologyGuidance, "geomorph": GeomorphGuidance, "view": ViewGuidance}


@dataclass(frozen=True)
class GuidanceConfig:
    """The guidance of a completion: scale ``s`` and gradient mode of Eq. 6 (:class:`Guided`),
    and one frozen config per loss term of Eq. 5 (a term with weight 0 is off). Defaults: see
    ``docs/guided-completion.md``."""

    scale: float = 1.0
    gradient_mode: str = "x0"
    kappa_max: float = 2.0
    hydrology: HydrologyGuidance = field(default_factory=HydrologyGuidance)
    geomorph: GeomorphGuidance = field(default_factory=GeomorphGuidance)
    view: ViewGuidance = field(default_factory=ViewGuidance)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _check_weight("scale", self.scale))
        object.__setattr__(self, "kappa_max", _check_weight("kappa_max", self.kappa_max))
        if self.gradient_mode not in GRADIENT_MODES:
            raise InputError(f"gradient_mode must be one of {GRADIENT_MODES}, got {self.gradient_mode!r}")
        for k, cls in _TERM_FIELDS.items():
            v = getattr(self, k)
            if isinstance(v, dict):
                object.__setattr__(self, k, cls(**v))
            elif not isinstance(v, cls):
                raise InputError(f"guidance {k} must be a {cls.__name__}, got {v!r}")

    @property
    def terms(self) -> tuple[GuidanceTerm, ...]:
        """The terms with a non-zero weight, in Eq. 5's order."""
        return tuple(t for t in (self.hydrology, self.geomorph, self.view) if t.weight > 0)

    @property
    def active(self) -> bool:
        return self.scale > 0 and bool(self.terms)

    def without(self, *names: str) -> GuidanceConfig:
        """A copy with the named terms (``hydrology``, ``geomorph``, ``view``) switched off."""
        from dataclasses import replace

        return replace(self, **{n: replace(getattr(self, n), weight=0.0) for n in names})


class CompletionLoss:
    """``L_guide(x0) = sum over terms of weight x (cells x term mean)`` (Eq. 5, per cell).

    Each term of ``guidance`` (:class:`GuidanceConfig`) turns its means into sums over the cells
    they average: ``N`` cells for ``L_hyd``, the unknown cells for ``L_view`` and, for the two
    ``L_geo`` statistics, the input cells their unknown expectations run over (``f^2`` per
    coarse cell). So the gradient that reaches one cell does not shrink with the map size (the
    paper's Table 2 weights are for means over its 1024^2 maps). ``known`` ``(H, W)`` or
    ``(1, 1, H, W)`` mask (1 = known), ``z_max`` the view bound in the units of ``x0`` (``None``
    = no view term). ``last`` holds the unweighted per-term means of the latest call.
    """

    def __init__(
        self,
        known: torch.Tensor,
        guidance: GuidanceConfig,
        *,
        z_max: torch.Tensor | None = None,
        profiler: Profiler | None = None,
    ) -> None:
        k = known if known.ndim == 4 else known[None, None]
        self.known = k.to(torch.float32)
        self.z_max = None if z_max is None else (z_max if z_max.ndim == 4 else z_max[None, None]).to(torch.float32)
        self.guidance = guidance
        self.profiler = profiler
        self.cells = {term.name: term.cells(self.known) for term in guidance.terms}
        self.last: dict[str, float] = {}

    def terms(self, x0: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted per-term means (only the terms with a non-zero weight); ``geo`` =
        ``geo_slope + geo_curv``."""
        known = self.known.to(x0.device)
        out: dict[str, torch.Tensor] = {}
        for term in self.guidance.terms:
            out.update(term.terms(x0, known, self.z_max, self.cells[term.name], self.profiler))
        return out

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        with section(self.profiler, "guidance_loss"):
            terms = self.terms(x0)
            self.last = {k: float(v.detach()) for k, v in terms.items()}
            total = x0.new_zeros(())
            for term in self.guidance.terms:
                if term.name in terms:
                    total = total + term.total(terms, self.cells[term.name])
            return total


class Guided:
    """A denoiser whose noise estimate follows Eq. 6 with the loss-decreasing sign:

        eps' = eps + s * sqrt(1 - abar_t) * k_t * grad_{x_t} L_guide(x0_hat),
        x0'  = (x_t - sqrt(1 - abar_t) eps') / sqrt(abar_t)

    (the paper prints ``eps - s ...``; with ``x0 = (x_t - sqrt(1-abar) eps)/sqrt(abar)`` that sign
    would *raise* the loss, so we use Dhariwal & Nichol's convention, ``grad log p = -grad L``.)
    In x0 terms: ``x0' = x0 - s k_t (1 - abar_t) / sqrt(abar_t) * grad_{x_t} L``.

    Gradient modes:

    * ``"unet"``: ``grad_{x_t}`` by autograd through the (tiled) U-Net (the paper).
    * ``"x0"``: ``grad_{x_t} ~= grad_{x0} L / sqrt(abar_t)``, no U-Net backward pass; then
      ``x0' = x0 - s k_t (1 - abar_t) / abar_t * grad_{x0} L``: a gradient step on ``x0_hat``
      whose size follows the noise-to-signal ratio and vanishes as ``t -> 0``.

    ``k_t = min(1, kappa_max * abar_t / (1 - abar_t))`` caps the step at high noise (``t`` above
    ~0.6 for ``kappa_max = 2``), where ``(1 - abar)/abar`` diverges; it is 1 on the usual walks
    from ``t_start <= 0.5``. ``last_grad_norm`` / ``loss.last`` record the latest values.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        loss_fn: Callable[[torch.Tensor], torch.Tensor],
        scale: float = 1.0,
        mode: str = "x0",
        *,
        kappa_max: float = 2.0,
        profiler: Profiler | None = None,
    ) -> None:
        if mode not in GRADIENT_MODES:
            raise InputError(f"gradient mode must be one of {GRADIENT_MODES}, got {mode!r}")
        self.inner = denoiser
        self.loss_fn = loss_fn
        self.scale = float(scale)
        self.mode = mode
        self.kappa_max = float(kappa_max)
        self.profiler = profiler
        self.alphas_cumprod = denoiser.alphas_cumprod
        self.last_grad_norm = 0.0
        self.history: list[dict] = []

    def __call__(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = float(self.alphas_cumprod[int(t)])
        if self.scale == 0:
            with torch.no_grad():
                return self.inner(x_t, t)
        if self.mode == "unet":
            with torch.enable_grad():
                x = x_t.detach().requires_grad_(True)
                eps, x0 = self.inner(x, t)
                loss = self.loss_fn(x0)
                with section(self.profiler, "unet_backward"):
                    if loss.requires_grad:
                        (g,) = torch.autograd.grad(loss, x)
                    else:
                        g = torch.zeros_like(x)
            eps, x0 = eps.detach(), x0.detach()
        else:
            with torch.no_grad():
                eps, x0 = self.inner(x_t, t)
            with torch.enable_grad():
                xx = x0.detach().requires_grad_(True)
                loss = self.loss_fn(xx)
                with section(self.profiler, "guidance_loss"):
                    if loss.requires_grad:
                        (g,) = torch.autograd.grad(loss, xx)
                    else:
                        g = torch.zeros_like(xx)
            g = g / math.sqrt(a)
        g = torch.nan_to_num(g.detach(), nan=0.0, posinf=0.0, neginf=0.0)
        k = min(1.0, self.kappa_max * a / max(1.0 - a, 1e-12))
        sb = math.sqrt(max(1.0 - a, 0.0))
        eps_g = eps + self.scale * sb * k * g
        x0_g = (x_t.to(eps_g.device) - sb * eps_g) / math.sqrt(a)
        self.last_grad_norm = float(g.abs().mean())
        self.history.append({"t": int(t), "loss": float(loss.detach()), **getattr(self.loss_fn, "last", {})})
        return eps_g, x0_g


def guided(
    denoiser: Denoiser,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    scale: float = 1.0,
    mode: str = "x0",
    **kwargs,
) -> Guided:
    """``Guided(denoiser, loss_fn, scale, mode)``: see :class:`Guided`."""
    return Guided(denoiser, loss_fn, scale, mode, **kwargs)
