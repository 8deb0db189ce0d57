"""Registration of the shipped backends (called lazily by :mod:`.protocols`).

Options understood (a plain mapping, all optional):

* ``fov_x_deg``: known horizontal FOV (e.g. from EXIF) for geometry/priors.
* ``terrain``: bool terrain mask, used by the builtin geometry/priors.
* ``moge_model``: Hugging Face id (its ``model.pt`` in the local cache) or local checkpoint file
  of a MoGe model (default ``Ruicheng/moge-2-vitl-normal``).
* ``depth_model``: Hugging Face id or local folder of a Depth Anything V2 model.
* ``dino_model`` / ``sam_model``: Grounding DINO and SAM ids or local folders.
* ``sky_seed_texture``: ``(floor, factor, cap)`` of the builtin segmentation's sky seeds
  (:class:`~pixels2peaks.perception.skyline.SkylineOptions`; ``(0.03, 0, 0.03)`` = session 13's).
* ``gemma_model``: Hugging Face id or local folder of a local vision-language model for the
  priors (default ``google/gemma-3-4b-it``).
* ``vlm_url`` / ``vlm_model`` / ``vlm_api_key`` / ``vlm_timeout_s`` / ``vlm_samples``: an
  OpenAI-compatible chat endpoint for the priors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pixels2peaks.perception.local_vlm import GEMMA_MODEL
from pixels2peaks.perception.protocols import (
    BackendSpec,
    hf_weights_cached,
    module_available,
    register,
)

DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
DINO_MODEL = "IDEA-Research/grounding-dino-tiny"
SAM_MODEL = "facebook/sam-vit-base"


def _moge_available(opts: Mapping[str, Any]) -> tuple[bool, str]:
    from pathlib import Path

    from pixels2peaks.perception.moge_backend import MOGE_MODEL

    if not module_available("moge"):
        return False, "moge not installed"
    model = str(opts.get("moge_model", MOGE_MODEL))
    if not (Path(model).is_file() or hf_weights_cached(model, "model.pt")):
        return False, f"moge installed but no local MoGe weights ({model})"
    return True, ""


def _moge_factory(opts: Mapping[str, Any]):
    from pixels2peaks.perception.moge_backend import MOGE_MODEL, MoGeGeometry

    return MoGeGeometry.from_pretrained(str(opts.get("moge_model", MOGE_MODEL)), fov_x_deg=opts.get("fov_x_deg"))


def _transformers_model(option: str, default: str, what: str) -> Callable[[Mapping[str, Any]], tuple[bool, str]]:
    """Availability check of a transformers backend whose model (backend option ``option``,
    default id ``default``) must be in the local Hugging Face cache or a local folder."""

    def available(opts: Mapping[str, Any]) -> tuple[bool, str]:
        if not module_available("transformers"):
            return False, "transformers not installed"
        model = str(opts.get(option, default))
        if not hf_weights_cached(model):
            return False, f"transformers present but no local {what} weights ({model})"
        return True, ""

    return available


_depth_available = _transformers_model("depth_model", DEPTH_MODEL, "Depth Anything")
_gemma_available = _transformers_model("gemma_model", GEMMA_MODEL, "vision-language")


def _depth_factory(opts: Mapping[str, Any]):
    from pixels2peaks.perception.transformers_backends import DepthAnythingGeometry

    return DepthAnythingGeometry.from_pretrained(
        str(opts.get("depth_model", DEPTH_MODEL)), fov_x_deg=opts.get("fov_x_deg")
    )


def _gsam_available(opts: Mapping[str, Any]) -> tuple[bool, str]:
    if not module_available("transformers"):
        return False, "transformers not installed"
    missing = [
        m
        for m in (str(opts.get("dino_model", DINO_MODEL)), str(opts.get("sam_model", SAM_MODEL)))
        if not hf_weights_cached(m)
    ]
    if missing:
        return False, f"transformers present but no local weights for {', '.join(missing)}"
    return True, ""


def _gsam_factory(opts: Mapping[str, Any]):
    from pixels2peaks.perception.transformers_backends import GroundedSamSegmentation

    return GroundedSamSegmentation.from_pretrained(
        str(opts.get("dino_model", DINO_MODEL)), str(opts.get("sam_model", SAM_MODEL))
    )


def _vlm_available(opts: Mapping[str, Any]) -> tuple[bool, str]:
    if not opts.get("vlm_url"):
        return False, "no VLM endpoint configured (vlm_url)"
    return True, ""


def _vlm_factory(opts: Mapping[str, Any]):
    from pixels2peaks.perception.vlm import VLMClient, VLMPriors

    client = VLMClient(
        str(opts["vlm_url"]),
        model=str(opts.get("vlm_model", "gemma-3")),
        api_key=opts.get("vlm_api_key"),
        timeout_s=float(opts.get("vlm_timeout_s", 120.0)),
    )
    return VLMPriors(client, samples_per_prompt=int(opts.get("vlm_samples", 1)), fallback=_builtin_priors(opts))


def _gemma_factory(opts: Mapping[str, Any]):
    from pixels2peaks.perception.local_vlm import LocalChatClient
    from pixels2peaks.perception.vlm import VLMPriors

    client = LocalChatClient.from_pretrained(str(opts.get("gemma_model", GEMMA_MODEL)))
    return VLMPriors(client, samples_per_prompt=int(opts.get("vlm_samples", 1)), fallback=_builtin_priors(opts),
                     name="gemma")


def _always(opts: Mapping[str, Any]) -> tuple[bool, str]:
    return True, ""


def _builtin_geometry(opts: Mapping[str, Any]):
    """The learned depth network (the shipped one, or option ``depth_weights`` = the stem of
    other weights) if its weights are present, else the classical cues."""
    from pixels2peaks.perception.depth_net import DEFAULT_WEIGHTS, LearnedGeometry, weights_available

    stem = opts.get("depth_weights") or DEFAULT_WEIGHTS
    if weights_available(stem):
        lateral = opts.get("depth_lateral", LearnedGeometry.lateral)
        return LearnedGeometry(fov_x_deg=float(opts.get("fov_x_deg") or 60.0), weights=stem,
                               upsample=str(opts.get("depth_upsample") or LearnedGeometry.upsample),
                               lateral=None if not lateral else (float(lateral[0]), float(lateral[1])))
    return _classical_geometry(opts)


def _classical_geometry(opts: Mapping[str, Any]):
    from pixels2peaks.perception.builtin import ClassicalGeometry

    return ClassicalGeometry(fov_x_deg=float(opts.get("fov_x_deg") or 60.0))


def _contour_geometry(opts: Mapping[str, Any]):
    from pixels2peaks.perception.contours import ContourGeometry

    return ContourGeometry(fov_x_deg=float(opts.get("fov_x_deg") or 60.0),
                           cue=str(opts.get("contour_cue") or "depth_net"))


def _builtin_segmentation(opts: Mapping[str, Any]):
    from pixels2peaks.perception.builtin import SkySegmentation
    from pixels2peaks.perception.skyline import SkylineOptions

    tex = opts.get("sky_seed_texture")
    return SkySegmentation(SkylineOptions() if tex is None else SkylineOptions(seed_texture=tuple(float(v) for v in tex)))


def _builtin_priors(opts: Mapping[str, Any]):
    from pixels2peaks.perception.builtin import DefaultPriors

    return DefaultPriors(fov_x_deg=float(opts.get("fov_x_deg") or 60.0))


def register_defaults() -> None:
    P = "pixels2peaks.perception."
    moge, tb, builtin, depth, contours = (P + "moge_backend", P + "transformers_backends", P + "builtin",
                                          P + "depth_net", P + "contours")
    for spec in (
        BackendSpec("geometry", "moge", _moge_factory, _moge_available, 10, (moge,)),
        BackendSpec("geometry", "depth_anything", _depth_factory, _depth_available, 20, (tb,)),
        BackendSpec("geometry", "builtin", _builtin_geometry, _always, 100, (depth, builtin, P + "upsample", P + "depth_filter")),
        BackendSpec("geometry", "classical", _classical_geometry, _always, 110, (builtin,)),
        BackendSpec("geometry", "contours", _contour_geometry, _always, 105, (contours, depth, builtin, P + "upsample")),
        BackendSpec("segmentation", "grounded_sam", _gsam_factory, _gsam_available, 10, (tb,)),
        BackendSpec("segmentation", "builtin", _builtin_segmentation, _always, 100, (builtin, P + "skyline")),
        BackendSpec("priors", "vlm", _vlm_factory, _vlm_available, 10, (P + "vlm", builtin)),
        BackendSpec("priors", "gemma", _gemma_factory, _gemma_available, 20, (P + "local_vlm", P + "vlm", builtin)),
        BackendSpec("priors", "builtin", _builtin_priors, _always, 100, (builtin,)),
    ):
        register(spec, replace=True)
