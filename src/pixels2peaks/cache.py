"""Stage cache: the results of pipeline stages, keyed by content and settings (issue #6).

A stage's key is the SHA-256 of a canonical JSON document holding the stage name, the settings
the stage depends on (including a fingerprint of the source code that computes it) and the keys
of the stages it consumes; the first stage consumes the image's content hash. Changing one
setting therefore re-runs that stage and everything downstream of it, nothing upstream
(e.g. a new slope prior keeps segmentation and geometry; a new seed re-runs only completion).

Entries live in ``<root>/<stage>/<key>.npz``: the NumPy arrays of the stage's result plus one
JSON string (``__meta__``) with the rest. An entry is written to a temporary file in the same
folder, flushed to disk and renamed into place, so a killed run never leaves a readable half
entry; an unreadable entry counts as a miss and is removed. ``root=None`` turns caching off.
The default root is ``$P2P_CACHE_DIR``, else ``$XDG_CACHE_HOME/pixels2peaks``, else
``~/.cache/pixels2peaks``; nothing is ever evicted (delete the folder to reclaim space).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import math
import os
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = [
    "CACHE_FORMAT",
    "StageCache",
    "StageOutcome",
    "StageReporter",
    "NullReporter",
    "default_cache_dir",
    "stage_key",
    "canonical_json",
    "file_digest",
    "bytes_digest",
    "array_digest",
    "code_fingerprint",
]

#: bump when the entry layout changes (part of every key)
CACHE_FORMAT = 1
_META = "__meta__"


def default_cache_dir() -> Path:
    """``$P2P_CACHE_DIR``, else ``$XDG_CACHE_HOME/pixels2peaks``, else ``~/.cache/pixels2peaks``."""
    env = os.environ.get("P2P_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pixels2peaks"


# ----------------------------------------------------------------------------------------------
# hashing
# ----------------------------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {"array_sha256": array_digest(obj)}
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot put {type(obj).__name__} into a cache key")


def _floats(obj: Any) -> Any:
    """Tuples -> lists, non-finite floats -> strings (JSON has neither)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, (list, tuple)):
        return [_floats(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _floats(v) for k, v in obj.items()}
    return obj


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces; tuples as lists; dataclasses as dicts)."""
    plain = json.loads(json.dumps(obj, default=_jsonable))
    return json.dumps(_floats(plain), sort_keys=True, separators=(",", ":"), allow_nan=False)


def stage_key(stage: str, settings: Mapping[str, Any], upstream: Sequence[str] = ()) -> str:
    """SHA-256 hex key of a stage run: name + settings + upstream keys (see the module doc)."""
    doc = {"format": CACHE_FORMAT, "stage": stage, "settings": dict(settings), "upstream": list(upstream)}
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def code_fingerprint(*modules: str) -> str:
    """SHA-256 over the source files of ``modules`` (a package: every ``.py`` below it), so a
    code change invalidates the stages computed by that code."""
    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            h.update(f"missing:{name}".encode())
            continue
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# progress reporting
# ----------------------------------------------------------------------------------------------


class StageReporter(Protocol):
    """Receives stage events (the CLI draws them; the library default ignores them)."""

    def start(self, stage: str) -> None: ...

    def update(self, stage: str, done: int, total: int) -> None: ...

    def finish(self, stage: str, seconds: float, cached: bool) -> None: ...


class NullReporter:
    """A :class:`StageReporter` that ignores everything."""

    def start(self, stage: str) -> None:
        pass

    def update(self, stage: str, done: int, total: int) -> None:
        pass

    def finish(self, stage: str, seconds: float, cached: bool) -> None:
        pass


# ----------------------------------------------------------------------------------------------
# the cache
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageOutcome:
    """One stage run: its result, key, whether it came from the cache, and wall seconds."""

    stage: str
    value: dict[str, Any]
    key: str
    cached: bool
    seconds: float

    def record(self) -> dict[str, Any]:
        """``{"seconds", "cached", "key"}`` for reports."""
        return {"seconds": round(self.seconds, 3), "cached": self.cached, "key": self.key}


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """Arrays as they are, everything else through JSON: a computed result has the same types
    as one loaded from the cache (tuples become lists)."""
    out = {k: v for k, v in value.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in value.items() if not isinstance(v, np.ndarray)}
    out.update(json.loads(json.dumps(rest, default=_jsonable)))
    return out


@contextlib.contextmanager
def _temp_file(folder: Path, name: str) -> Iterator[Path]:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@dataclass(frozen=True)
class StageCache:
    """Stage results under ``root`` (``None`` = caching off; see the module docstring)."""

    root: Path | None = None

    @classmethod
    def default(cls) -> StageCache:
        return cls(default_cache_dir())

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def path(self, stage: str, key: str) -> Path:
        if self.root is None:
            raise ValueError("caching is off")
        return Path(self.root) / stage / f"{key}.npz"

    def load(self, stage: str, key: str) -> dict[str, Any] | None:
        """The stored result, or ``None`` (miss, caching off, or an unreadable entry)."""
        if self.root is None:
            return None
        p = self.path(stage, key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as npz:
                out: dict[str, Any] = {k: npz[k] for k in npz.files if k != _META}
                meta = json.loads(str(npz[_META]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            with contextlib.suppress(OSError):
                p.unlink()
            return None
        out.update(meta)
        return out

    def save(self, stage: str, key: str, value: Mapping[str, Any]) -> bool:
        """Store ``value`` (arrays + JSON-able rest) atomically; ``False`` (and a warning) if the
        cache cannot be written (e.g. a full disk): the run goes on without it."""
        if self.root is None:
            return False
        p = self.path(stage, key)
        arrays = {k: np.asarray(v) for k, v in value.items() if isinstance(v, np.ndarray)}
        meta = {k: v for k, v in value.items() if not isinstance(v, np.ndarray)}
        if _META in value:
            raise ValueError(f"{_META!r} is reserved")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            with _temp_file(p.parent, p.name) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **arrays, **{_META: np.array(json.dumps(meta, default=_jsonable))})
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, p)
        except OSError as exc:
            warnings.warn(f"stage cache not written ({p.parent}): {exc.strerror or exc}", stacklevel=2)
            return False
        return True

    def run(
        self,
        stage: str,
        settings: Mapping[str, Any],
        upstream: Sequence[str],
        compute: Callable[[], Mapping[str, Any]],
        reporter: StageReporter | None = None,
    ) -> StageOutcome:
        """Load the stage's result for (settings, upstream) or ``compute()`` and store it."""
        rep = reporter or NullReporter()
        key = stage_key(stage, settings, upstream)
        rep.start(stage)
        t0 = time.perf_counter()
        value = self.load(stage, key)
        cached = value is not None
        if value is None:
            value = _plain(compute())
            self.save(stage, key, value)
        seconds = time.perf_counter() - t0
        rep.finish(stage, seconds, cached)
        return StageOutcome(stage, value, key, cached, seconds)
