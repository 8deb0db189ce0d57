"""`p2p` command-line entry point: one sub-module per command group, registered here."""

from __future__ import annotations

import contextlib
import os
import sys

import typer

from pixels2peaks.cli._common import EXIT_INTERRUPTED, one_line_warnings

app = typer.Typer(
    name="p2p",
    help="Pixels2Peaks: turn a landscape photograph into a complete metric heightmap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from pixels2peaks.cli import analyze, batch, complete, evaluate, export, hydro, prior, render, run, ui, visible

    for module in (analyze, hydro, prior, render, visible, complete, evaluate, export, run, batch, ui):
        module.register(app)


_register()


def main() -> None:
    """The ``p2p`` console entry point: :data:`app`, but an interrupted command (exit 130) ends
    at once, skipping interpreter finalization, so no late SIGINT can turn it into a kill."""
    # standalone mode prints help, usage and errors exactly as `app()` does, then exits
    # (standalone_mode=False would re-raise usage errors unprinted)
    one_line_warnings()
    try:
        app(standalone_mode=True)
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed or broken pipe
                stream.flush()
        os._exit(EXIT_INTERRUPTED)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
