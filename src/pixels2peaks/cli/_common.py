"""Shared CLI plumbing: one-line errors (exit 2), output-path checks, DEM options."""

from __future__ import annotations

import functools
import signal
import sys
from pathlib import Path
from typing import Callable, Literal, Optional, TypeVar

import typer

from pixels2peaks.errors import InputError
from pixels2peaks.paths import require_folder

F = TypeVar("F", bound=Callable[..., object])

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_INPUT) -> None:
    """Print ``error: message`` on stderr (one line) and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def interrupted(message: str = "interrupted") -> typer.Exit:
    """After Ctrl-C: ignore further SIGINTs (so a second one cannot kill the clean exit), print
    ``message`` on stderr and return the exit-130 exception to raise."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signal handlers cannot be changed there
        pass
    typer.echo(message, err=True)
    return typer.Exit(EXIT_INTERRUPTED)


def user_errors(func: F) -> F:
    """Turn :class:`InputError` (and OS errors such as an unwritable output) into one stderr
    line + exit 2, Ctrl-C into a clean exit 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except KeyboardInterrupt:
            raise interrupted() from None
        except MemoryError:
            fail("out of memory: try a smaller input or --size")
        except OSError as exc:  # unwritable/unreadable paths, full disk: the OS's reason, one line
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or type(exc).__name__}{where}")

    return wrapper  # type: ignore[return-value]


def check_output_file(path: Path, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; the parent folder must be writable."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass --overwrite to replace it")
    if path.exists() and path.is_dir():
        raise InputError(f"{path} is a directory, not an output file")
    parent = path.parent if str(path.parent) else Path(".")
    require_folder(parent)
    return path


def read_dem_option(
    path: Path,
    dx_m: Optional[float],
    square: Literal["error", "resample"],
    nan_nodata: bool,
):
    """Read a DEM with the CLI's common options; rejects flat DEMs (nothing to analyse)."""
    import numpy as np

    from pixels2peaks.io import read_dem

    dem = read_dem(path, dx_m=dx_m, square=square, nan="nodata" if nan_nodata else "error")
    z = dem.z[dem.valid]
    if z.size < 4:
        raise InputError(f"{path}: only {z.size} valid cell(s); a DEM needs at least 4")
    if float(np.max(z)) == float(np.min(z)):
        raise InputError(f"{path} is flat (every valid cell is {float(z[0]):g} m): nothing to do")
    return dem


DxOption = typer.Option(None, "--dx", help="Cell size in metres (overrides the file's).")

#: largest heightmap side a command makes (as ``p2p run`` / ``visible``: ReconstructOptions.max_cells)
MAX_SIZE_CELLS = 8192
#: largest cell size a command accepts, metres (the prior knows 30-1920 m)
MAX_DX_M = 1.0e5
#: seeds feed numpy and torch generators: 0 <= seed < 2**32
MAX_SEED = 2**32 - 1
#: more threads than this only exhausts memory (each torch/numba thread reserves a stack)
MAX_THREADS = 256


def seed_option(help: str) -> object:  # noqa: A002 - typer's keyword
    """A ``--seed`` option bounded to what every generator accepts."""
    return typer.Option(0, "--seed", min=0, max=MAX_SEED, help=help)


def threads_option(help: str) -> object:  # noqa: A002 - typer's keyword
    """A ``--threads`` option (default: the library's choice), 1..MAX_THREADS."""
    return typer.Option(None, "--threads", min=1, max=MAX_THREADS, help=help)
SquareOption = typer.Option(
    "error", "--square", help="Non-square cells: 'error' or 'resample' to square cells."
)
NanOption = typer.Option(
    False, "--nan-nodata", help="Treat NaN cells the file does not declare as nodata."
)


def one_line_warnings() -> None:
    """Show Python warnings as ``warning: message`` (one stderr line, no source line) — for
    the console entry point, where a user reads them (e.g. an unwritable stage cache)."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 - warnings' API
        print(f"warning: {str(message).splitlines()[0] if str(message) else category.__name__}",
              file=file or sys.stderr)

    warnings.showwarning = show


def echo_err(msg: str) -> None:
    print(msg, file=sys.stderr)
