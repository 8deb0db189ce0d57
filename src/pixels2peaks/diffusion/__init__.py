"""Terrain diffusion prior (docs/model-card.md) and guided completion (docs/guided-completion.md).

Heavy names (torch/diffusers) are imported lazily on first access.
"""

from pixels2peaks.diffusion.normalization import DEFAULT_SLOPE_SCALE, HeightNormalization, dx_class_label

_LAZY = {
    "PriorConfig": "model",
    "TerrainPrior": "model",
    "load_prior": "model",
    "load_default_model": "model",
    "save_prior": "model",
    "predict_eps_x0": "model",
    "sample": "model",
    "make_alphas_cumprod": "schedule",
    "q_sample": "schedule",
    "to_eps_x0": "schedule",
    # guided completion (paper §5, docs/guided-completion.md)
    "complete": "completion",
    "CompletionConfig": "completion",
    "CompletionResult": "completion",
    "GuidanceConfig": "guidance",
    "HydrologyGuidance": "guidance",
    "GeomorphGuidance": "guidance",
    "ViewGuidance": "guidance",
    "CompletionLoss": "guidance",
    "guided": "guidance",
    "ModelDenoiser": "sampling",
    "RePaint": "sampling",
    "sample_ddim": "sampling",
    "sample_dpmpp_2m": "sampling",
    "SAMPLERS": "sampling",
    "get_sampler": "sampling",
    "walk_timesteps": "schedule",
    "logsnr_timesteps": "schedule",
    "noise_to": "schedule",
    "SpotTiledDenoiser": "tiling",
    "procedural_init": "initialization",
    "laplacian_init": "initialization",
    "PolishConfig": "polishing",
    "polish": "polishing",
}

__all__ = ["DEFAULT_SLOPE_SCALE", "HeightNormalization", "dx_class_label", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"pixels2peaks.diffusion.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'pixels2peaks.diffusion' has no attribute {name!r}")
