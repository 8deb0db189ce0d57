"""`p2p export` / pixels2peaks.io.export: every export reopened by its own reader (Pillow,
rasterio, numpy.fromfile, OpenEXR, trimesh), the Blender script checked against a whitelist of
bpy API names and executed against a recording fake ``bpy``; bad inputs give one error line."""

from __future__ import annotations

import ast
import errno
import json
import math
import runpy
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pixels2peaks.camera import Camera
from pixels2peaks.cli.main import app
from pixels2peaks.errors import InputError
from pixels2peaks.io import Dem, read_dem, write_geotiff
from pixels2peaks.io import export as ex
from pixels2peaks.io.export import ExportOptions, export_heightmap

runner = CliRunner()
DX = 7.5


def _terrain(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth non-trivial terrain (metres), float32, no two corners equal."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    z = 1200.0 + 80.0 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 3.0 * xx - 2.0 * yy
    return (z + rng.normal(0.0, 0.5, (h, w))).astype(np.float32)


@pytest.fixture()
def dem() -> Dem:
    return Dem(_terrain(21, 34), DX)


def _quantum(z: np.ndarray) -> float:
    return float(z.max() - z.min()) / 65535.0


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def test_fill_nodata_nearest_and_lowest():
    z = np.array([[1.0, np.nan, np.nan, np.nan, np.nan, 9.0]])
    assert ex.fill_nodata(z, "nearest").tolist() == [[1.0, 1.0, 1.0, 9.0, 9.0, 9.0]]
    assert ex.fill_nodata(z, "lowest").tolist() == [[1.0, 1.0, 1.0, 1.0, 1.0, 9.0]]
    island = np.full((3, 3), np.nan)
    island[1, 1] = 5.0
    assert (ex.fill_nodata(island) == 5.0).all()
    with pytest.raises(InputError):
        ex.fill_nodata(np.full((2, 2), np.nan))


def test_quantize16_spans_full_range_and_decodes_within_half_quantum():
    z = np.linspace(-12.5, 830.0, 1001)
    k = ex.quantize16(z, float(z.min()), float(z.max()))
    assert k.dtype == np.uint16 and k.min() == 0 and k.max() == 65535
    q = (z.max() - z.min()) / 65535
    assert np.abs(z.min() + k * q - z).max() <= q / 2 + 1e-9


@pytest.mark.parametrize(
    "hw, policy, n", [((33, 33), "up", 33), ((34, 20), "up", 65), ((34, 20), "down", 33),
                      ((1000, 1200), "up", 2049), ((1000, 1200), "down", 1025), ((9000, 10), "up", 4097),
                      ((5, 5), "down", 33)]
)
def test_unity_resolution(hw, policy, n):
    assert ex.unity_resolution(*hw, policy) == n
    assert (n - 1) & (n - 2) == 0  # n - 1 is a power of two


def test_resample_vertex_grid_keeps_corners_and_planes():
    h, w = 17, 40
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    plane = 3.0 * r - 0.25 * c + 100.0
    out = ex.resample_vertex_grid(plane, 65, 65)
    rr, cc = np.meshgrid(np.linspace(0, h - 1, 65), np.linspace(0, w - 1, 65), indexing="ij")
    np.testing.assert_allclose(out, 3.0 * rr - 0.25 * cc + 100.0, atol=1e-9)
    z = _terrain(h, w).astype(np.float64)
    out = ex.resample_vertex_grid(z, 33, 65)
    assert out[0, 0] == pytest.approx(z[0, 0]) and out[-1, -1] == pytest.approx(z[-1, -1])
    assert out.min() >= z.min() and out.max() <= z.max()


def test_grid_mesh_world_frame_and_upward_winding():
    z = _terrain(5, 7).astype(np.float64)
    v, f = ex.grid_mesh(z, DX)
    assert v.shape == (35, 3) and f.shape == (2 * 4 * 6, 3)
    # vertex (row, col) sits at the cell centre of docs/conventions.md
    np.testing.assert_allclose(v[2 * 7 + 3], [(3 + 0.5) * DX, (5 - 2 - 0.5) * DX, z[2, 3]])
    e1, e2 = v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    assert (np.cross(e1, e2)[:, 2] > 0).all()  # counter-clockwise seen from above


def test_z_up_to_y_up_is_a_proper_rotation():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 3))
    ya, yb = ex.z_up_to_y_up(np.stack([a, b]))
    assert np.dot(ya, yb) == pytest.approx(np.dot(a, b))
    np.testing.assert_allclose(np.cross(ya, yb), ex.z_up_to_y_up(np.cross(a, b)[None])[0], atol=1e-12)


# ----------------------------------------------------------------------------------------------
# raster exports, reopened by their readers
# ----------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_unreal_png_reopens_with_pillow_rasterio_and_read_dem(dem, tmp_path):
    import rasterio
    from PIL import Image

    res = export_heightmap(dem, "unreal", tmp_path / "t_unreal.png")
    png, side = res.paths
    assert side == tmp_path / "t_unreal.json"
    with Image.open(png) as im:
        assert im.mode.startswith("I;16") and im.size == (dem.width, dem.height)
        k = np.asarray(im).astype(np.int64)
    with rasterio.open(png) as ds:
        assert ds.dtypes[0] == "uint16"
        np.testing.assert_array_equal(ds.read(1), k)
    assert k.min() == 0 and k.max() == 65535  # 0..65535 spans min..max
    q = _quantum(dem.z)
    meta = json.loads(side.read_text())
    np.testing.assert_allclose(meta["offset"] + k * meta["scale"], dem.z, atol=q)
    back = read_dem(png)  # the sidecar is the project's PNG sidecar
    assert back.dx_m == DX
    np.testing.assert_allclose(back.z, dem.z, atol=q)
    # Unreal's decoding (LandscapeDataAccess: (k - 32768) / 128 * ScaleZ + LocationZ, in cm)
    u = meta["unreal"]
    sx, sy, sz = u["scale"]
    assert sx == sy == pytest.approx(100.0 * DX)
    height_m = (u["location_cm"][2] + (k - 32768) / 128.0 * sz) / 100.0
    np.testing.assert_allclose(height_m, dem.z, atol=q)
    # the guide's rule of thumb (range in cm / 512) agrees to 1 part in 65536
    assert u["scale_z_guide"] == pytest.approx(sz, rel=2e-5)
    # the landscape's first vertex (row 0, col 0) is the north-west cell centre
    x_cm, y_cm = u["location_cm"][:2]
    assert (x_cm / 100, -y_cm / 100) == pytest.approx((0.5 * DX, (dem.height - 0.5) * DX))


def test_unity_raw_size_byte_order_and_south_first_rows(tmp_path):
    z = _terrain(33, 33)
    res = export_heightmap(Dem(z, DX), "unity", tmp_path / "t.raw")
    raw, side = res.paths
    assert raw.stat().st_size == 33 * 33 * 2
    codes = np.fromfile(raw, dtype="<u2").reshape(33, 33)
    meta = json.loads(side.read_text())
    assert meta["resolution"] == 33 and meta["byte_order"].startswith("Windows") and not meta["resampled"]
    heights = meta["terrain_position_m"][1] + codes / 65535.0 * meta["terrain_height_m"]
    np.testing.assert_allclose(heights[::-1], z, atol=_quantum(z))  # raw row 0 = south
    assert meta["terrain_width_m"] == meta["terrain_length_m"] == pytest.approx(32 * DX)
    assert meta["terrain_position_m"][0] == meta["terrain_position_m"][2] == 0.5 * DX
    big_endian = np.fromfile(raw, dtype=">u2")
    assert not np.array_equal(big_endian, codes.ravel())


@pytest.mark.parametrize("policy, n", [("up", 65), ("down", 33)])
def test_unity_resampled_to_power_of_two_plus_one(dem, tmp_path, policy, n):
    res = export_heightmap(dem, "unity", tmp_path / f"{policy}.raw", options=ExportOptions(unity_size=policy))
    assert res.paths[0].stat().st_size == n * n * 2
    codes = np.fromfile(res.paths[0], dtype="<u2").reshape(n, n)
    meta = json.loads(res.paths[1].read_text())
    assert meta["resolution"] == n and meta["resampled"]
    assert meta["terrain_width_m"] == pytest.approx((dem.width - 1) * DX)
    assert meta["terrain_length_m"] == pytest.approx((dem.height - 1) * DX)
    heights = meta["terrain_position_m"][1] + codes / 65535.0 * meta["terrain_height_m"]
    q = _quantum(dem.z)
    # vertex-aligned: the four corners are the corner cell centres
    for (r, c), (rr, cc) in {(0, 0): (-1, 0), (-1, -1): (0, -1), (0, -1): (-1, -1)}.items():
        assert heights[r, c] == pytest.approx(float(dem.z[rr, cc]), abs=q)


def test_raw16_native_size_north_first(dem, tmp_path):
    res = export_heightmap(dem, "raw16", tmp_path / "t.raw")
    assert res.paths[0].stat().st_size == dem.height * dem.width * 2
    meta = json.loads(res.paths[1].read_text())
    codes = np.fromfile(res.paths[0], dtype="<u2").reshape(meta["height"], meta["width"])
    np.testing.assert_allclose(meta["offset"] + codes * meta["scale"], dem.z, atol=_quantum(dem.z))


def test_exr_float32_metres_exact(dem, tmp_path):
    import OpenEXR

    z = dem.z.copy()
    z[3, 4] = np.nan
    res = export_heightmap(Dem(z, DX), "exr", tmp_path / "t.exr")
    f = OpenEXR.File(str(res.paths[0]), separate_channels=True)
    y = f.channels()["Y"].pixels
    assert y.dtype == np.float32 and y.shape == dem.shape
    mask = np.isfinite(z)
    np.testing.assert_array_equal(y[mask], z[mask])  # exact, row 0 = north
    assert np.isfinite(y).all()  # nodata filled ...
    assert y[3, 4] in {z[2, 4], z[4, 4], z[3, 3], z[3, 5]}  # ... by a nearest neighbour
    assert f.header()["dx_m"] == pytest.approx(DX)


def test_options_z_range_and_exaggeration(dem, tmp_path):
    lo, hi = 0.0, 3000.0
    opts = ExportOptions(z_range_m=(lo, hi), vertical_exaggeration=2.0)
    res = export_heightmap(dem, "raw16", tmp_path / "r.raw", options=opts)
    meta = json.loads(res.paths[1].read_text())
    assert meta["offset"] == lo and meta["scale"] == pytest.approx((hi - lo) / 65535)
    codes = np.fromfile(res.paths[0], dtype="<u2").reshape(dem.shape)
    np.testing.assert_allclose(lo + codes * meta["scale"], 2.0 * dem.z, atol=(hi - lo) / 65535)
    with pytest.raises(InputError, match="outside the requested z range"):
        export_heightmap(dem, "raw16", tmp_path / "s.raw", options=ExportOptions(z_range_m=(0.0, 10.0)))
    assert not (tmp_path / "s.raw").exists()


# ----------------------------------------------------------------------------------------------
# meshes
# ----------------------------------------------------------------------------------------------


def _load_mesh(path: Path):
    import trimesh

    m = trimesh.load(path, process=False)
    if isinstance(m, trimesh.Scene):
        m = m.to_geometry() if hasattr(m, "to_geometry") else m.dump(concatenate=True)
    return m


@pytest.mark.parametrize("target", ["obj", "glb"])
def test_mesh_reopens_in_trimesh_metres_y_up(dem, tmp_path, target):
    res = export_heightmap(dem, target, tmp_path / f"t.{target}")
    m = _load_mesh(res.paths[0])
    h, w = dem.shape
    assert len(m.vertices) == h * w and len(m.faces) == 2 * (h - 1) * (w - 1)
    lo, hi = m.bounds
    # x east, y up, z south: extent = dx * (size - 1) between the outer cell centres
    np.testing.assert_allclose(lo, [0.5 * DX, dem.z.min(), -(h - 0.5) * DX], atol=1e-3)
    np.testing.assert_allclose(hi, [(w - 0.5) * DX, dem.z.max(), -0.5 * DX], atol=1e-3)
    # the north-west cell centre is at z = -(H - 0.5) dx with its height on +y
    nw = np.array([0.5 * DX, dem.z[0, 0], -(h - 0.5) * DX])
    assert np.linalg.norm(m.vertices - nw, axis=1).min() < 1e-3
    assert (m.face_normals[:, 1] > 0).all()  # terrain faces up (+y)


def test_mesh_hillshade_texture_uv_orientation(dem, tmp_path):
    from PIL import Image

    res = export_heightmap(dem, "obj", tmp_path / "t.obj", options=ExportOptions(texture="hillshade"))
    obj, mtl, png = res.paths
    assert "map_Kd t_hillshade.png" in mtl.read_text()
    with Image.open(png) as im:
        assert im.size == (dem.width, dem.height)
    m = _load_mesh(obj)
    uv = np.asarray(m.visual.uv)
    v = np.asarray(m.vertices)
    h, w = dem.shape
    # u runs east, v runs north: the north-west corner vertex has uv (0, 1)
    i = np.argmin(np.linalg.norm(v - [0.5 * DX, dem.z[0, 0], -(h - 0.5) * DX], axis=1))
    np.testing.assert_allclose(uv[i], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(uv[:, 0], (v[:, 0] - 0.5 * DX) / ((w - 1) * DX), atol=1e-6)


@pytest.mark.parametrize("method", ["quadric", "stride"])
def test_decimation_keeps_fraction_bounds_and_heights(tmp_path, method):
    z = _terrain(40, 50)
    dem = Dem(z, DX)
    full = 2 * 39 * 49
    res = export_heightmap(dem, "glb", tmp_path / "d.glb", options=ExportOptions(decimate=0.1, decimation=method))
    m = _load_mesh(res.paths[0])
    assert 0.07 * full <= len(m.faces) <= 0.13 * full
    lo, hi = m.bounds
    np.testing.assert_allclose([lo[0], lo[2], hi[0], hi[2]], [0.5 * DX, -39.5 * DX, 49.5 * DX, -0.5 * DX], atol=1e-6)
    assert lo[1] >= z.min() - 1e-3 and hi[1] <= z.max() + 1e-3
    if method == "stride":  # kept vertices are grid vertices with their exact heights
        col = np.rint(m.vertices[:, 0] / DX - 0.5).astype(int)
        row = np.rint(-m.vertices[:, 2] / DX - 0.5).astype(int)
        row = 40 - 1 - row
        np.testing.assert_allclose(m.vertices[:, 1], z[row, col], atol=1e-3)


# ----------------------------------------------------------------------------------------------
# Blender: API whitelist, fake bpy execution, camera math
# ----------------------------------------------------------------------------------------------

# Every bpy path / attribute the script may use, checked against Blender's Python API reference
# (docs.blender.org/api/current/): bpy.types.<Type>.<name> for each entry.
BPY_PATHS = {
    "bpy.data.images.load": "BlendDataImages.load(filepath, check_existing=False)",
    "bpy.data.meshes.new": "BlendDataMeshes.new(name)",
    "bpy.data.objects.new": "BlendDataObjects.new(name, object_data)",
    "bpy.data.cameras.new": "BlendDataCameras.new(name)",
    "bpy.context.scene": "Context.scene",
    "bpy.context.scene.collection.objects.link": "Scene.collection / Collection.objects / CollectionObjects.link",
}
BPY_ATTRS = {
    # Image
    "colorspace_settings": "Image.colorspace_settings (ColorManagedInputColorspaceSettings.name)",
    "name": "ColorManagedInputColorspaceSettings.name",
    "size": "Image.size", "channels": "Image.channels", "pixels": "Image.pixels",
    # Mesh
    "from_pydata": "Mesh.from_pydata(vertices, edges, faces)", "polygons": "Mesh.polygons",
    "foreach_set": "bpy_prop_collection.foreach_set", "update": "Mesh.update",
    # Object
    "location": "Object.location", "rotation_mode": "Object.rotation_mode",
    "rotation_euler": "Object.rotation_euler", "modifiers": "Object.modifiers (ObjectModifiers.new)",
    "new": "ObjectModifiers.new / CameraBackgroundImages.new", "ratio": "DecimateModifier.ratio",
    # Camera
    "sensor_fit": "Camera.sensor_fit", "lens_unit": "Camera.lens_unit", "angle_x": "Camera.angle_x",
    "clip_start": "Camera.clip_start", "clip_end": "Camera.clip_end",
    "show_background_images": "Camera.show_background_images",
    "background_images": "Camera.background_images",
    "image": "CameraBackgroundImage.image", "alpha": "CameraBackgroundImage.alpha",
    "display_depth": "CameraBackgroundImage.display_depth",
    "frame_method": "CameraBackgroundImage.frame_method",
    # Scene
    "collection": "Scene.collection", "objects": "Collection.objects", "link": "CollectionObjects.link",
    "camera": "Scene.camera", "render": "Scene.render", "resolution_x": "RenderSettings.resolution_x",
    "resolution_y": "RenderSettings.resolution_y",
    "resolution_percentage": "RenderSettings.resolution_percentage",
    "unit_settings": "Scene.unit_settings", "system": "UnitSettings.system",
    "scale_length": "UnitSettings.scale_length",
    # roots
    "data": "bpy.data", "context": "bpy.context", "images": "BlendData.images",
    "meshes": "BlendData.meshes", "cameras": "BlendData.cameras", "load": "BlendDataImages.load",
    "scene": "Context.scene",
}
STDLIB_ATTRS = {"path", "isfile", "dirname", "abspath", "join", "basename", "get"}
ENUMS = {
    "sensor_fit": {"AUTO", "HORIZONTAL", "VERTICAL"},
    "lens_unit": {"MILLIMETERS", "FOV"},
    "display_depth": {"BACK", "FRONT"},
    "frame_method": {"STRETCH", "FIT", "CROP"},
    "rotation_mode": {"QUATERNION", "XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX", "AXIS_ANGLE"},
    "system": {"NONE", "METRIC", "IMPERIAL"},
}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _check_bpy_api(source: str) -> None:
    tree = ast.parse(source)
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert imports <= {"bpy", "os", "math"}, imports
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    unknown = attrs - set(BPY_ATTRS) - STDLIB_ATTRS
    assert not unknown, f"attributes outside the verified bpy API: {sorted(unknown)}"
    chains = {_dotted(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    bpy_chains = {c for c in chains if c and c.startswith("bpy.")}
    # every maximal bpy.* chain is a documented path
    maximal = {c for c in bpy_chains if not any(o != c and o.startswith(c + ".") for o in bpy_chains)}
    assert maximal <= set(BPY_PATHS), maximal - set(BPY_PATHS)
    enum_values = {
        (t.attr, n.value.value)
        for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
        for t in n.targets if isinstance(t, ast.Attribute) and t.attr in ENUMS
    }
    for attr, value in enum_values:
        assert value in ENUMS[attr], (attr, value)


class _Strict:
    """A fake bpy struct: only its whitelisted attributes can be set (and enums checked)."""

    _allowed: frozenset[str] = frozenset()

    def __setattr__(self, key, value):
        if key not in self._allowed:
            raise AttributeError(f"{type(self).__name__} has no attribute {key!r} in the bpy API")
        if key in ENUMS and value not in ENUMS[key]:
            raise ValueError(f"bad enum {key}={value!r}")
        object.__setattr__(self, key, value)


class _Colorspace(_Strict):
    _allowed = frozenset({"name"})

    def __init__(self):
        self.name = "sRGB"


class _Image(_Strict):
    """Decodes like Blender: RGBA floats in [0, 1], **bottom row first** (16-bit -> k / 65535)."""

    _allowed = frozenset({"filepath", "colorspace_settings", "size", "channels"})

    def __init__(self, path):
        from PIL import Image

        self.filepath = path
        self.colorspace_settings = _Colorspace()
        with Image.open(path) as im:
            self.size = im.size
            self.channels = 4
            object.__setattr__(self, "_arr", np.asarray(im))

    @property
    def pixels(self):
        a = self._arr
        if a.ndim == 2:
            assert self.colorspace_settings.name == "Non-Color", "heights need raw (Non-Color) decoding"
            g = a.astype(np.float64) / (65535.0 if a.dtype == np.uint16 else 255.0)
            a = np.stack([g, g, g, np.ones_like(g)], -1)
        return tuple(a[::-1].reshape(-1).tolist())


class _Polygons:
    def __init__(self):
        self.smooth = None

    def foreach_set(self, attr, seq):
        assert attr == "use_smooth"
        self.smooth = list(seq)


class _Mesh(_Strict):
    _allowed = frozenset({"name"})

    def __init__(self, name):
        self.name = name
        object.__setattr__(self, "polygons", _Polygons())
        object.__setattr__(self, "verts", None)
        object.__setattr__(self, "faces", None)
        object.__setattr__(self, "updated", False)

    def from_pydata(self, verts, edges, faces):
        object.__setattr__(self, "verts", np.asarray(verts, dtype=np.float64))
        object.__setattr__(self, "faces", np.asarray(faces, dtype=np.int64))
        assert list(edges) == []

    def update(self):
        object.__setattr__(self, "updated", True)


class _Modifier(_Strict):
    _allowed = frozenset({"name", "type", "ratio"})


class _Modifiers(list):
    def new(self, name, type):  # noqa: A002 - bpy's parameter name
        assert type == "DECIMATE"
        m = _Modifier()
        m.name, m.type = name, type
        self.append(m)
        return m


class _Background(_Strict):
    _allowed = frozenset({"image", "alpha", "display_depth", "frame_method"})


class _Backgrounds(list):
    def new(self):
        b = _Background()
        self.append(b)
        return b


class _CameraData(_Strict):
    _allowed = frozenset({"name", "sensor_fit", "lens_unit", "angle_x", "clip_start", "clip_end",
                          "show_background_images"})

    def __init__(self, name):
        self.name = name
        object.__setattr__(self, "background_images", _Backgrounds())


class _Object(_Strict):
    _allowed = frozenset({"name", "data", "location", "rotation_mode", "rotation_euler"})

    def __init__(self, name, data):
        self.name, self.data = name, data
        object.__setattr__(self, "modifiers", _Modifiers())


class _Linker(list):
    def link(self, obj):
        self.append(obj)


class _Render(_Strict):
    _allowed = frozenset({"resolution_x", "resolution_y", "resolution_percentage"})


class _Units(_Strict):
    _allowed = frozenset({"system", "scale_length"})


class _Scene(_Strict):
    _allowed = frozenset({"camera"})

    def __init__(self):
        object.__setattr__(self, "collection", types.SimpleNamespace(objects=_Linker()))
        object.__setattr__(self, "render", _Render())
        object.__setattr__(self, "unit_settings", _Units())
        self.camera = None


def _fake_bpy():
    class _New(list):
        def __init__(self, factory):
            super().__init__()
            self._factory = factory

        def new(self, *args):
            obj = self._factory(*args)
            self.append(obj)
            return obj

    class _Images(list):
        def load(self, filepath, check_existing=False):
            img = _Image(filepath)
            self.append(img)
            return img

    bpy = types.ModuleType("bpy")
    bpy.data = types.SimpleNamespace(images=_Images(), meshes=_New(_Mesh), objects=_New(_Object),
                                     cameras=_New(_CameraData))
    bpy.context = types.SimpleNamespace(scene=_Scene())
    return bpy


def _rot_xyz(ax: float, ay: float, az: float) -> np.ndarray:
    """Blender's XYZ Euler: R = Rz @ Ry @ Rx (written out independently of the exporter)."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("yaw", [0.0, 37.0, 90.0, 181.5, 270.0, -45.0])
@pytest.mark.parametrize("pitch", [-60.0, -5.0, 0.0, 12.0, 80.0])
def test_blender_euler_matches_camera_axes(yaw, pitch):
    cam = Camera(640, 480, 55.0, (1.0, 2.0, 3.0), yaw_deg=yaw, pitch_deg=pitch)
    r = _rot_xyz(*ex.blender_camera_euler(cam))
    np.testing.assert_allclose(r @ [0, 0, -1], cam.forward, atol=1e-12)  # Blender looks along -Z
    np.testing.assert_allclose(r @ [0, 1, 0], cam.up, atol=1e-12)
    np.testing.assert_allclose(r @ [1, 0, 0], cam.right, atol=1e-12)


def _blender_project(obj, data, res_xy, pts):
    """Pixel (u right, v down) of world points through a Blender camera (sensor fit horizontal)."""
    r = _rot_xyz(*obj.rotation_euler)
    pc = (np.asarray(pts) - np.asarray(obj.location)) @ r  # camera-local coordinates
    w, h = res_xy
    f = (w / 2) / math.tan(data.angle_x / 2)
    return np.stack([w / 2 + f * pc[:, 0] / -pc[:, 2], h / 2 - f * pc[:, 1] / -pc[:, 2]], 1)


def test_blender_script_api_whitelist_and_fake_run(dem, tmp_path, monkeypatch):
    from PIL import Image

    cam = Camera(320, 240, 62.0, (40.0, 20.0, float(dem.z.max()) + 30.0), yaw_deg=35.0, pitch_deg=-12.0, dx_m=DX)
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), (90, 120, 200)).save(photo)
    res = export_heightmap(dem, "blender", tmp_path / "scene.py", camera=cam, photo=photo,
                           options=ExportOptions(decimate=0.5))
    script, png, side = res.paths
    source = script.read_text()
    _check_bpy_api(source)
    compile(source, str(script), "exec")

    bpy = _fake_bpy()
    monkeypatch.setitem(sys.modules, "bpy", bpy)
    runpy.run_path(str(script), run_name="__main__")

    (mesh,) = bpy.data.meshes
    h, w = dem.shape
    assert mesh.verts.shape == (h * w, 3) and mesh.faces.shape == ((h - 1) * (w - 1), 4) and mesh.updated
    # vertex k = j * W + i, j counted from the south: world cell centre and height of row H-1-j
    j, i = np.divmod(np.arange(h * w), w)
    np.testing.assert_allclose(mesh.verts[:, 0], (i + 0.5) * DX)
    np.testing.assert_allclose(mesh.verts[:, 1], (j + 0.5) * DX)
    np.testing.assert_allclose(mesh.verts[:, 2], dem.z[h - 1 - j, i], atol=_quantum(dem.z))
    q = mesh.verts[mesh.faces][:, :, :2]  # quads, counter-clockwise from above (shoelace > 0)
    area = 0.5 * (q[:, :, 0] * np.roll(q[:, :, 1], -1, 1) - np.roll(q[:, :, 0], -1, 1) * q[:, :, 1]).sum(1)
    assert (area > 0).all() and mesh.polygons.smooth == [True] * len(mesh.faces)

    terrain, cam_obj = bpy.data.objects
    assert terrain.data is mesh and terrain.modifiers[0].ratio == 0.5
    scene = bpy.context.scene
    assert scene.camera is cam_obj and set(scene.collection.objects) == {terrain, cam_obj}
    assert (scene.render.resolution_x, scene.render.resolution_y) == (320, 240)
    assert scene.unit_settings.system == "METRIC" and scene.unit_settings.scale_length == 1.0
    data = cam_obj.data
    assert data.sensor_fit == "HORIZONTAL" and data.angle_x == pytest.approx(math.radians(62.0))
    np.testing.assert_allclose(cam_obj.location, cam.position_m)
    r = _rot_xyz(*cam_obj.rotation_euler)
    np.testing.assert_allclose(r @ [0, 0, -1], cam.forward, atol=1e-12)
    # every terrain vertex in front of the camera projects to the same pixel as with our Camera
    uv_ours, zc = cam.world_to_pixel(mesh.verts)
    front = zc > 1.0
    assert front.sum() > 10
    np.testing.assert_allclose(_blender_project(cam_obj, data, (320, 240), mesh.verts[front]), uv_ours[front],
                               atol=1e-6)
    assert data.clip_end > np.linalg.norm(mesh.verts - cam.position, axis=1).max()
    (bg,) = data.background_images
    assert data.show_background_images and Path(bg.image.filepath) == photo.resolve()


def test_blender_script_finds_moved_files(dem, tmp_path, monkeypatch):
    src = tmp_path / "a"
    src.mkdir()
    res = export_heightmap(dem, "blender", src / "s.py")
    moved = tmp_path / "b"
    src.rename(moved)
    bpy = _fake_bpy()
    monkeypatch.setitem(sys.modules, "bpy", bpy)
    runpy.run_path(str(moved / res.paths[0].name), run_name="__main__")
    assert len(bpy.data.meshes) == 1 and bpy.data.cameras == [] and bpy.context.scene.camera is None


def test_blender_template_is_inert_and_bpy_free_on_import():
    import importlib

    mod = importlib.import_module("pixels2peaks.io._blender_scene")
    assert mod.PARAMS == {} and "bpy" not in vars(mod)  # bpy is imported only inside main()
    _check_bpy_api(Path(mod.__file__).read_text())


# ----------------------------------------------------------------------------------------------
# CLI and bad inputs
# ----------------------------------------------------------------------------------------------


@pytest.fixture()
def tif(tmp_path, dem) -> Path:
    return write_geotiff(tmp_path / "heightmap.tif", dem)


def _one_error_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


@pytest.mark.parametrize("target, names", [
    ("unreal", ["heightmap_unreal.png", "heightmap_unreal.json"]),
    ("unity", ["heightmap_unity.raw", "heightmap_unity.json"]),
    ("raw16", ["heightmap_raw16.raw", "heightmap_raw16.json"]),
    ("exr", ["heightmap.exr"]),
    ("obj", ["heightmap.obj"]),
    ("glb", ["heightmap.glb"]),
    ("blender", ["heightmap_blender.py", "heightmap_blender_heights.png", "heightmap_blender_heights.json"]),
])
def test_cli_default_outputs(tif, target, names):
    res = runner.invoke(app, ["export", str(tif), "--to", target])
    assert res.exit_code == 0, res.stderr
    for n in names:
        assert (tif.parent / n).is_file(), n
    assert sorted(p.name for p in tif.parent.iterdir()) == sorted(["heightmap.tif", *names])


def test_cli_blender_uses_sibling_camera_and_photo(tif, monkeypatch):
    from PIL import Image

    cam = Camera(200, 100, 50.0, (30.0, 30.0, 1500.0), yaw_deg=10.0, pitch_deg=-20.0)
    cam.save(tif.parent / "camera.json")
    Image.new("RGB", (400, 200)).save(tif.parent / "photo.png")
    res = runner.invoke(app, ["export", str(tif), "--to", "blender", "--photo", str(tif.parent / "photo.png")])
    assert res.exit_code == 0, res.stderr
    assert "camera.json" in res.stderr
    text = (tif.parent / "heightmap_blender.py").read_text()
    assert "photo.png" in text and "'width': 200" in text
    # a photo whose aspect ratio differs from the camera's is refused
    Image.new("RGB", (300, 300)).save(tif.parent / "square.png")
    line = _one_error_line(runner.invoke(app, ["export", str(tif), "--to", "blender", "--overwrite",
                                               "--photo", str(tif.parent / "square.png")]))
    assert "aspect" in line


def test_cli_refuses_existing_output_unless_overwrite(tif):
    out = tif.parent / "x.exr"
    out.write_bytes(b"keep")
    line = _one_error_line(runner.invoke(app, ["export", str(tif), "--to", "exr", "-o", str(out)]))
    assert "--overwrite" in line and out.read_bytes() == b"keep"
    # a companion file counts too
    side = tif.parent / "y.json"
    side.write_text("{}")
    line = _one_error_line(runner.invoke(app, ["export", str(tif), "--to", "raw16", "-o", str(tif.parent / "y.raw")]))
    assert "y.json" in line and not (tif.parent / "y.raw").exists()
    res = runner.invoke(app, ["export", str(tif), "--to", "exr", "-o", str(out), "--overwrite"])
    assert res.exit_code == 0 and out.read_bytes()[:4] == b"\x76\x2f\x31\x01"  # EXR magic


@pytest.mark.parametrize("args, words", [
    (["--to", "unity", "-o", "x.png"], ".raw"),
    (["--to", "exr", "--decimate", "0.5"], "decimation"),
    (["--to", "obj", "--decimate", "0"], "(0, 1]"),
    (["--to", "glb", "--decimation", "best"], "decimation"),
    (["--to", "exr", "--camera", "c.json"], "blender"),
    (["--to", "unreal", "--photo", "p.jpg"], "blender"),
    (["--to", "blender", "--photo", "p.jpg"], "camera"),
    (["--to", "raw16", "--z-min", "0"], "--z-max"),
    (["--to", "raw16", "--z-min", "0", "--z-max", "5"], "z range"),
    (["--to", "exr", "--exaggeration", "0"], "exaggeration"),
    (["--to", "exr", "--texture", "hillshade"], "texture"),
    (["--to", "unity", "--unity-size", "big"], "unity_size"),
    (["--to", "exr", "--nodata", "zero"], "nodata"),
])
def test_cli_bad_options_one_line_nothing_written(tif, args, words):
    before = sorted(tif.parent.iterdir())
    line = _one_error_line(runner.invoke(app, ["export", str(tif), *args]))
    assert words in line
    assert sorted(tif.parent.iterdir()) == before


def test_cli_bad_heightmap_and_unwritable_folder(tif, tmp_path):
    line = _one_error_line(runner.invoke(app, ["export", str(tmp_path / "nope.tif"), "--to", "exr"]))
    assert "not found" in line
    (tmp_path / "junk.tif").write_text("not a raster")
    _one_error_line(runner.invoke(app, ["export", str(tmp_path / "junk.tif"), "--to", "exr"]))
    line = _one_error_line(runner.invoke(app, ["export", str(tif), "--to", "exr", "-o", str(tif / "x.exr")]))
    assert "is a file, not a folder" in line
    line = _one_error_line(runner.invoke(app, ["export", str(tif), "--to", "exr", "-o", str(tmp_path / "no" / "x.exr")]))
    assert "does not exist" in line


def test_unwritable_folder_is_one_line_and_leaves_nothing(tif, monkeypatch):
    import tempfile

    def deny(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", deny)
    line = _one_error_line(runner.invoke(app, ["export", str(tif), "--to", "glb"]))
    assert "Permission denied" in line
    assert [p.name for p in tif.parent.iterdir()] == ["heightmap.tif"]


@pytest.mark.parametrize("target", ["unreal", "unity", "raw16", "blender"])
def test_full_disk_leaves_nothing_half_written(tif, monkeypatch, target):
    """The disk fills up after the main data file was written: no file may appear."""

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ex, "_write_json", full)
    line = _one_error_line(runner.invoke(app, ["export", str(tif), "--to", target]))
    assert "No space left on device" in line
    assert [p.name for p in tif.parent.iterdir()] == ["heightmap.tif"]  # no temp folder either


def test_full_disk_during_mesh_write(tif, monkeypatch):
    import trimesh

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trimesh.Trimesh, "export", full)
    _one_error_line(runner.invoke(app, ["export", str(tif), "--to", "glb"]))
    assert [p.name for p in tif.parent.iterdir()] == ["heightmap.tif"]


def test_export_api_rejects_bad_arguments(dem, tmp_path):
    with pytest.raises(InputError, match="unknown export target"):
        export_heightmap(dem, "maya", tmp_path / "x.ma")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="expects a Dem"):
        export_heightmap(dem.z, "exr", tmp_path / "x.exr")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ExportOptions(z_range_m=(5.0, 1.0))
    assert list(tmp_path.iterdir()) == []
