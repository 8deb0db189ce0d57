"""Height normalization for the terrain diffusion prior.

The model works on *normalized* heights

    z_n = (z - z_ref) / (s * dx)

where ``z`` are heights in metres, ``dx`` is the cell size in metres, ``s`` is a slope scale stored with
the model (one constant, or a table over dx: :meth:`PriorConfig.slope_scale_at`) and ``z_ref`` is a
per-heightmap reference height.

Why this form:

* **Invertible**: ``z = z_n * s * dx + z_ref``.
* **Slope-preserving**: a finite difference of ``z_n`` between neighbouring cells is
  ``(z_i - z_j) / (s * dx) = slope / s``: with one global ``s`` the same number at every sampling
  density; with a per-dx table (the shipped prior) slopes are scaled by one constant per density,
  chosen so that every density has the same normalized variance (docs/model-card.md).
* **Seamless tiling**: ``s`` and ``z_ref`` are shared by every tile of one heightmap, so
  the normalization is one affine map for the whole heightmap; tiles denoised independently in
  normalized space fit together without per-tile offsets or gains.

``z_ref`` only shifts the mean. During training it is the tile mean plus random jitter
(``TrainNormalization.jitter``), so the model learns that the absolute level of a tile is arbitrary
within a few units; at inference any per-heightmap reference works (e.g. the mean of the known
heights, or 0 for unconditional sampling followed by a user-chosen base level).

``s`` is chosen from data statistics (see ``docs/model-card.md``): per dx level, the median per-crop
standard deviation of ``z / dx``, so typical training crops have a normalized std of about 1 at
every level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pixels2peaks.errors import InputError

#: Default slope scale, measured on the curated training set (see docs/model-card.md).
DEFAULT_SLOPE_SCALE = 1.2


@dataclass(frozen=True)
class HeightNormalization:
    """Affine height normalization ``z_n = (z - z_ref) / (s * dx)``.

    Attributes:
        s: global dimensionless slope scale (one per model).
        dx_m: cell size in metres of the heightmap being normalized.
        z_ref_m: per-heightmap reference height in metres (shared by all its tiles).
    """

    s: float
    dx_m: float
    z_ref_m: float = 0.0

    def __post_init__(self) -> None:
        for name in ("s", "dx_m"):
            v = float(getattr(self, name))
            if not np.isfinite(v) or v <= 0:
                raise InputError(f"{name} must be a positive finite number, got {v!r}")
            object.__setattr__(self, name, v)
        zr = float(self.z_ref_m)
        if not np.isfinite(zr):
            raise InputError(f"z_ref_m must be finite, got {zr!r}")
        object.__setattr__(self, "z_ref_m", zr)

    @property
    def scale_m(self) -> float:
        """Metres per normalized unit (``s * dx``)."""
        return self.s * self.dx_m

    def encode(self, z: Any) -> Any:
        """Metres -> normalized units. Works on numpy arrays, torch tensors and floats."""
        return (z - self.z_ref_m) / self.scale_m

    def decode(self, z_n: Any) -> Any:
        """Normalized units -> metres (exact inverse of :meth:`encode`)."""
        return z_n * self.scale_m + self.z_ref_m

    @classmethod
    def for_heightmap(cls, z: np.ndarray, dx_m: float, s: float = DEFAULT_SLOPE_SCALE) -> HeightNormalization:
        """Normalization with ``z_ref`` = mean of the finite heights of ``z`` (one per heightmap)."""
        z = np.asarray(z, dtype=np.float64)
        ok = np.isfinite(z)
        if not ok.any():
            raise InputError("cannot normalize a heightmap with no finite heights")
        return cls(s=s, dx_m=dx_m, z_ref_m=float(z[ok].mean()))


def dx_class_label(dx_m: Any) -> Any:
    """Scalar conditioning value fed to the U-Net for a sampling density ``dx_m`` (metres).

    ``64 * log2(dx_m)``: 0 at 1 m, 314 at 30 m, 634 at 960 m, 698 at 1920 m — in the range the
    sinusoidal timestep projection used for class embeddings resolves well, and one dx octave
    (64 units) is far apart in embedding space. Works on floats, numpy arrays and torch tensors.
    """
    try:
        import torch

        if isinstance(dx_m, torch.Tensor):
            return 64.0 * torch.log2(dx_m.to(torch.float32))
    except ImportError:  # pragma: no cover
        pass
    return 64.0 * np.log2(np.asarray(dx_m, dtype=np.float64))
