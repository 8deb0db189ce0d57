"""Build a pixels2peaks terrain (and the photo's camera) in Blender.

Run with ``blender --python THIS_FILE`` (or open it in Blender's Text Editor and press Run
Script). Written by ``p2p export HEIGHTMAP --to blender``; this file in the package is the
template: the exporter replaces the ``PARAMS`` line below with the export's numbers. It uses only
the ``bpy`` API and the standard library, and never runs when the package imports it.

Frame: the pixels2peaks world frame, x east, y north, z up, metres (1 Blender unit = 1 m;
Blender is right-handed Z up, so coordinates are used as they are). The terrain vertices are the
heightmap's cell centres ``((col + 0.5) dx, (H - row - 0.5) dx, height)``, read from the 16-bit
heights PNG (``height = offset + code * scale``). Blender's ``Image.pixels`` are RGBA floats,
bottom row first, so pixel row ``j`` from the bottom is heightmap row ``H - 1 - j`` and has
``y = (j + 0.5) dx``. The camera's ``rotation_euler`` (mode XYZ) is
``(90 deg + pitch, 0, -yaw)`` (see ``pixels2peaks.io.export.blender_camera_euler``).
"""

import os

PARAMS: dict = {}


def _locate(path):
    """``path`` as recorded at export time, else the file of that name next to this script."""
    if os.path.isfile(path):
        return path
    here = os.path.dirname(os.path.abspath(globals().get("__file__", path)))
    moved = os.path.join(here, os.path.basename(path))
    if os.path.isfile(moved):
        return moved
    raise FileNotFoundError(f"pixels2peaks: cannot find {path}")


def load_heights(bpy, p):
    """Rows of heights in metres, **south row first**, from the 16-bit heights PNG."""
    image = bpy.data.images.load(_locate(p["heights_png"]))
    image.colorspace_settings.name = "Non-Color"  # raw codes, no colour transform
    w, h = image.size
    if (w, h) != (p["width"], p["height"]):
        raise RuntimeError(f"pixels2peaks: heights image is {w}x{h}, expected {p['width']}x{p['height']}")
    ch = image.channels
    px = image.pixels[:]
    scale, offset = p["scale"], p["offset"]
    return [[offset + round(px[(j * w + i) * ch] * 65535.0) * scale for i in range(w)] for j in range(h)]


def build_terrain(bpy, p, rows):
    """Terrain mesh object: one vertex per cell centre, one quad per 2x2 block (normals up)."""
    dx = p["dx_m"]
    h, w = len(rows), len(rows[0])
    verts = [((i + 0.5) * dx, (j + 0.5) * dx, rows[j][i]) for j in range(h) for i in range(w)]
    faces = [(j * w + i, j * w + i + 1, (j + 1) * w + i + 1, (j + 1) * w + i)
             for j in range(h - 1) for i in range(w - 1)]
    mesh = bpy.data.meshes.new(p["name"])
    mesh.from_pydata(verts, [], faces)
    mesh.polygons.foreach_set("use_smooth", [True] * len(faces))
    mesh.update()
    obj = bpy.data.objects.new(p["name"], mesh)
    bpy.context.scene.collection.objects.link(obj)
    if p["decimate"] is not None:
        modifier = obj.modifiers.new("Decimate", "DECIMATE")
        modifier.ratio = p["decimate"]
    return obj


def build_camera(bpy, c):
    """Camera with the photo's pose, horizontal FOV and resolution; the photo as background."""
    data = bpy.data.cameras.new(c["name"])
    data.sensor_fit = "HORIZONTAL"
    data.lens_unit = "FOV"
    data.angle_x = c["fov_x_rad"]
    data.clip_start = c["clip_start_m"]
    data.clip_end = c["clip_end_m"]
    obj = bpy.data.objects.new(c["name"], data)
    obj.location = c["location_m"]
    obj.rotation_mode = "XYZ"
    obj.rotation_euler = c["rotation_euler_rad"]
    scene = bpy.context.scene
    scene.collection.objects.link(obj)
    scene.camera = obj
    scene.render.resolution_x = c["width"]
    scene.render.resolution_y = c["height"]
    scene.render.resolution_percentage = 100
    if c["photo"] is not None:
        data.show_background_images = True
        background = data.background_images.new()
        background.image = bpy.data.images.load(_locate(c["photo"]))
        background.alpha = 0.5
        background.display_depth = "FRONT"
        background.frame_method = "FIT"
    return obj


def main(p):
    import bpy

    scene = bpy.context.scene
    scene.unit_settings.system = "METRIC"
    scene.unit_settings.scale_length = 1.0
    terrain = build_terrain(bpy, p, load_heights(bpy, p))
    camera = build_camera(bpy, p["camera"]) if p["camera"] is not None else None
    return terrain, camera


if __name__ == "__main__":
    main(PARAMS)
