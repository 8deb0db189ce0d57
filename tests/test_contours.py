"""Contour geometry (perception.contours): faces below crests, ridgeline detection, backend."""

import math

import numpy as np

from pixels2peaks.camera.model import focal_px
from pixels2peaks.perception.contours import ContourGeometry, ContourOptions, face_depth, occluding_contours


def test_focal_px_closed_form():
    assert math.isclose(focal_px(800, 90.0), 400.0)
    assert math.isclose(focal_px(1000, 60.0), 500.0 / math.tan(math.radians(30.0)))


def test_face_is_the_plane_through_the_crest():
    """Every face point lies on the plane through the crest that falls towards the camera at the
    face slope: height x tan(phi) = D0 tan(phi0) - s (D0 - x); depth falls down the column."""
    tan_phi = np.linspace(0.05, -0.4, 200)
    s = math.tan(math.radians(25.0))
    d = face_depth(tan_phi, np.array([20]), np.array([1000.0]), s, 0.1)
    assert np.isnan(d[:20]).all()
    x = d[20:]
    np.testing.assert_allclose(x * tan_phi[20:], 1000.0 * tan_phi[20] - s * (1000.0 - x), rtol=1e-9, atol=1e-9)
    assert x[0] == 1000.0 and (np.diff(x) < 0).all()


def test_occlusion_order_is_enforced_top_down():
    """A lower crest whose cue says 'farther' is pulled in front of the face above it."""
    tan_phi = np.linspace(0.05, -0.4, 200)
    d = face_depth(tan_phi, np.array([10, 80]), np.array([1000.0, 5000.0]), math.tan(math.radians(25)), 0.1)
    assert d[80] <= d[79]
    d2 = face_depth(tan_phi, np.array([10, 80]), np.array([1000.0, 300.0]), math.tan(math.radians(25)), 0.1)
    assert d2[80] == 300.0


def _two_ridges(h=120, w=200):
    """Sky above, a far hazy ridge (bright) and a near dark ridge below it, with known rows."""
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    sky_top = 20 + (5 * np.sin(cols / 15.0)).astype(int)
    near_top = 60 + (8 * np.sin(cols / 23.0 + 1)).astype(int)
    img = np.zeros((h, w, 3))
    img[:] = [0.7, 0.8, 0.95]
    far = (rows >= sky_top) & (rows < near_top)
    near = rows >= near_top
    img[far] = [0.55, 0.6, 0.7]
    img[near] = [0.15, 0.2, 0.12]
    terrain = rows >= sky_top
    return img, terrain, near_top.ravel()


def test_ridgeline_found_at_the_occlusion():
    img, terrain, near_top = _two_ridges()
    c = occluding_contours(img, terrain, ContourOptions())
    found = [np.flatnonzero(c[:, j]) for j in range(img.shape[1])]
    hits = [abs(f - t).min() for f, t in zip(found, near_top) if f.size]
    assert len(hits) >= 0.9 * img.shape[1]
    assert np.median(hits) <= 1


def test_haze_orders_the_two_ridges():
    """Through the backend: the hazier upper ridge is farther than the clear lower one, and the
    depth falls from each crest down to the next contour (no constant-depth walls)."""
    img, terrain, near_top = _two_ridges()
    g = ContourGeometry(fov_x_deg=60.0, cue="haze").estimate((img * 255).astype(np.uint8), terrain)
    z = g.points[..., 2]
    j = 100
    assert z[near_top[j] - 3, j] > z[near_top[j] + 3, j]
    col = z[terrain[:, j], j]
    assert (np.diff(col[2:]) <= 1e-6).mean() > 0.95
    assert g.valid[terrain].all() and not g.valid[~terrain].any()


def test_no_ridgeline_falls_back_with_one_warning():
    """Fog (a uniform image): no internal contour -> one warning, one face per column, no crash."""
    import warnings

    fog = np.full((60, 80, 3), 200, np.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = ContourGeometry(cue="haze").estimate(fog)
    assert [str(w.message).count("\n") for w in caught] == [0]
    assert "no internal ridgeline" in str(caught[0].message)
    assert g.valid.all() and np.isfinite(g.points).all()
