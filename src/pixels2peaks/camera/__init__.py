"""Camera model, heightfield renderer, view bound (Algorithm 2) and synthetic photos.

* :class:`Camera`: pinhole camera (FOV or EXIF focal length), pose = position + yaw + pitch
  (roll 0) in the heightmap frame; pixel <-> ray <-> world; ``camera.json``.
* :func:`render` / :class:`Heightfield`: exact ray casting of a heightmap (bilinear surface or
  the paper's flat-topped cells): hit/sky, depth, pointmap, normals, cells seen.
* :func:`view_bound`: ``Z_max`` from skimming rays over the visible heightmap (Algorithm 2).
* :func:`render_image` / :class:`Shading`: photo-like shaded images.
* :func:`synthesize`, :func:`random_camera`, :func:`write_synth`: synthetic photos with ground
  truth (``p2p synth``).
"""

from pixels2peaks.camera.model import (
    CAMERA_FORMAT,
    Camera,
    cell_centre_xy,
    focal_35mm_from_exif,
    focal_px,
    fov_x_from_exif,
    fov_x_from_focal_35mm,
    xy_to_cell,
)
from pixels2peaks.camera.render import (
    Heightfield,
    RenderResult,
    project_pointmap,
    render,
    surface_height,
)
from pixels2peaks.camera.shading import Shading, render_image, shade
from pixels2peaks.camera.synth import (
    SYNTH_FILES,
    RandomCameraRanges,
    SynthResult,
    random_camera,
    random_shading,
    synthesize,
    write_synth,
)
from pixels2peaks.camera.viewbound import auto_supersample, view_bound

__all__ = [
    "CAMERA_FORMAT",
    "Camera",
    "cell_centre_xy",
    "xy_to_cell",
    "fov_x_from_focal_35mm",
    "focal_35mm_from_exif",
    "focal_px",
    "fov_x_from_exif",
    "Heightfield",
    "RenderResult",
    "render",
    "project_pointmap",
    "surface_height",
    "Shading",
    "shade",
    "render_image",
    "view_bound",
    "auto_supersample",
    "RandomCameraRanges",
    "SynthResult",
    "random_camera",
    "random_shading",
    "synthesize",
    "write_synth",
    "SYNTH_FILES",
]
