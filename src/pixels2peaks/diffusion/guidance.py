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
* :class:`CompletionLoss`: the weighted composite ``L_guide`` (Eq. 5) with per-cell weights.
* :func:`guided` wraps a denoiser so its ``eps`` follows Eq. 6 (sign chosen so that the guide
  loss *decreases*, see :class:`Guided`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
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
    "GuidanceWeights",
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


@dataclass(frozen=True)
class GuidanceWeights:
    """Guidance scale ``s`` and the weights of Eq. 5 / Eq. 8.

    Weights are **per cell** (see :class:`CompletionLoss`): ``hyd``, ``geo``, ``view`` multiply
    the mean of their term times the number of cells the mean runs over, so they do not depend on
    the heightmap size. Defaults: see ``docs/guided-completion.md``.
    """

    scale: float = 1.0
    hyd: float = 5.0
    geo: float = 3.0
    view: float = 5.0
    lambda_s: float = 1.0
    lambda_c: float = 10.0

    def __post_init__(self) -> None:
        for k in ("scale", "hyd", "geo", "view", "lambda_s", "lambda_c"):
            v = float(getattr(self, k))
            if not math.isfinite(v) or v < 0:
                raise InputError(f"guidance weight {k} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, k, v)

    @property
    def active(self) -> bool:
        return self.scale > 0 and (self.hyd > 0 or self.geo > 0 or self.view > 0)


class CompletionLoss:
    """``L_guide(x0) = w_hyd N L_hyd + w_geo (N_s L_s + N_c L_c) + w_view N_u L_view`` (Eq. 5, per-cell).

    ``N`` = cells of ``x0``, ``N_u`` = unknown cells, ``N_s`` / ``N_c`` = the cells the unknown
    expectation of the slope / curvature statistic runs over (``L_geo = L_s + L_c``, Eq. 8; input
    cells, ``f^2`` per coarse cell): each mean is turned into a sum over the cells it averages, so
    the gradient that reaches one cell does not shrink with the map size (the paper's Table 2
    weights are for means over its 1024^2 maps). ``known`` ``(H, W)`` or
    ``(1, 1, H, W)`` mask (1 = known), ``z_max`` the view bound in the same units as ``x0``
    (``None`` = no view term). ``factor``: the ``D_sigma`` of ``L_hyd``; ``geo_factors`` = the
    ``D_sigma`` factors of the slope and the curvature statistics of ``L_geo`` (default: both
    ``factor``; :class:`~pixels2peaks.diffusion.completion.CompletionConfig` uses ``(4, 2)``, see
    ``docs/guided-completion.md``); ``geo_mask``: see :func:`geo_masks`. ``last`` holds the
    unweighted per-term means of the latest call.
    """

    def __init__(
        self,
        known: torch.Tensor,
        weights: GuidanceWeights,
        *,
        z_max: torch.Tensor | None = None,
        factor: int = 2,
        geo_factors: tuple[int, int] | None = None,
        hyd_method: HydMethod = "breach",
        curvature: CurvatureMode = "abs",
        geo_mask: GeoMask = "binary",
        profiler: Profiler | None = None,
    ) -> None:
        k = known if known.ndim == 4 else known[None, None]
        self.known = k.to(torch.float32)
        self.z_max = None if z_max is None else (z_max if z_max.ndim == 4 else z_max[None, None]).to(torch.float32)
        self.w = weights
        self.factor = int(factor)
        self.geo_factors = (self.factor, self.factor) if geo_factors is None else tuple(int(f) for f in geo_factors)
        if hyd_method not in ("breach", "fill"):
            raise InputError(f"hydrology method must be 'breach' or 'fill', got {hyd_method!r}")
        self.hyd_method = hyd_method
        self.curvature = curvature
        self.geo_mask = geo_mask
        # per-cell weights of the two L_geo statistics: the number of input cells each unknown
        # expectation runs over (f^2 per coarse cell; fewer than n_unknown with the binary mask)
        self.n_geo = {f: float(geo_masks(self.known, f, geo_mask)[1].sum()) * f * f for f in set(self.geo_factors)}
        self.profiler = profiler
        self.n_cells = float(self.known[0, 0].numel())
        self.n_unknown = float((1.0 - self.known[0, 0]).sum())
        self.last: dict[str, float] = {}

    def terms(self, x0: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted per-term means (only the terms with a non-zero weight); ``geo`` =
        ``geo_slope + geo_curv``."""
        known = self.known.to(x0.device)
        out: dict[str, torch.Tensor] = {}
        if self.w.hyd > 0:
            out["hyd"] = hydrology_loss(x0, factor=self.factor, method=self.hyd_method, profiler=self.profiler)
        if self.w.geo > 0 and self.n_unknown > 0 and self.n_unknown < self.n_cells:
            fs, fc = self.geo_factors
            kw = dict(curvature=self.curvature, mask=self.geo_mask)
            zero = (x0 * 0.0).sum()
            out["geo_slope"] = (geomorph_loss(x0, known, factor=fs, lambda_s=self.w.lambda_s, lambda_c=0.0, **kw)
                                if self.w.lambda_s else zero)
            out["geo_curv"] = (geomorph_loss(x0, known, factor=fc, lambda_s=0.0, lambda_c=self.w.lambda_c, **kw)
                               if self.w.lambda_c else zero)
            out["geo"] = out["geo_slope"] + out["geo_curv"]  # Eq. 8 (each statistic at its own scale)
        if self.w.view > 0 and self.z_max is not None and self.n_unknown > 0:
            out["view"] = view_loss(x0, self.z_max.to(x0.device), known)
        return out

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        with section(self.profiler, "guidance_loss"):
            terms = self.terms(x0)
            self.last = {k: float(v.detach()) for k, v in terms.items()}
            total = x0.new_zeros(())
            if "hyd" in terms:
                total = total + self.w.hyd * self.n_cells * terms["hyd"]
            if "geo_slope" in terms:
                fs, fc = self.geo_factors
                total = total + self.w.geo * (self.n_geo[fs] * terms["geo_slope"] + self.n_geo[fc] * terms["geo_curv"])
            if "view" in terms:
                total = total + self.w.view * self.n_unknown * terms["view"]
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
