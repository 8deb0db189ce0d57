"""Slope gain of a geometry backend: the pitch search (Eq. 1) matches ``atan(g tan s_prior)``
on pointmaps whose terrain is ``g`` times as steep (in ``tan``) as the real one."""

import json
import math

import numpy as np
import pytest

from pixels2peaks.camera import RandomCameraRanges
from pixels2peaks.errors import InputError
from pixels2peaks.perception.geometry import ReconstructOptions, pitch_rotation, pointmap_slope_deg, reconstruct
from pixels2peaks.perception.protocols import GeometryResult


def test_pointmap_slope_closed_forms():
    assert pointmap_slope_deg(25.0) == pytest.approx(25.0)
    assert pointmap_slope_deg(45.0, 0.5) == pytest.approx(math.degrees(math.atan(0.5)))
    assert pointmap_slope_deg(10.0, 2.0) == pytest.approx(math.degrees(math.atan(2 * math.tan(math.radians(10)))))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError):
            pointmap_slope_deg(20.0, bad)
    with pytest.raises(InputError):
        pointmap_slope_deg(90.0, 1.0)


def test_geometry_result_validates_slope_gain():
    pts = np.ones((4, 5, 3), np.float32)
    assert GeometryResult(pts, 60.0, np.ones((4, 5), bool)).slope_gain == 1.0
    assert GeometryResult(pts, 60.0, np.ones((4, 5), bool), slope_gain=0.7).slope_gain == 0.7
    for bad in (0.0, -0.5, float("nan")):
        with pytest.raises(InputError):
            GeometryResult(pts, 60.0, np.ones((4, 5), bool), slope_gain=bad)


def _rough_hill(flatten: float, pitch_deg: float) -> np.ndarray:
    """Camera-frame pointmap ``(N, 1, 3)`` of a rough slope rising away from a camera at
    ``pitch_deg``, with all heights (level frame) multiplied by ``flatten``."""
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.arange(-400.0, 400.0, 8.0), np.arange(150.0, 950.0, 8.0))
    z = 0.45 * (y - 150.0) + 25.0 * np.sin(x / 60.0) * np.cos(y / 45.0) + rng.normal(0, 2.0, x.shape) - 120.0
    world = np.stack([x.ravel(), y.ravel(), flatten * z.ravel()], axis=1)
    return (world @ pitch_rotation(pitch_deg))[:, None, :]


def test_reconstruct_corrects_a_flattened_pointmap_by_its_slope_gain():
    opts = ReconstructOptions(clean=None, pitch_range_deg=(-20.0, 20.0), pitch_step_deg=0.5, search_cells=96)
    true_pitch, flatten = 6.0, 0.6
    one = np.ones((_rough_hill(1.0, true_pitch).shape[0], 1), bool)
    # the prior: the slope the search measures on the unflattened terrain at the true pitch
    ref = reconstruct(_rough_hill(1.0, true_pitch), one, 60.0, 20.0, (0.0, 500.0), opts)
    s_true = float(ref.pitch.slopes_deg[np.argmin(np.abs(ref.pitch.candidates_deg - true_pitch))])
    exact = reconstruct(_rough_hill(1.0, true_pitch), one, 60.0, s_true, (0.0, 500.0), opts)
    assert abs(exact.camera.pitch_deg - true_pitch) <= 0.5
    flat = _rough_hill(flatten, true_pitch)
    naive = reconstruct(flat, one, 60.0, s_true, (0.0, 500.0), opts)
    fixed = reconstruct(flat, one, 60.0, s_true, (0.0, 500.0), opts, slope_gain=flatten)
    assert abs(naive.camera.pitch_deg - true_pitch) >= 3.0  # a flattened cloud is tilted to match the prior
    assert abs(fixed.camera.pitch_deg - true_pitch) <= 1.0
    assert fixed.pitch.target_slope_deg == pytest.approx(pointmap_slope_deg(s_true, flatten))


def test_learned_geometry_reports_the_cards_slope_gain(tmp_path, one_torch_thread):
    import torch

    from pixels2peaks.perception.depth_net import DepthNet, DepthNetConfig, LearnedGeometry, save_depth_net
    from pixels2peaks.training.perception_depth import write_slope_gain

    torch.manual_seed(0)
    stem = tmp_path / "net"
    save_depth_net(DepthNet(DepthNetConfig(width=32, height=16, channels=(4, 6, 8))).eval(), stem,
                   {"net": {"width": 32, "height": 16, "channels": [4, 6, 8]}, "parameters": 1})
    img = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    assert LearnedGeometry(50.0, weights=stem).estimate(img).slope_gain == 1.0  # no calibration yet
    write_slope_gain(stem, {"value": 0.7, "iqr": [0.6, 0.8], "photos": 3, "per_photo": []}, "test")
    card = json.loads(stem.with_suffix(".json").read_text())
    assert card["slope_gain"]["value"] == 0.7 and card["slope_gain"]["source"] == "test"
    assert card["net"]["channels"] == [4, 6, 8]  # the rest of the card is kept
    g = LearnedGeometry(50.0, weights=stem).estimate(img)  # the rewritten card is read again
    assert g.slope_gain == 0.7 and "slope gain 0.7" in g.source
    with pytest.raises(InputError):
        write_slope_gain(tmp_path / "missing", {"value": 1.0}, "test")


class _Flattening:
    """A geometry backend returning the render's true pointmap with level-frame heights (about
    the camera) scaled by ``flatten``: its slope gain is ``flatten`` by construction."""

    def __init__(self, truth: dict, flatten: float):
        self.truth, self.flatten = truth, flatten

    def estimate(self, image: np.ndarray, terrain=None) -> GeometryResult:
        cam, pm, hit = self.truth["camera"], self.truth["pointmap"], self.truth["hit"]
        p = pm.astype(np.float64) - np.asarray(cam.position_m)
        p[..., 2] *= self.flatten
        c = cam.world_to_camera(np.asarray(cam.position_m) + p)
        return GeometryResult(np.where(hit[..., None], c, np.nan).astype(np.float32), cam.fov_x_deg, hit)


def test_measure_slope_gain_recovers_a_known_flattening(monkeypatch):
    import pixels2peaks.camera as camera_mod
    from pixels2peaks.training.perception_depth import CalibrationConfig, measure_slope_gain
    from pixels2peaks.training.synthetic import fractal

    truth: dict = {}
    real_synth = camera_mod.synthesize

    def spy(*a, **k):  # keep the last render's ground truth for the fake backend
        res = real_synth(*a, **k)
        truth.update(camera=res.camera, pointmap=res.render.pointmap, hit=res.render.hit)
        return res

    monkeypatch.setattr(camera_mod, "synthesize", spy)
    z = fractal(96, 3, relief_m=1500.0)
    cfg = CalibrationConfig(photos=4, camera=RandomCameraRanges(width=96, height=72, agl_cells=(0.3, 2.0), candidates=6),
                            min_slope_deg=1.0)
    runs = {f: measure_slope_gain([(z, 30.0)], np.array([1.0]), lambda fov, f=f: _Flattening(truth, f), cfg,
                                  progress=False) for f in (1.0, 0.5)}
    assert runs[1.0]["photos"] == 4 and len(runs[1.0]["per_photo"]) == 4
    # same seed, same photos; the true pointmap's gain is ~1 (the search's grid slope of a small
    # low-resolution render is not the DEM's slope exactly) and halving heights halves it
    assert 0.7 < runs[1.0]["value"] < 1.4
    ratios = [b["ratio"] / a["ratio"] for a, b in zip(runs[1.0]["per_photo"], runs[0.5]["per_photo"])]
    assert [a["seed"] for a in runs[1.0]["per_photo"]] == [b["seed"] for b in runs[0.5]["per_photo"]]
    assert np.median(ratios) == pytest.approx(0.5, abs=0.05)
