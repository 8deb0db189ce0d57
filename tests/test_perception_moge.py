"""MoGe geometry backend, wired against a stand-in ``moge`` package with MoGe's interface
(``moge.model.v2.MoGeModel.from_pretrained`` / ``infer``): no download, no real weights."""

import importlib.machinery
import math
import sys
import types

import numpy as np
import pytest
import torch

from pixels2peaks.errors import InputError
from pixels2peaks.perception import _defaults
from pixels2peaks.perception.moge_backend import MoGeGeometry, fov_from_intrinsics
from pixels2peaks.perception.protocols import GeometryBackend, select

FX = 0.6  # normalised focal length (image widths): fov_x = 2 atan(0.5 / 0.6) = 79.6 deg


class FakeMoGeModel(torch.nn.Module):
    """``infer`` returns what MoGe-2 returns: ``points`` (H, W, 3) in the OpenCV camera frame with
    ``inf`` where masked, ``depth``, ``mask`` and normalised ``intrinsics``; the top quarter is sky."""

    loaded_from: list = []

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.calls: list = []

    @classmethod
    def from_pretrained(cls, path, **hf_kwargs):
        cls.loaded_from.append((str(path), hf_kwargs))
        return cls()

    def infer(self, image, resolution_level=9, fov_x=None, use_fp16=True, apply_mask=True):
        self.calls.append({"shape": tuple(image.shape), "fov_x": fov_x, "use_fp16": use_fp16,
                           "max": float(image.max())})
        _, h, w = image.shape
        fx = FX if fov_x is None else 0.5 / math.tan(math.radians(fov_x) / 2)
        fy = fx * w / h
        v, u = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
        depth = 100.0 + 1000.0 * (1.0 - v)  # farther towards the top
        pts = torch.stack([(u - 0.5) / fx * depth, (v - 0.5) / fy * depth, depth], dim=-1)
        mask = v > 0.25
        pts = torch.where(mask[..., None], pts, torch.inf)
        k = torch.tensor([[fx, 0.0, 0.5], [0.0, fy, 0.5], [0.0, 0.0, 1.0]])
        return {"points": pts, "depth": torch.where(mask, depth, torch.inf), "mask": mask, "intrinsics": k}


@pytest.fixture()
def fake_moge(monkeypatch):
    moge = types.ModuleType("moge")
    model = types.ModuleType("moge.model")
    v2 = types.ModuleType("moge.model.v2")
    v2.MoGeModel = FakeMoGeModel
    moge.model, model.v2 = model, v2
    for name, mod in (("moge", moge), ("moge.model", model), ("moge.model.v2", v2)):
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)  # importable for find_spec
        monkeypatch.setitem(sys.modules, name, mod)
    FakeMoGeModel.loaded_from = []
    return FakeMoGeModel


def test_fov_from_intrinsics():
    assert fov_from_intrinsics(np.diag([0.5, 0.5, 1.0])) == pytest.approx(90.0)
    assert fov_from_intrinsics(np.diag([FX, 1.0, 1.0])) == pytest.approx(math.degrees(2 * math.atan(0.5 / FX)))
    with pytest.raises(InputError):
        fov_from_intrinsics(np.diag([0.0, 1.0, 1.0]))


def test_moge_availability(fake_moge, tmp_path, monkeypatch):
    monkeypatch.setattr(_defaults, "module_available", lambda m: m != "moge")
    assert _defaults._moge_available({}) == (False, "moge not installed")
    monkeypatch.setattr(_defaults, "module_available", lambda m: True)
    monkeypatch.setattr(_defaults, "hf_weights_cached", lambda repo, filename="config.json": False)
    ok, why = _defaults._moge_available({})
    assert not ok and "no local MoGe weights (Ruicheng/moge-2-vitl-normal)" in why
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    assert _defaults._moge_available({"moge_model": str(ckpt)}) == (True, "")
    # the cached Hugging Face checkpoint is looked up as model.pt, never downloaded
    seen = []
    monkeypatch.setattr(_defaults, "hf_weights_cached", lambda repo, filename="config.json": seen.append(filename) or True)
    assert _defaults._moge_available({})[0] and seen == ["model.pt"]
    # auto prefers moge when it is available
    sel = select("geometry", "auto", {"moge_model": str(ckpt)})
    assert sel.name == "moge" and isinstance(sel.backend, MoGeGeometry) and isinstance(sel.backend, GeometryBackend)
    assert fake_moge.loaded_from[-1] == (str(ckpt), {})  # a local file: no hub arguments
    MoGeGeometry.from_pretrained("some/repo")
    assert fake_moge.loaded_from[-1] == ("some/repo", {"local_files_only": True})


def test_moge_pointmap_units_fov_and_mask(fake_moge):
    img = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    g = MoGeGeometry.from_pretrained("repo")
    r = g.estimate(img)
    call = g.model.calls[-1]
    assert call["shape"] == (3, 60, 80) and call["fov_x"] is None and call["use_fp16"] is False
    assert call["max"] <= 1.0  # the image goes in as [0, 1]
    assert r.points.shape == (60, 80, 3) and r.points.dtype == np.float32
    assert r.fov_x_deg == pytest.approx(math.degrees(2 * math.atan(0.5 / FX)))
    assert not r.valid[:15].any() and r.valid[15:].all()  # MoGe's mask (inf points) is invalid
    assert np.isnan(r.points[:15]).all()
    # camera frame: x right, y down, z forward; a pixel's point lies on its pinhole ray
    row, col = 40, 70
    p = r.points[row, col]
    fx_px = 80 * FX
    assert p[0] / p[2] == pytest.approx((col + 0.5 - 40) / fx_px, rel=1e-4)
    assert p[1] / p[2] == pytest.approx((row + 0.5 - 30) / fx_px, rel=1e-4)
    assert "estimated" in r.source
    # a known FOV is passed to MoGe and reported as given
    r2 = MoGeGeometry(g.model, fov_x_deg=50.0).estimate(img)
    assert g.model.calls[-1]["fov_x"] == 50.0 and r2.fov_x_deg == 50.0 and "given" in r2.source


def test_moge_bad_input_and_bad_output(fake_moge):
    g = MoGeGeometry.from_pretrained("repo")
    with pytest.raises(InputError):
        g.estimate(np.zeros((10, 10), np.uint8))

    class Broken(FakeMoGeModel):
        def infer(self, image, **kw):
            out = super().infer(image, **kw)
            out["points"] = out["points"][:-1]
            return out

    with pytest.raises(InputError, match="shape"):
        MoGeGeometry(Broken()).estimate(np.zeros((20, 30, 3), np.uint8))

    class Unloadable(FakeMoGeModel):
        @classmethod
        def from_pretrained(cls, path, **kw):
            raise OSError("no such file in the local cache\nmore")

    sys.modules["moge.model.v2"].MoGeModel = Unloadable
    with pytest.raises(InputError, match="cannot load MoGe model 'x/y' from local files: no such file"):
        MoGeGeometry.from_pretrained("x/y")


def test_visible_pipeline_with_moge(fake_moge, tmp_path):
    from pixels2peaks.perception.geometry import ReconstructOptions
    from pixels2peaks.perception.pipeline import VisibleOptions, estimate_visible

    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    img = np.random.default_rng(1).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    res = estimate_visible(img, VisibleOptions(
        geometry="moge", segmentation="builtin", backend_options={"moge_model": str(ckpt)},
        mean_slope_deg=10.0, elevation_range_m=(0.0, 500.0),
        reconstruct=ReconstructOptions(clean=None, pitch_step_deg=1.0, target_cells=64)))
    assert res.report["backends"]["geometry"]["name"] == "moge"
    assert res.report["fov_x_deg"] == pytest.approx(math.degrees(2 * math.atan(0.5 / FX)))
    assert res.report["pitch_search"]["slope_gain"] == 1.0
    assert res.mask.any() and np.nanmax(res.z) == pytest.approx(500.0, abs=1e-2)
