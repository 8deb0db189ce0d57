"""Backend protocols for single-image perception (paper §4) and a registry with ``auto`` selection.

Three kinds of backend turn an RGB image (``(H, W, 3)`` uint8 NumPy array) into:

* ``geometry``: a :class:`GeometryResult`: pointmap ``(H, W, 3)`` in the **camera frame**
  (OpenCV: x right, y down, z forward; "metres-ish": any consistent unit, the scale is fixed
  later from the elevation prior), the horizontal FOV in degrees and a validity mask.
* ``segmentation``: a boolean terrain mask ``(H, W)`` (True = terrain pixel to keep).
* ``priors``: :class:`Priors`: mean slope (degrees) and elevation range ``(z_min_m, z_max_m)``
  with a record of where each value came from.

:func:`select` picks a backend by name, or with ``"auto"`` the first available one in a fixed
preference order, and says **why** (e.g. ``"moge not installed; transformers present but no
local Depth Anything weights; using builtin"``). Availability checks never download anything.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from pixels2peaks.errors import InputError

__all__ = [
    "GeometryResult",
    "Priors",
    "GeometryBackend",
    "SegmentationBackend",
    "PriorsBackend",
    "BackendSpec",
    "Selection",
    "Kind",
    "register",
    "registered",
    "backend_spec",
    "select",
    "choose",
    "require_available",
    "module_available",
    "hf_weights_cached",
]

Kind = Literal["geometry", "segmentation", "priors"]
KINDS: tuple[str, ...] = ("geometry", "segmentation", "priors")


@dataclass(frozen=True)
class GeometryResult:
    """Per-pixel geometry of an image.

    Attributes:
        points: float32 ``(H, W, 3)`` camera-frame points (x right, y down, z forward).
        fov_x_deg: horizontal field of view in degrees (estimated or given).
        valid: bool ``(H, W)``: pixels with a usable point (finite, in front of the camera).
        source: which backend produced it (for reports).
        slope_gain: how much flatter (< 1) or steeper (> 1) the pointmap's terrain is than the
            real one, as ``tan s_points / tan s_true`` (dimensionless; 1 = unbiased or unknown).
            The pitch search (Eq. 1) corrects the slope prior by it.
    """

    points: np.ndarray
    fov_x_deg: float
    valid: np.ndarray
    source: str = "unknown"
    slope_gain: float = 1.0

    def __post_init__(self) -> None:
        p = np.asarray(self.points, dtype=np.float32)
        v = np.asarray(self.valid, dtype=bool)
        if p.ndim != 3 or p.shape[2] != 3:
            raise InputError(f"pointmap must have shape (H, W, 3), got {p.shape}")
        if v.shape != p.shape[:2]:
            raise InputError(f"valid mask shape {v.shape} does not match pointmap {p.shape[:2]}")
        if not 0.0 < float(self.fov_x_deg) < 180.0:
            raise InputError(f"fov_x_deg must be in (0, 180), got {self.fov_x_deg!r}")
        if not (np.isfinite(float(self.slope_gain)) and float(self.slope_gain) > 0.0):
            raise InputError(f"slope_gain must be a positive number, got {self.slope_gain!r}")
        v = v & np.isfinite(p).all(axis=2) & (p[..., 2] > 0)
        object.__setattr__(self, "points", p)
        object.__setattr__(self, "valid", v)
        object.__setattr__(self, "fov_x_deg", float(self.fov_x_deg))
        object.__setattr__(self, "slope_gain", float(self.slope_gain))


@dataclass(frozen=True)
class Priors:
    """Landscape priors for the pitch search and the scale fit (paper §4.2).

    Attributes:
        mean_slope_deg: mean slope of the visible terrain, degrees in ``(0, 90)``.
        elevation_range_m: ``(z_min_m, z_max_m)`` elevation of the visible terrain, metres.
        sources: where each value came from, e.g.
            ``{"mean_slope_deg": "vlm gemma-3 (median of 4)", "elevation_range_m": "builtin"}``.
    """

    mean_slope_deg: float
    elevation_range_m: tuple[float, float]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = float(self.mean_slope_deg)
        if not (np.isfinite(s) and 0.0 < s < 90.0):
            raise InputError(f"mean slope must be in (0, 90) degrees, got {self.mean_slope_deg!r}")
        try:
            lo, hi = (float(v) for v in self.elevation_range_m)
        except (TypeError, ValueError):
            raise InputError(
                f"elevation range must be (z_min_m, z_max_m), got {self.elevation_range_m!r}"
            ) from None
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise InputError(f"elevation range needs z_max > z_min, got ({lo:g}, {hi:g}) m")
        object.__setattr__(self, "mean_slope_deg", s)
        object.__setattr__(self, "elevation_range_m", (lo, hi))
        object.__setattr__(self, "sources", dict(self.sources))

    @property
    def relief_m(self) -> float:
        return self.elevation_range_m[1] - self.elevation_range_m[0]


@runtime_checkable
class GeometryBackend(Protocol):
    name: str

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> GeometryResult:
        """``(H, W, 3)`` uint8 RGB and its terrain mask (bool ``(H, W)``, the segmentation's;
        ``None`` = all terrain) -> camera-frame pointmap, FOV and validity."""
        ...


@runtime_checkable
class SegmentationBackend(Protocol):
    name: str

    def segment(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> bool ``(H, W)`` terrain mask."""
        ...


@runtime_checkable
class PriorsBackend(Protocol):
    name: str

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> Priors:
        """``(H, W, 3)`` uint8 RGB and its terrain mask (``None`` = unknown) -> :class:`Priors`."""
        ...


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend.

    ``available(options)`` returns ``(ok, reason)`` without side effects or downloads (reason
    says what is missing, e.g. "moge not installed"); ``factory(options)`` builds the backend.
    ``priority``: lower is preferred by ``auto``. ``modules``: the modules whose code computes
    the backend's results; the stage cache keys its results by their source (a change there
    invalidates them).
    """

    kind: str
    name: str
    factory: Callable[[Mapping[str, Any]], Any]
    available: Callable[[Mapping[str, Any]], tuple[bool, str]]
    priority: int = 100
    modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selection:
    """Result of :func:`select`: the backend, its name and why it was chosen."""

    kind: str
    name: str
    backend: Any
    reason: str


_REGISTRY: dict[str, dict[str, BackendSpec]] = {k: {} for k in KINDS}


def register(spec: BackendSpec, *, replace: bool = False) -> BackendSpec:
    if spec.kind not in _REGISTRY:
        raise InputError(f"unknown backend kind {spec.kind!r}; expected one of {', '.join(KINDS)}")
    if spec.name == "auto":
        raise InputError("'auto' is reserved")
    if spec.name in _REGISTRY[spec.kind] and not replace:
        raise ValueError(f"{spec.kind} backend {spec.name!r} is already registered")
    _REGISTRY[spec.kind][spec.name] = spec
    return spec


def unregister(kind: str, name: str) -> None:
    _REGISTRY.get(kind, {}).pop(name, None)


def registered(kind: str) -> list[BackendSpec]:
    """Backends of ``kind``, in ``auto`` preference order."""
    _ensure_defaults()
    if kind not in _REGISTRY:
        raise InputError(f"unknown backend kind {kind!r}; expected one of {', '.join(KINDS)}")
    return sorted(_REGISTRY[kind].values(), key=lambda s: (s.priority, s.name))


def backend_spec(kind: str, name: str) -> BackendSpec:
    """The spec of the registered backend ``name`` of ``kind``; :class:`InputError` naming the
    choices if there is none. Checks nothing else (no imports, no weights)."""
    by_name = {s.name: s for s in registered(kind)}
    if name not in by_name:
        raise InputError(f"unknown {kind} backend {name!r}; choose auto, {', '.join(by_name)}")
    return by_name[name]


def require_available(kind: str, name: str, options: Mapping[str, Any] | None = None) -> BackendSpec:
    """The spec of the explicitly named backend ``name`` of ``kind``; :class:`InputError` (one
    line, with the reason) if it is unknown or unavailable. Builds nothing (cheap: lets a caller
    fail before any work)."""
    spec = backend_spec(kind, name)
    ok, why = spec.available(options or {})
    if not ok:
        raise InputError(f"{kind} backend {name!r} is not available: {why}")
    return spec


def choose(kind: str, name: str = "auto", options: Mapping[str, Any] | None = None) -> tuple[BackendSpec, str]:
    """The spec :func:`select` would build and why, without building it (cheap: availability
    checks only). An explicitly named backend that is unavailable raises :class:`InputError`
    with the reason; ``auto`` records why every preferred backend was skipped."""
    opts: Mapping[str, Any] = options or {}
    if name != "auto":
        return require_available(kind, name, opts), f"requested {name}"
    skipped: list[str] = []
    for spec in registered(kind):
        ok, why = spec.available(opts)
        if ok:
            return spec, "; ".join([*skipped, f"using {spec.name}"])
        skipped.append(why)
    raise InputError(f"no {kind} backend available: {'; '.join(skipped)}")


def select(kind: str, name: str = "auto", options: Mapping[str, Any] | None = None) -> Selection:
    """Build the backend ``name`` of ``kind`` or, for ``"auto"``, the first available one
    (:func:`choose`)."""
    opts: Mapping[str, Any] = options or {}
    spec, reason = choose(kind, name, opts)
    return Selection(kind, spec.name, spec.factory(opts), reason)


# ----------------------------------------------------------------------------------------------
# availability helpers (no imports of heavy packages, no network)
# ----------------------------------------------------------------------------------------------


def module_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def hf_weights_cached(repo_id: str, filename: str = "config.json") -> bool:
    """True if ``repo_id``'s ``filename`` is in the local Hugging Face cache (or ``repo_id`` is a
    local folder containing it). Never touches the network."""
    from pathlib import Path

    p = Path(repo_id)
    if p.is_dir():
        return (p / filename).is_file()
    if not module_available("huggingface_hub"):
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, filename)
    except Exception:  # malformed repo id etc.
        return False
    return isinstance(hit, str)


_DEFAULTS_LOADED = False


def _ensure_defaults() -> None:
    """Register the shipped backends once (lazily, to avoid import cycles)."""
    global _DEFAULTS_LOADED
    if _DEFAULTS_LOADED:
        return
    _DEFAULTS_LOADED = True
    from pixels2peaks.perception import _defaults

    _defaults.register_defaults()
