"""Shared pytest fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is fastest and immune to oversubscription on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def complete_app():
    """A CLI with only the `p2p complete` command (kept a sub-command by a group callback)."""
    import typer

    from pixels2peaks.cli.complete import register

    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        pass

    register(app)
    return app
