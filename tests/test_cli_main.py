"""The `p2p` entry point: Ctrl-C handling (exit 130, later SIGINTs ignored) and unchanged errors."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest
import typer

from pixels2peaks.cli import analyze
from pixels2peaks.cli import main as cli_main
from pixels2peaks.cli._common import interrupted


class _Exited(BaseException):
    """Stands in for the process ending in a patched ``os._exit``."""


@pytest.fixture()
def sigint_restored():
    """Restore this process's SIGINT handler after a test that changes it."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_interrupted_ignores_further_sigint_and_exits_130(sigint_restored, capsys):
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    exc = interrupted("stopped")
    assert isinstance(exc, typer.Exit) and exc.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert capsys.readouterr().err == "stopped\n"


def test_interrupted_off_the_main_thread_leaves_the_handler(capsys):
    handler = signal.getsignal(signal.SIGINT)
    result = []
    thread = threading.Thread(target=lambda: result.append(interrupted()))
    thread.start()
    thread.join()
    assert result[0].exit_code == 130 and signal.getsignal(signal.SIGINT) is handler
    assert capsys.readouterr().err == "interrupted\n"


def test_main_ends_an_interrupted_command_with_os_exit_130(monkeypatch, sigint_restored, capsys):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    def process_exit(code):
        codes.append(code)
        raise _Exited

    codes = []
    monkeypatch.setattr(analyze, "read_dem_option", ctrl_c)
    monkeypatch.setattr(os, "_exit", process_exit)
    monkeypatch.setattr(sys, "argv", ["p2p", "analyze", "any.tif"])
    with pytest.raises(_Exited):
        cli_main.main()
    assert codes == [130]
    assert capsys.readouterr().err.splitlines()[-1] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def _main_exit(monkeypatch, *argv: str) -> int | str | None:
    """Run the entry point with ``argv``; return its SystemExit code."""
    monkeypatch.setattr(sys, "argv", ["p2p", *argv])
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    return exc.value.code


def test_main_bad_input_is_one_error_line_and_exit_2(monkeypatch, tmp_path, capsys):
    missing = tmp_path / "missing.tif"
    assert _main_exit(monkeypatch, "analyze", str(missing)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"error: DEM file not found: '{missing}'"]


def test_main_help_exits_0(monkeypatch, capsys):
    assert _main_exit(monkeypatch, "--help") == 0
    assert "Usage" in capsys.readouterr().out


def test_warnings_are_one_line_on_the_console(capsys, monkeypatch):
    import warnings

    from pixels2peaks.cli._common import one_line_warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    one_line_warnings()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("stage cache not written (/proc/x): No such file or directory\nsecond line", stacklevel=1)
    err = capsys.readouterr().err
    assert err == "warning: stage cache not written (/proc/x): No such file or directory\n"
