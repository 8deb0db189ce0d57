"""Single-image perception (paper §4): photo -> visible heightmap ``Z_V``, mask ``M_V``, camera.

* :mod:`.protocols`: backend protocols, :class:`Priors`, :class:`GeometryResult`, the registry
  and ``auto`` selection (:func:`select`, with the reason for the choice).
* :mod:`.geometry`: DBSCAN cleaning, pitch search (Eq. 1), scale fit, projection (NumPy/sklearn).
* :mod:`.builtin`: offline classical backends (sky segmentation, ground-plane + haze depth,
  default priors).
* :mod:`.vlm`: OpenAI-compatible VLM client, chain-of-thought prompts, answer parsing,
  self-consistency (median).
* :mod:`.transformers_backends`: Depth Anything V2, Grounding DINO + SAM (local files only).
* :mod:`.image`: :func:`load_image` with clear errors; :mod:`.pipeline`: :func:`estimate_visible`.

Heavy dependencies (torch, transformers, sklearn) are imported only when used.
"""

from pixels2peaks.perception.protocols import (
    GeometryBackend,
    GeometryResult,
    Priors,
    PriorsBackend,
    SegmentationBackend,
    Selection,
    select,
)

__all__ = [
    "GeometryBackend",
    "GeometryResult",
    "Priors",
    "PriorsBackend",
    "SegmentationBackend",
    "Selection",
    "select",
    "estimate_visible",
    "VisibleOptions",
    "VisibleResult",
    "load_image",
]


def __getattr__(name: str):
    if name in ("estimate_visible", "VisibleOptions", "VisibleResult"):
        from pixels2peaks.perception import pipeline

        return getattr(pipeline, name)
    if name == "load_image":
        from pixels2peaks.perception.image import load_image

        return load_image
    raise AttributeError(name)
