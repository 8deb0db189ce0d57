"""Stage cache (pixels2peaks.cache): keys, atomic entries, hits skip work."""

import errno
import json

import numpy as np
import pytest

from pixels2peaks import cache as cache_mod
from pixels2peaks.cache import StageCache, canonical_json, code_fingerprint, default_cache_dir, stage_key


def test_keys_are_canonical_and_sensitive():
    a = stage_key("s", {"x": 1, "y": (1.5, 2.0), "z": None}, ["u1"])
    assert a == stage_key("s", {"z": None, "y": [1.5, 2.0], "x": 1}, ["u1"])  # order, tuple == list
    assert len(a) == 64 and int(a, 16) >= 0
    assert a != stage_key("s", {"x": 2, "y": (1.5, 2.0), "z": None}, ["u1"])
    assert a != stage_key("s", {"x": 1, "y": (1.5, 2.0), "z": None}, ["u2"])
    assert a != stage_key("t", {"x": 1, "y": (1.5, 2.0), "z": None}, ["u1"])
    assert a != stage_key("s", {"x": 1.0000001, "y": (1.5, 2.0), "z": None}, ["u1"])
    # dataclasses, numpy scalars, non-finite floats are encoded deterministically
    from pixels2peaks.perception.geometry import CleanOptions

    doc = canonical_json({"c": CleanOptions(), "n": np.float32(0.5), "inf": float("inf")})
    assert json.loads(doc)["c"]["min_samples"] == 8 and json.loads(doc)["inf"] == "inf"
    assert json.loads(doc)["n"] == 0.5


def test_round_trip_and_types_match_on_hit_and_miss(tmp_path):
    c = StageCache(tmp_path)
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    m = z > 4
    value = {"z": z, "mask": m, "dx_m": 2.5, "pair": (1, 2), "info": {"a": [1, "b"]}, "none": None}
    calls = []

    def compute():
        calls.append(1)
        return value

    miss = c.run("stage", {"k": 1}, ["up"], compute)
    hit = c.run("stage", {"k": 1}, ["up"], compute)
    assert len(calls) == 1 and not miss.cached and hit.cached and miss.key == hit.key
    for out in (miss.value, hit.value):
        assert np.array_equal(out["z"], z) and out["z"].dtype == np.float32
        assert out["mask"].dtype == bool and np.array_equal(out["mask"], m)
        assert out["pair"] == [1, 2] and out["info"] == {"a": [1, "b"]} and out["none"] is None
    assert (tmp_path / "stage" / f"{hit.key}.npz").is_file()
    # another setting is another entry
    c.run("stage", {"k": 2}, ["up"], compute)
    assert len(calls) == 2


def test_disabled_cache_always_computes(tmp_path):
    c = StageCache(None)
    calls = []
    for _ in range(2):
        out = c.run("s", {}, [], lambda: calls.append(1) or {"v": 1})
        assert not out.cached
    assert len(calls) == 2 and not c.enabled


def test_corrupt_entry_is_a_miss_and_removed(tmp_path):
    c = StageCache(tmp_path)
    key = stage_key("s", {}, [])
    p = c.path("s", key)
    p.parent.mkdir(parents=True)
    p.write_bytes(b"PK\x03\x04 garbage")
    assert c.load("s", key) is None and not p.exists()
    out = c.run("s", {}, [], lambda: {"v": np.ones(3)})
    assert not out.cached and c.load("s", key) is not None


def test_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    c = StageCache(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        c.run("s", {}, [], lambda: {"v": np.ones(3)})
    assert list((tmp_path / "s").iterdir()) == []  # neither an entry nor a temporary file
    assert c.load("s", stage_key("s", {}, [])) is None


def test_full_disk_warns_and_goes_on(tmp_path, monkeypatch):
    c = StageCache(tmp_path)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod.np, "savez", full)
    with pytest.warns(UserWarning, match="No space left"):
        out = c.run("s", {}, [], lambda: {"v": np.ones(3)})
    assert np.array_equal(out.value["v"], np.ones(3)) and list((tmp_path / "s").iterdir()) == []


def test_default_dir_and_code_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("P2P_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("P2P_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "pixels2peaks"
    # a source change changes the fingerprint
    (tmp_path / "p2p_fp_probe.py").write_text("A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    f1 = code_fingerprint("p2p_fp_probe")
    code_fingerprint.cache_clear()
    (tmp_path / "p2p_fp_probe.py").write_text("A = 2\n")
    assert code_fingerprint("p2p_fp_probe") != f1
    assert code_fingerprint("pixels2peaks.diffusion") == code_fingerprint("pixels2peaks.diffusion")
