"""Synthetic terrains (self-affine fractal surfaces and curation edge cases) for tests and smoke runs."""

from __future__ import annotations

import numpy as np


def fractal(n: int, seed: int, relief_m: float = 1000.0, beta: float = 3.2) -> np.ndarray:
    """Self-affine random surface (power spectrum ~ k^-beta) scaled to ``relief_m`` range."""
    rng = np.random.default_rng(seed)
    k = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2)
    k[0, 0] = 1.0
    spec = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * k ** (-beta / 2)
    spec[0, 0] = 0
    z = np.real(np.fft.ifft2(spec))
    z = (z - z.min()) / (z.max() - z.min())
    return (500.0 + relief_m * z).astype(np.float32)


def mountain(n: int = 64, seed: int = 0) -> np.ndarray:
    return fractal(n, seed, 1500.0)


def void_tile(n: int = 64, seed: int = 1) -> np.ndarray:
    z = mountain(n, seed)
    z[10:14, 20:30] = np.nan
    return z


def flat_noise_tile(n: int = 64, seed: int = 2) -> np.ndarray:
    """A plain: a few metres of noise (fails the relief threshold)."""
    return (200.0 + np.random.default_rng(seed).normal(0, 1.0, (n, n))).astype(np.float32)


def flat_texture_tile(n: int = 64) -> np.ndarray:
    """A plain with one tall isolated knoll: enough range, but flat texture almost everywhere."""
    z = np.full((n, n), 100.0, np.float32)
    yy, xx = np.mgrid[0:n, 0:n]
    z += 800.0 * np.exp(-((yy - 4) ** 2 + (xx - 4) ** 2) / 4.0)
    return z
