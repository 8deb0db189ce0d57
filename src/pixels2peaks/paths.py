"""Output-folder checks shared by every command: one-line reasons, before any work is done."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from pixels2peaks.errors import InputError

__all__ = ["require_folder", "require_writable"]


def require_folder(folder: Path) -> None:
    """``folder`` must be an existing folder: else say which part of it is a file, or that it
    does not exist (one-line :class:`InputError`)."""
    folder = Path(folder)
    if folder.is_dir():
        return
    for p in (folder, *folder.parents):
        if p.exists() and not p.is_dir():
            raise InputError(f"{p} is a file, not a folder")
    raise InputError(f"output folder {folder} does not exist")


def require_writable(target: Path, output: Path | None = None) -> None:
    """``target`` (an existing folder) must accept a new entry: a probe folder is made and removed
    at once, so that a read-only filesystem, a pseudo-filesystem such as ``/proc`` or missing
    permissions are found before any work, and each is named as such. ``output``: the path the
    user asked for (named in the message; default ``target``)."""
    out = output if output is not None else target
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".p2p-probe-", dir=target))
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise InputError(f"cannot write {out}: {target} is on a read-only filesystem") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise InputError(f"cannot write {out}: permission denied") from None
        raise InputError(f"cannot write {out}: {target} does not take new folders "
                         f"({exc.strerror or type(exc).__name__})") from None
