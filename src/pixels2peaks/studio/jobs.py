"""Job folders of the studio: every browser session gets its own folder under one temporary
root; the session's files are written, listed and served only from there.

* :class:`JobStore`: the root (removed by :meth:`JobStore.close`), one :class:`Job` per session
  (removed by :meth:`JobStore.end`, when the browser tab closes), a cancel flag per job.
* :func:`safe_file`: a download name -> a file inside its job folder, or an
  :class:`~pixels2peaks.errors.InputError` (absolute names, ``..``, links leaving the folder).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pixels2peaks.errors import InputError

__all__ = ["Job", "JobStore", "Cancelled", "safe_file"]

class Cancelled(Exception):
    """The user pressed Cancel: the running job stops at its next progress report."""


def safe_file(folder: str | Path, name: str) -> Path:
    """The existing regular file ``name`` (a relative POSIX path) inside ``folder``.

    Refused with :class:`InputError`: empty or absolute names, backslashes, ``..`` parts, and
    anything whose real path (links resolved) is outside ``folder``.

    >>> safe_file("/tmp", "../etc/passwd")
    Traceback (most recent call last):
    ...
    pixels2peaks.errors.InputError: no such file: '../etc/passwd'
    """
    root = Path(folder).resolve()
    pure = PurePosixPath(name) if isinstance(name, str) else None
    if (pure is None or not name or "\\" in name or "\x00" in name or pure.is_absolute()
            or any(part in ("..", "") for part in pure.parts)):
        raise InputError(f"no such file: {name!r}")
    path = (root / pure).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise InputError(f"no such file: {name!r}")
    return path


@dataclass(frozen=True)
class Job:
    """One session's work: ``folder`` (private), ``id`` (for the cancel flag)."""

    id: str
    folder: Path

    def path(self, name: str) -> Path:
        """An existing file of this job (:func:`safe_file`)."""
        return safe_file(self.folder, name)


class JobStore:
    """Per-session job folders under ``root`` (default: a new temporary folder)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="p2p-studio-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def new(self) -> Job:
        """A new job with an empty, randomly named folder."""
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=self.root))
        job = Job(folder.name, folder)
        with self._lock:
            self._cancel[job.id] = threading.Event()
        return job

    def cancel_flag(self, job: Job) -> threading.Event:
        with self._lock:
            return self._cancel.setdefault(job.id, threading.Event())

    def cancel(self, job: Job | None) -> None:
        """Ask ``job``'s running step to stop (see :class:`Cancelled`)."""
        if job is not None:
            self.cancel_flag(job).set()

    def begin(self, job: Job) -> None:
        """A step of ``job`` starts: an earlier Cancel no longer applies."""
        self.cancel_flag(job).clear()

    def check(self, job: Job) -> None:
        """Raise :class:`Cancelled` if ``job`` was cancelled since its step began."""
        if self.cancel_flag(job).is_set():
            raise Cancelled("cancelled")

    def end(self, job: Job | None) -> None:
        """The session ended: remove its folder."""
        if job is None:
            return
        with self._lock:
            self._cancel.pop(job.id, None)
        if Path(job.folder).resolve().is_relative_to(self.root.resolve()):
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Remove every job folder and the root."""
        shutil.rmtree(self.root, ignore_errors=True)
