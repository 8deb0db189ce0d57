"""Fractal-noise baseline of the realism evaluation: fBm matched in spectrum and amplitude.

* :func:`fbm` -- fractional Brownian surface by spectral synthesis (Voss 1988, in *The Science
  of Fractal Images*, ch. 1; Saupe's ``SpectralSynthesisFM2D``): complex Gaussian Fourier
  coefficients with amplitude ``|k|^(-beta/2)``, i.e. radially averaged power ``P(k) ~ k^-beta``
  (``beta = 2H + 2`` for Hurst exponent ``H``). Synthesised on a grid twice the requested size and
  cropped at the centre, so the result is not periodic (real tiles are not). Zero mean, unit std.
* :func:`matched_fbm` -- one fBm tile per output, each paired with a real tile (a seeded
  permutation, cycled): the same spectral exponent ``beta`` (as measured by
  :func:`pixels2peaks.evaluation.realism.psd_slope`), the same mean and the same amplitude:
  ``"height_std"`` (default) the std of heights, or ``"slope_rms"`` the RMS of the
  central-difference slope. The noise set therefore has the reference set's distribution of
  spectrum slope and amplitude -- and none of its drainage organisation. (Real spectra are not
  one power law, so the two amplitudes differ: on the held-out GLOBE 960 m tiles height-std
  matched fBm is ~2.5x steeper than the real tiles, slope-matched fBm has too little relief.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.noise import fbm

__all__ = ["fbm", "matched_fbm", "Amplitude"]

Amplitude = Literal["height_std", "slope_rms"]


def matched_fbm(
    reference: Sequence[np.ndarray],
    n: int,
    rng: np.random.Generator,
    spectral_slope: Callable[[np.ndarray], float],
    shape: tuple[int, int] | None = None,
    amplitude: Amplitude = "height_std",
) -> np.ndarray:
    """``(n, H, W)`` fBm tiles in metres; tile ``i`` copies ``beta = -spectral_slope(ref)``, the
    mean and the ``amplitude`` of reference tile ``perm[i mod len(reference)]``."""
    if len(reference) == 0:
        raise InputError("matched fBm needs at least one reference tile")
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    if amplitude not in ("height_std", "slope_rms"):
        raise InputError(f"amplitude must be 'height_std' or 'slope_rms', got {amplitude!r}")
    shape = shape or tuple(reference[0].shape)
    perm = rng.permutation(len(reference))
    out = np.empty((n,) + tuple(shape), np.float64)
    for i in range(n):
        ref = np.asarray(reference[perm[i % len(reference)]], dtype=np.float64)
        beta = -float(spectral_slope(ref))
        f = fbm(shape, beta, rng)
        out[i] = ref.mean() + f * (ref.std() if amplitude == "height_std" else _slope_rms(ref) / _slope_rms(f))
    return out


def _slope_rms(z: np.ndarray) -> float:
    """RMS of the central-difference slope per cell (unit cell size: only ratios are used)."""
    from pixels2peaks.terrain.attributes import slope

    return float(np.sqrt(np.mean(slope(z, 1.0, "tan") ** 2)))
