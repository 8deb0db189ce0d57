"""What the studio page shows besides the pipeline's own previews: the 3D viewer's GLB."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["viewer_texture", "camera_frustum", "viewer_glb"]

#: frustum colour of the photo's camera (RGBA)
CAMERA_RGBA = (230, 30, 30, 255)


def viewer_texture(z: np.ndarray, known: np.ndarray, dx_m: float, max_px: int = 1024) -> np.ndarray:
    """Hillshade-textured colours, north up (uint8 ``(h, w, 3)``, at most ``max_px`` across):
    visible cells grey, generated cells tinted (the colours of
    :func:`~pixels2peaks.evaluation.previews.overview_image`)."""
    from pixels2peaks.evaluation.previews import GREY_RGB, TINT_RGB
    from pixels2peaks.terrain.attributes import hillshade

    step = max(1, math.ceil(max(z.shape) / max_px))
    zz = np.asarray(z, np.float32)[::step, ::step]
    kk = np.asarray(known, bool)[::step, ::step]
    shade = 0.3 + 0.7 * np.asarray(hillshade(zz, dx_m * step), np.float64)
    base = np.where(kk[..., None], GREY_RGB, TINT_RGB)
    return (np.clip(base * shade[..., None], 0, 1) * 255).astype(np.uint8)


def camera_frustum(camera, length_m: float) -> tuple[np.ndarray, np.ndarray]:
    """A pyramid marking ``camera``: apex at its centre, base ``length_m`` along its optical
    axis spanning its field of view. Vertices ``(5, 3)`` in the world frame (x east, y north,
    z up, metres) and faces ``(6, 3)``."""
    c = camera.position
    f, r, u = camera.forward, camera.right, camera.up
    hx = length_m * math.tan(math.radians(0.5 * camera.fov_x_deg))
    hy = length_m * math.tan(math.radians(0.5 * camera.fov_y_deg))
    base = [c + length_m * f + sx * hx * r + sy * hy * u for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    v = np.array([c, *base], np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1], [1, 3, 2], [1, 4, 3]], np.int64)
    return v, faces


def viewer_glb(z: np.ndarray, known: np.ndarray, dx_m: float, camera, path: str | Path,
               max_cells: int = 256) -> Path:
    """The 3D viewer's scene as GLB (Y-up, metres): the heightmap as a mesh of at most
    ``max_cells`` cells across (grid stride), textured by :func:`viewer_texture`, and the
    camera as a red :func:`camera_frustum`."""
    import trimesh
    from PIL import Image

    from pixels2peaks.io.export import ExportOptions, terrain_mesh, z_up_to_y_up

    z = np.asarray(z, np.float64)
    n = max(z.shape)
    keep = min(1.0, (max_cells / n) ** 2)
    opts = ExportOptions(decimate=keep, decimation="stride") if keep < 1.0 else ExportOptions()
    mesh = terrain_mesh(z, dx_m, opts, texture=Image.fromarray(viewer_texture(z, known, dx_m)))
    v, f = camera_frustum(camera, 0.04 * n * dx_m)
    marker = trimesh.Trimesh(z_up_to_y_up(v), f, process=False)
    marker.visual.face_colors = np.tile(np.array(CAMERA_RGBA, np.uint8), (len(f), 1))
    scene = trimesh.Scene({"terrain": mesh, "camera": marker})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(scene.export(file_type="glb"))
    return path
