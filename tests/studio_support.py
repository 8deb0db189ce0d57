"""Shared pieces of the studio tests: a test-sized studio (tiny random prior, 64 cells, two
diffusion steps, builtin backends) and an in-process server on a free 127.0.0.1 port."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import torch

from pixels2peaks.cache import StageCache
from pixels2peaks.diffusion.model import PriorConfig, TerrainPrior, save_prior
from pixels2peaks.studio.session import StudioConfig
from test_run import CONFIG
from tiny_diffusion import TINY

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "alps_photo.jpg"


def tiny_studio_config(folder: Path, **changes) -> StudioConfig:
    """A studio that runs in seconds: the tiny prior saved in ``folder``."""
    torch.manual_seed(0)
    wp, _ = save_prior(TerrainPrior(PriorConfig(**TINY)).eval(), folder / "tiny.safetensors", dtype=torch.float32)
    return StudioConfig(run=dataclasses.replace(CONFIG, weights=str(wp)), **changes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, **changes):
    """(app, url) of a running test-sized studio; stop with ``stop_server(app)``."""
    from pixels2peaks.studio.app import launch

    config = tiny_studio_config(folder, **changes)
    messages: list[str] = []
    app = launch(config, port=free_port(), open_browser=False, cache=StageCache(folder / "cache"), block=False,
                 echo=lambda m, err=False: messages.append(m))
    url = messages[-1].split(": ", 1)[1]
    app.p2p_messages = messages
    return app, url


def stop_server(app) -> None:
    app.close()
    app.p2p_store.close()
