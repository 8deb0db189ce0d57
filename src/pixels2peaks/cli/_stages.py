"""CLI plumbing shared by ``p2p visible`` and ``p2p run``: the perception / prior options, the
image argument (a path or ``-`` for stdin), the stage cache options and the rich per-stage
progress display."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import typer

from pixels2peaks.errors import InputError

# ----------------------------------------------------------------------------------------------
# options (typer OptionInfo objects, shared as defaults by both commands)
# ----------------------------------------------------------------------------------------------

ImageArgument = typer.Argument(
    ..., metavar="IMAGE", help="Photo, painting or generated image (JPEG/PNG/TIFF...), >= 64 px, <= 50 MP; - = stdin."
)
GeometryOption = typer.Option("auto", "--geometry", help="auto, moge, depth_anything, builtin (small learned net), contours (occluding ridgelines, layer distances and faces) or classical (haze + ground-plane cues).")
SegmentationOption = typer.Option("auto", "--segmentation", help="auto, grounded_sam or builtin.")
PriorsOption = typer.Option("auto", "--priors", help="auto, vlm (a chat server, --vlm-url), gemma (a local transformers model) or builtin.")
VlmUrlOption = typer.Option(
    None, "--vlm-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (env P2P_VLM_URL)."
)
VlmModelOption = typer.Option("gemma-3", "--vlm-model", help="Model name sent to the VLM endpoint.")
VlmTimeoutOption = typer.Option(120.0, "--vlm-timeout", help="Seconds per VLM request.")
FovOption = typer.Option(None, "--fov", help="Horizontal FOV in degrees (default: EXIF, else backend).")
SlopeOption = typer.Option(None, "--slope", help="Mean slope prior (degrees), overrides the backend.")
ZMinOption = typer.Option(None, "--z-min", help="Lowest visible elevation (m); needs --z-max.")
ZMaxOption = typer.Option(None, "--z-max", help="Highest visible elevation (m); needs --z-min.")
ElevationRangeOption = typer.Option(
    None, "--elevation-range", help="Lowest and highest visible elevation (m), e.g. --elevation-range 800 2400; "
    "overrides the backend (same as --z-min/--z-max)."
)
PitchOption = typer.Option(None, "--pitch", help="Camera pitch (degrees, + = looking up); skips the pitch search (Eq. 1).")
PitchStepOption = typer.Option(0.5, "--pitch-step", help="Pitch grid step (degrees).")
CacheDirOption = typer.Option(
    None, "--cache-dir", help="Stage cache folder (default $P2P_CACHE_DIR or ~/.cache/pixels2peaks)."
)
NoCacheOption = typer.Option(False, "--no-cache", help="Neither read nor write the stage cache.")
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress display.")


#: the elevation prior is about terrain on a planet: beyond this it is a typo (metres)
MAX_ELEVATION_M = 1.0e5


def perception_options(
    *,
    geometry: str,
    segmentation: str,
    priors: str,
    vlm_url: Optional[str],
    vlm_model: str,
    vlm_timeout: float,
    fov: Optional[float],
    slope: Optional[float],
    z_min: Optional[float],
    z_max: Optional[float],
    pitch_step: float,
    dx: Optional[float] = None,
    cells: int = 1024,
    elevation_range: Optional[tuple[float, float]] = None,
    pitch: Optional[float] = None,
):
    """The CLI's perception options -> :class:`~pixels2peaks.perception.pipeline.VisibleOptions`."""
    from pixels2peaks.perception.geometry import ReconstructOptions
    from pixels2peaks.perception.pipeline import VisibleOptions
    from pixels2peaks.perception.protocols import backend_spec
    from pixels2peaks.perception.vlm import VLMClient

    for kind, name in (("segmentation", segmentation), ("geometry", geometry), ("priors", priors)):
        if name != "auto":  # a misspelt name fails before the image is read
            backend_spec(kind, name)
    if (z_min is None) != (z_max is None):
        raise InputError("give both --z-min and --z-max (the elevation range), or neither")
    if elevation_range is not None:
        if z_min is not None:
            raise InputError("give the elevation range once: --elevation-range or --z-min/--z-max")
        z_min, z_max = (float(v) for v in elevation_range)
    if z_min is not None and not all(math.isfinite(v) and abs(v) <= MAX_ELEVATION_M for v in (z_min, z_max)):
        raise InputError(f"elevations must be finite metres within +-{MAX_ELEVATION_M:g}, got {z_min:g} and {z_max:g}")
    if pitch is not None and not -89.0 <= pitch <= 89.0:
        raise InputError(f"--pitch must be in [-89, 89] degrees, got {pitch}")
    if not 0.01 <= pitch_step <= 10:
        raise InputError(f"--pitch-step must be in [0.01, 10] degrees, got {pitch_step}")
    if not (math.isfinite(vlm_timeout) and vlm_timeout > 0):
        raise InputError(f"--vlm-timeout must be a positive number of seconds, got {vlm_timeout}")
    if fov is not None and not (math.isfinite(fov) and 0 < fov < 180):
        raise InputError(f"--fov must be in (0, 180) degrees, got {fov}")
    backend_options = {"vlm_model": vlm_model, "vlm_timeout_s": vlm_timeout}
    url = vlm_url or os.environ.get("P2P_VLM_URL")
    if url:
        VLMClient(url).endpoint  # noqa: B018 - a malformed URL fails before the image is read
        backend_options["vlm_url"] = url
    return VisibleOptions(
        geometry=geometry,
        segmentation=segmentation,
        priors=priors,
        backend_options=backend_options,
        fov_x_deg=fov,
        mean_slope_deg=slope,
        elevation_range_m=None if z_min is None else (z_min, z_max),
        reconstruct=ReconstructOptions(
            dx_m=dx, target_cells=cells, pitch_step_deg=pitch_step,
            # a given pitch is a one-candidate search: Eq. 1 then only reports the slope there
            **({} if pitch is None else {"pitch_range_deg": (float(pitch), float(pitch))}),
        ),
    )


def stage_cache(cache_dir: Optional[Path], no_cache: bool):
    """``--cache-dir`` / ``--no-cache`` -> :class:`~pixels2peaks.cache.StageCache`."""
    from pixels2peaks.cache import StageCache

    if no_cache:
        return StageCache(None)
    if cache_dir is not None:
        if cache_dir.exists() and not cache_dir.is_dir():
            raise InputError(f"--cache-dir {cache_dir} exists and is not a folder")
        return StageCache(cache_dir)
    return StageCache.default()


def read_image_argument(image: Path) -> Path | bytes:
    """``-`` -> the bytes on stdin (refused from a terminal); otherwise the path."""
    if str(image) != "-":
        return image
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError("IMAGE is - but stdin is a terminal: pipe an image in (p2p run - -o OUT < photo.jpg)")
    data = sys.stdin.buffer.read()
    if not data:
        raise InputError("no image data on stdin")
    return data


# ----------------------------------------------------------------------------------------------
# progress
# ----------------------------------------------------------------------------------------------


class StageProgress:
    """A :class:`~pixels2peaks.cache.StageReporter` drawing one rich progress row per stage:
    spinner, bar (steps for completion), elapsed time, ETA, and ``cached`` / seconds at the end."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def start(self, stage: str) -> None:
        self.tasks[stage] = self.progress.add_task(stage, total=None, info="")

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.start(stage)
        self.progress.update(self.tasks[stage], completed=done, total=total, info=f"{done}/{total} steps")

    def finish(self, stage: str, seconds: float, cached: bool) -> None:
        if stage not in self.tasks:
            self.start(stage)
        task = self.tasks[stage]
        self.progress.update(task, total=1, completed=1, info="cached" if cached else f"{seconds:.1f} s")
        self.progress.stop_task(task)


@contextlib.contextmanager
def stage_progress(quiet: bool) -> Iterator[object]:
    """A live progress display on stderr (nothing with ``quiet``); yields the reporter."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from pixels2peaks.cache import NullReporter

    if quiet:
        yield NullReporter()
        return
    columns = (
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(bar_width=28),
        TextColumn("{task.fields[info]:>14}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        try:
            yield StageProgress(progress)
        except BaseException:
            progress.live.transient = True  # the one-line error replaces the display on a terminal
            if not progress.console.is_terminal:
                progress.console.quiet = True  # elsewhere (a log) no final snapshot or blank line
            raise
