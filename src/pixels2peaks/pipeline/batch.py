"""``p2p batch``: many photos through :func:`~pixels2peaks.pipeline.run.run_photo` on a Dask
cluster (a ``LocalCluster`` on one machine, or any scheduler address), resumable.

* :func:`collect`: photos, folders, globs and CSV files (per-photo overrides) -> :class:`BatchItem`\\ s.
* :func:`input_hash`: what a photo's outputs depend on (its bytes and its whole run config);
  :func:`finished`: a folder holds every ``p2p run`` file for that hash, so a re-run skips it.
* :func:`run_item`: one photo on a worker -> one manifest row; a failing photo is a row with
  its one-line error, never an exception. Outputs go through ``write_run``'s staged folder, so
  a killed worker or Ctrl-C never leaves a half-written ``OUTDIR/NAME/``.
* :func:`run_batch`: one task per photo on a :func:`~pixels2peaks.cluster.open_client` cluster;
  a worker that dies is replaced and its photo retried once; the manifest (:data:`MANIFEST_FILES`) is rewritten
  atomically after every photo.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixels2peaks.cache import StageCache, file_digest
from pixels2peaks.errors import InputError
from pixels2peaks.pipeline.run import Overrides, RunConfig

__all__ = ["BatchItem", "collect", "input_hash", "finished", "run_item", "run_batch",
           "write_manifest", "remove_staging", "MANIFEST_FILES", "ROW_FIELDS", "CSV_COLUMNS"]

MANIFEST_FILES = ("batch.json", "batch.csv")
#: one manifest row per photo
ROW_FIELDS = ("name", "input", "input_sha256", "status", "seconds", "dx_m", "mdd_m", "error")
#: columns of an input CSV: ``photo`` (relative to the CSV's folder) and optional overrides
CSV_COLUMNS = ("photo", "slope", "z_min", "z_max", "pitch", "fov", "seed")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")


@dataclass(frozen=True)
class BatchItem:
    """One photo: output folder ``name``, the file, its overrides of the batch's run."""

    name: str
    photo: Path
    overrides: Overrides = Overrides()


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


def _number(row: Mapping[str, str], key: str, where: str, kind=float):
    v = (row.get(key) or "").strip()
    if not v:
        return None
    try:
        return kind(float(v)) if kind is int else kind(v)
    except ValueError:
        raise InputError(f"{where}: {key} must be a number, got {v!r}") from None


def _csv_items(path: Path) -> list[tuple[Path, Overrides]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    cols = [c.strip() for c in reader.fieldnames or []]
    if "photo" not in cols:
        raise InputError(f"{path}: needs a 'photo' column (columns: {', '.join(CSV_COLUMNS)})")
    unknown = sorted(set(cols) - set(CSV_COLUMNS))
    if unknown:
        raise InputError(f"{path}: unknown column(s) {', '.join(unknown)} (use {', '.join(CSV_COLUMNS)})")
    out = []
    for i, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "") for k, v in raw.items() if k}
        where = f"{path} line {i}"
        if not row.get("photo", "").strip():
            raise InputError(f"{where}: empty photo")
        lo, hi = _number(row, "z_min", where), _number(row, "z_max", where)
        if (lo is None) != (hi is None):
            raise InputError(f"{where}: give both z_min and z_max, or neither")
        try:
            ov = Overrides(pitch_deg=_number(row, "pitch", where), fov_x_deg=_number(row, "fov", where),
                           mean_slope_deg=_number(row, "slope", where),
                           elevation_range_m=None if lo is None else (lo, hi), seed=_number(row, "seed", where, int))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        photo = Path(row["photo"].strip())
        out.append((photo if photo.is_absolute() else path.parent / photo, ov))
    return out


def _expand(spec: str) -> list[tuple[Path, Overrides]]:
    p = Path(spec)
    if p.suffix.lower() == ".csv" and p.is_file():
        return _csv_items(p)
    if p.is_dir():
        return [(f, Overrides()) for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if p.is_file():
        return [(p, Overrides())]
    if glob.has_magic(spec):
        return [(Path(f), Overrides()) for f in sorted(glob.glob(spec)) if Path(f).is_file()]
    raise InputError(f"no such photo, folder, glob or CSV: {spec}")


def _folder_name(photo: Path) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in photo.stem).strip(".") or "photo"


def collect(inputs: Sequence[str]) -> list[BatchItem]:
    """Every photo named by ``inputs`` (photos, folders, globs, CSVs), in order, each once;
    output folder names are the file stems, made unique with ``-2``, ``-3``..."""
    seen: set[Path] = set()
    items: list[BatchItem] = []
    taken: set[str] = set()
    for spec in inputs:
        for photo, ov in _expand(str(spec)):
            key = photo.resolve()
            if key in seen:
                continue
            seen.add(key)
            base = name = _folder_name(photo)
            k = 1
            while name.lower() in taken or name.lower() in (m.lower() for m in MANIFEST_FILES):
                k += 1
                name = f"{base}-{k}"
            taken.add(name.lower())
            items.append(BatchItem(name, photo, ov))
    if not items:
        raise InputError(f"no photos in {' '.join(map(str, inputs))} (image files: {', '.join(IMAGE_SUFFIXES)})")
    return items


# ----------------------------------------------------------------------------------------------
# resuming
# ----------------------------------------------------------------------------------------------


def input_hash(photo_sha256: str, config_dict: Mapping[str, Any]) -> str:
    """SHA-256 of a photo's bytes' digest and its run config (``RunConfig.to_dict()``, as it is
    saved in ``report.json``): what the outputs depend on."""
    blob = json.dumps({"photo": photo_sha256, "config": config_dict}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def finished(folder: Path, expected: str) -> dict[str, Any] | None:
    """The report of a complete output folder for input hash ``expected``, else ``None``."""
    from pixels2peaks.pipeline.outputs import RUN_FILES

    if not all((folder / n).is_file() for n in RUN_FILES):
        return None
    try:
        report = json.loads((folder / "report.json").read_text())
        got = input_hash(report["input"]["sha256"], report["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report if got == expected else None


def remove_staging(outdir: Path, names: Sequence[str]) -> None:
    """After the cluster is closed (Ctrl-C): remove every staging folder of ``names``."""
    for name in names:
        _remove_staging(Path(outdir), name)


def _remove_staging(outdir: Path, name: str) -> None:
    """Remove the staging folders ``write_run`` left for ``name`` when its process was killed."""
    for p in outdir.glob(f".{glob.escape(name)}.*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# one photo (runs on a worker)
# ----------------------------------------------------------------------------------------------


def _row(item: BatchItem, sha: str, status: str, seconds: float = 0.0, report: Mapping[str, Any] | None = None,
         error: str = "") -> dict[str, Any]:
    return {"name": item.name, "input": str(item.photo), "input_sha256": sha, "status": status,
            "seconds": round(seconds, 3), "dx_m": None if report is None else report["dx_m"],
            "mdd_m": None if report is None else report["mdd_m"], "error": error}


def run_item(item: BatchItem, config: RunConfig, outdir: str | Path, cache_dir: str | None,
             threads: int = 1, sha: str = "") -> dict[str, Any]:
    """Run one photo into ``outdir/item.name/`` (replacing what is there) -> its manifest row.
    ``sha``: the photo's digest when the caller has it. Every error becomes a ``failed`` row
    with a one-line reason."""
    t0 = time.perf_counter()
    try:
        import numba
        import torch

        from pixels2peaks.pipeline.outputs import write_run
        from pixels2peaks.pipeline.run import run_photo

        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        _remove_staging(Path(outdir), item.name)  # an earlier attempt's, killed with its worker
        cfg = item.overrides.apply(config)
        sha = sha or file_digest(item.photo)
        result = run_photo(item.photo, cfg, cache=StageCache(None if cache_dir is None else Path(cache_dir)))
        report = write_run(Path(outdir) / item.name, result, overwrite=True)
        return _row(item, sha, "done", time.perf_counter() - t0, report)
    except InputError as exc:
        return _row(item, sha, "failed", time.perf_counter() - t0, error=str(exc).splitlines()[0])
    except FileNotFoundError as exc:
        return _row(item, sha, "failed", time.perf_counter() - t0, error=f"not found: {exc.filename}")
    except Exception as exc:  # a bug or a resource error: recorded, and the batch goes on
        first = (str(exc).strip().splitlines() or [""])[0]
        return _row(item, sha, "failed", time.perf_counter() - t0, error=f"{type(exc).__name__}: {first}")


# ----------------------------------------------------------------------------------------------
# the cluster
# ----------------------------------------------------------------------------------------------


def write_manifest(outdir: Path, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> None:
    """``batch.json`` (meta + rows) and ``batch.csv`` (rows), each written then renamed."""
    from pixels2peaks.io.write import atomic_path

    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed", "pending")}
    with atomic_path(outdir / "batch.json") as tmp:
        tmp.write_text(json.dumps({**meta, "counts": counts, "photos": list(rows)}, indent=2) + "\n")
    with atomic_path(outdir / "batch.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=ROW_FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow({k: "" if r.get(k) is None else r[k] for k in ROW_FIELDS})


def run_batch(items: Sequence[BatchItem], config: RunConfig, outdir: str | Path, client: Any, *,
              cache_dir: str | None = None, on_row: Callable[[dict[str, Any]], None] | None = None
              ) -> list[dict[str, Any]]:
    """Every photo of ``items`` into ``outdir/NAME/`` on ``client``'s cluster -> the manifest
    rows (input order). Complete folders with an unchanged input hash are skipped."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pixels2peaks.batch/1", "config": config.to_dict(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    rows: list[dict[str, Any]] = []
    pending: dict[Any, tuple[int, BatchItem]] = {}
    for item in items:
        _remove_staging(outdir, item.name)
        try:
            sha = file_digest(item.photo)
        except OSError as exc:
            rows.append(_row(item, "", "failed", error=f"cannot read {item.photo}: {exc.strerror or exc}"))
            continue
        cfg = item.overrides.apply(config)
        report = finished(outdir / item.name, input_hash(sha, cfg.to_dict()))
        if report is not None:
            rows.append(_row(item, sha, "skipped", report=report))
            continue
        rows.append(_row(item, sha, "pending"))
        fut = client.submit(run_item, item, config, str(outdir), cache_dir, sha=sha,
                            key=f"p2p-photo-{item.name}-{sha[:12]}", pure=False)
        pending[fut] = (len(rows) - 1, item)
    for r in rows:
        if r["status"] != "pending" and on_row is not None:
            on_row(r)
    write_manifest(outdir, rows, meta)
    try:
        for fut in as_completed(list(pending)):
            i, item = pending[fut]
            try:
                rows[i] = fut.result()
            except FutureCancelledError:
                continue
            except Exception as exc:  # KilledWorker: its worker died twice on this photo
                rows[i] = _row(item, rows[i]["input_sha256"], "failed",
                               error=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")
            write_manifest(outdir, rows, meta)
            if on_row is not None:
                on_row(rows[i])
    finally:
        left = [f for f in pending if not f.done()]
        if left:
            client.cancel(left)
        for r in rows:  # what a killed final attempt left (a pending photo's writer may still run)
            if r["status"] != "pending":
                _remove_staging(outdir, r["name"])
        write_manifest(outdir, rows, {**meta, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return rows
