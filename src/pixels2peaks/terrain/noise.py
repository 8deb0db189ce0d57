"""Fractional Brownian surfaces by spectral synthesis (Voss 1988, in *The Science of Fractal
Images*, ch. 1; Saupe's ``SpectralSynthesisFM2D``): complex Gaussian Fourier coefficients with
amplitude ``|k|^(-beta/2)``, i.e. radially averaged power ``P(k) ~ k^-beta`` (``beta = 2H + 2``
for Hurst exponent ``H``). Synthesised on a grid twice the requested size and cropped at the
centre, so the result is not periodic (real tiles are not).

Used by the realism evaluation's matched-noise baseline (``evaluation.fractal``) and by the
landscape evolution model's random uplift fields (``terrain.lem``).
"""

from __future__ import annotations

import numpy as np

from pixels2peaks.errors import InputError

__all__ = ["fbm"]


def fbm(shape: tuple[int, int], beta: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std fBm surface ``(H, W)`` float64 with power spectrum ``~ k^-beta``."""
    h, w = (int(v) for v in shape)
    if h < 2 or w < 2:
        raise InputError(f"fBm needs at least 2x2 cells, got {shape}")
    if not np.isfinite(beta) or beta <= 0:
        raise InputError(f"spectral exponent beta must be > 0, got {beta}")
    n = 2 * max(h, w)
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = 1.0
    amp = k ** (-beta / 2.0)
    amp[0, 0] = 0.0
    coef = (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) * amp
    z = np.fft.irfft2(coef, s=(n, n))
    r0, c0 = (n - h) // 2, (n - w) // 2
    z = z[r0 : r0 + h, c0 : c0 + w]
    z = z - z.mean()
    return z / z.std()
