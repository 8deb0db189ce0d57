"""`p2p` command-line entry point: one sub-module per command group, registered here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="p2p",
    help="Pixels2Peaks: turn a landscape photograph into a complete metric heightmap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from pixels2peaks.cli import analyze, complete, evaluate, export, hydro, prior, render, run, visible

    for module in (analyze, hydro, prior, render, visible, complete, evaluate, export, run):
        module.register(app)


_register()

if __name__ == "__main__":  # pragma: no cover
    app()
