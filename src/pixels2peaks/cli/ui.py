"""`p2p ui`: Pixels2Peaks Studio, a local web app (``pixels2peaks.studio``, docs/ui.md).

The run settings (size, steps, backends, prior weights, seed) are ``p2p run``'s options and
start every job; the page edits the camera and the priors. Needs the ``ui`` extra (Gradio).
Registered in ``pixels2peaks/cli/main.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.cli._common import seed_option, user_errors
from pixels2peaks.cli._stages import (
    CacheDirOption,
    GeometryOption,
    NoCacheOption,
    PitchStepOption,
    PriorsOption,
    SegmentationOption,
    VlmModelOption,
    VlmTimeoutOption,
    VlmUrlOption,
    perception_options,
    stage_cache,
)
from pixels2peaks.errors import InputError


def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (127.0.0.1: this machine only)."),
    port: int = typer.Option(7860, "--port", help="Port to serve on."),
    max_upload_mb: int = typer.Option(50, "--max-upload-mb", help="Largest photo upload (MB)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser."),
    max_jobs: int = typer.Option(1, "--max-jobs", help="Steps running at once across all users (the rest queue)."),
    size: int = typer.Option(1024, "--size", help="Final heightmap size in cells (square)."),
    steps: int = typer.Option(20, "--steps", help="DDIM steps of the main guided diffusion."),
    seed: int = seed_option("Random seed of the completion."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Prior weights (.safetensors + .json); default: shipped."),
    geometry: str = GeometryOption,
    segmentation: str = SegmentationOption,
    priors: str = PriorsOption,
    vlm_url: Optional[str] = VlmUrlOption,
    vlm_model: str = VlmModelOption,
    vlm_timeout: float = VlmTimeoutOption,
    pitch_step: float = PitchStepOption,
    cache_dir: Optional[Path] = CacheDirOption,
    no_cache: bool = NoCacheOption,
) -> None:
    """Start Pixels2Peaks Studio: photo -> camera and visible terrain -> complete terrain, 3D
    view and every export, in the browser."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise InputError("p2p ui needs Gradio: pip install 'pixels2peaks[ui]'") from None
    from pixels2peaks.diffusion.completion import CompletionConfig
    from pixels2peaks.pipeline.run import RunConfig
    from pixels2peaks.studio.app import launch
    from pixels2peaks.studio.session import StudioConfig

    if not 1 <= port <= 65535:
        raise InputError(f"--port must be from 1 to 65535, got {port}")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {device!r}")
    if weights is not None and not weights.is_file():
        raise InputError(f"prior weights not found: {weights}")
    popts = perception_options(
        geometry=geometry, segmentation=segmentation, priors=priors, vlm_url=vlm_url, vlm_model=vlm_model,
        vlm_timeout=vlm_timeout, fov=None, slope=None, z_min=None, z_max=None, pitch_step=pitch_step,
    )
    run = RunConfig(size_cells=size, perception=popts, completion=CompletionConfig(seed=seed, steps=steps, device=device),
                    weights=None if weights is None else str(weights))
    config = StudioConfig(run=run, max_upload_mb=max_upload_mb, max_jobs=max_jobs)
    try:
        launch(config, host=host, port=port, open_browser=not no_browser, cache=stage_cache(cache_dir, no_cache))
    except KeyboardInterrupt:
        typer.echo("studio stopped", err=True)


def register(app: typer.Typer) -> None:
    app.command("ui")(user_errors(ui))
