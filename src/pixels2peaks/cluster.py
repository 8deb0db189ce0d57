"""Dask clusters for the jobs that scale out (``p2p batch``, ``p2p dataset build``): one home
for how a cluster is opened, so every job gets the same worker layout and fault policy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pixels2peaks.errors import InputError

__all__ = ["open_client", "describe", "ALLOWED_FAILURES"]

#: a worker that dies on a task: the task is tried on a replacement once more
ALLOWED_FAILURES = 1


@contextlib.contextmanager
def open_client(workers: int | None = None, scheduler: str | None = None,
                memory_limit: str = "auto") -> Iterator[Any]:
    """A ``distributed.Client``: on ``scheduler`` (``tcp://host:port``) or on a new
    ``LocalCluster`` of ``workers`` single-threaded processes (closed at the end). A task whose
    worker dies is retried once (``ALLOWED_FAILURES``)."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            with client:
                yield client
            return
        n = 1 if workers is None else int(workers)
        if n < 1:
            raise InputError(f"--workers must be >= 1, got {n}")
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                          dashboard_address="127.0.0.1:0", silence_logs=50) as cluster, Client(cluster) as client:
            yield client


def describe(client: Any) -> str:
    """One line for the user: how many workers, the scheduler and the dashboard."""
    n = len(client.scheduler_info().get("workers", {}))
    return f"Dask: {n} worker(s) at {client.scheduler.address}, dashboard {client.dashboard_link}"
