"""Terrain attributes: slope, Laplacian, D_sigma, hillshade (pixels2peaks.terrain.attributes)."""

import math

import numpy as np
import pytest
import torch

from pixels2peaks.errors import InputError
from pixels2peaks.terrain.attributes import (
    as_tensor,
    downsample_smooth,
    gradient,
    hillshade,
    laplacian,
    slope,
)


def _xy(h, w, dx):
    """World coordinates of cell centres (docs/conventions.md): x east, y north."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return (cols + 0.5) * dx, (h - rows - 0.5) * dx


def test_gradient_of_plane_signs_and_values():
    dx = 2.5
    x, y = _xy(9, 11, dx)
    z = 0.3 * x - 0.7 * y + 100.0
    gx, gy = gradient(z, dx)
    assert isinstance(gx, np.ndarray) and gx.shape == z.shape
    np.testing.assert_allclose(gx[1:-1, 1:-1], 0.3, rtol=1e-10)
    np.testing.assert_allclose(gy[1:-1, 1:-1], -0.7, rtol=1e-10)
    # replicate padding: a one-sided half difference on the border
    np.testing.assert_allclose(gx[:, 0], 0.15, rtol=1e-10)


def test_slope_of_plane_and_rotation_invariance():
    dx = 10.0
    x, y = _xy(16, 20, dx)
    rng = np.random.default_rng(0)
    mag = 0.8
    expected_deg = math.degrees(math.atan(mag))
    for theta in rng.uniform(0, 2 * np.pi, size=8):
        a, b = mag * math.cos(theta), mag * math.sin(theta)
        z = torch.from_numpy(a * x + b * y)[None, None]  # float64 (1, 1, H, W)
        s_deg = slope(z, dx, unit="deg")[..., 1:-1, 1:-1]
        s_tan = slope(z, dx, unit="tan")[..., 1:-1, 1:-1]
        assert s_deg.shape == (1, 1, 14, 18)
        torch.testing.assert_close(s_deg, torch.full_like(s_deg, expected_deg), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(s_tan, torch.full_like(s_tan, mag), rtol=1e-9, atol=1e-9)


def test_slope_float32_batched():
    x, y = _xy(8, 8, 1.0)
    z = np.stack([np.zeros_like(x), 1.0 * x])[:, None].astype(np.float32)  # (2,1,8,8)
    s = slope(torch.from_numpy(z), 1.0, unit="deg")
    assert s.shape == (2, 1, 8, 8) and s.dtype == torch.float32
    assert torch.all(s[0] == 0)
    torch.testing.assert_close(s[1, 0, 1:-1, 1:-1], torch.full((6, 6), 45.0))


def test_laplacian_of_paraboloid_is_4c():
    dx, c = 3.0, 0.0125
    x, y = _xy(12, 10, dx)
    z = c * (x**2 + y**2)
    lap = laplacian(z, dx)
    np.testing.assert_allclose(lap[1:-1, 1:-1], 4 * c, rtol=1e-9)
    # and of a plane: zero
    assert np.allclose(laplacian(2 * x - y, dx)[1:-1, 1:-1], 0, atol=1e-12)


def test_gradcheck_all_operators():
    torch.manual_seed(0)
    z = torch.randn(2, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: slope(t, 2.0, unit="tan"), (z,))
    assert torch.autograd.gradcheck(lambda t: slope(t, 2.0, unit="deg"), (z,))
    assert torch.autograd.gradcheck(lambda t: laplacian(t, 2.0), (z,))
    assert torch.autograd.gradcheck(lambda t: downsample_smooth(t, 2), (z,))
    assert torch.autograd.gradcheck(lambda t: gradient(t, 2.0)[1], (z,))
    zs = (0.1 * torch.randn(1, 1, 5, 5, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: hillshade(t, 1.0), (zs,))


def test_slope_gradient_finite_on_flat():
    z = torch.zeros(1, 1, 6, 6, requires_grad=True)
    slope(z, 1.0).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_downsample_smooth_constant_and_shapes():
    z = torch.full((3, 1, 37, 50), 123.5)
    for f in (1, 2, 4, 8):
        out = downsample_smooth(z, f)
        assert out.shape == (3, 1, 37 // f, 50 // f)
        torch.testing.assert_close(out, torch.full_like(out, 123.5))
    out = downsample_smooth(z, 4, sigma_cells=0.0)
    assert out.shape == (3, 1, 9, 12)
    # numpy (H, W) in -> numpy (H//f, W//f) out
    a = downsample_smooth(np.ones((10, 7)), 3)
    assert isinstance(a, np.ndarray) and a.shape == (3, 2) and np.allclose(a, 1.0)
    # factor 1 with default sigma is the identity
    r = torch.randn(1, 1, 6, 6)
    assert torch.equal(downsample_smooth(r, 1), r)


def test_downsample_smooth_removes_noise():
    torch.manual_seed(1)
    noise = torch.randn(1, 1, 64, 64)
    assert downsample_smooth(noise, 4).std() < 0.25 * noise.std()


def test_hillshade():
    flat = torch.zeros(2, 1, 7, 9)
    for alt in (10.0, 45.0, 90.0):
        hs = hillshade(flat, 5.0, altitude_deg=alt)
        torch.testing.assert_close(hs, torch.full_like(hs, math.sin(math.radians(alt))))
    x, y = _xy(10, 10, 1.0)
    # a slope facing north-west (z rises towards SE) is lit by the default NW light
    facing_nw = hillshade(x - y, 1.0)[1:-1, 1:-1]
    facing_se = hillshade(y - x, 1.0)[1:-1, 1:-1]
    assert np.all(facing_nw > math.sin(math.radians(45))) and np.all(facing_se < 0.2)
    steep = hillshade(100 * x, 1.0)
    assert steep.min() >= 0.0 and steep.max() <= 1.0


def test_input_kinds_and_errors():
    z = np.random.default_rng(2).random((6, 5))
    assert isinstance(slope(z, 1.0), np.ndarray) and slope(z, 1.0).dtype == np.float64
    assert slope(z.astype(np.float32), 1.0).dtype == np.float32
    assert slope(np.zeros((4, 4), dtype=np.int16), 1.0).dtype == np.float32
    t2 = torch.from_numpy(z)
    assert laplacian(t2, 1.0).shape == (6, 5)
    assert as_tensor(z).shape == (1, 1, 6, 5)
    with pytest.raises(InputError):
        slope(z, 1.0, unit="rad")
    with pytest.raises(InputError):
        slope(z, 0.0)
    with pytest.raises(InputError):
        laplacian(torch.zeros(1, 3, 4, 4), 1.0)
    with pytest.raises(InputError):
        downsample_smooth(z, 0)
    with pytest.raises(InputError):
        downsample_smooth(z, 2.5)
    with pytest.raises(InputError):
        downsample_smooth(z, 8)


def test_device_agnostic_meta():
    # runs on whatever device the tensor lives on: 'meta' exercises shape logic without data
    z = torch.empty(2, 1, 16, 16, device="meta")
    assert slope(z, 1.0).device.type == "meta"
    assert downsample_smooth(z, 4).shape == (2, 1, 4, 4)
    assert hillshade(z, 1.0).device.type == "meta"
