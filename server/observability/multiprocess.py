"""Metrics across `gigql serve --workers N` processes (prometheus-client's multiprocess mode).

Each worker writes its counts to files in a folder named by `PROMETHEUS_MULTIPROC_DIR`;
whichever worker answers a scrape reads them all. `gigql serve` makes that folder fresh
for each run (inside `PROMETHEUS_MULTIPROC_DIR` if the operator set one, say on a tmpfs)
before the workers start, so that counts of an earlier run never mix in, and removes it
when the run ends. A worker that stops marks its files dead, so that its open websockets
and live subscriptions stop counting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_folder(workers: int, metrics: bool) -> Iterator[None]:
    """For the `gigql serve` process, around the workers' whole life."""
    if not metrics or (workers <= 1 and not os.environ.get(ENV)):
        yield
        return
    parent = os.environ.get(ENV) or None
    folder = tempfile.mkdtemp(prefix="gigql-metrics-", dir=parent)
    os.environ[ENV] = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if parent is None:
            del os.environ[ENV]
        else:
            os.environ[ENV] = parent


def multiprocess() -> bool:
    return bool(os.environ.get(ENV))


def worker_stopped() -> None:
    """For a worker on its way out: its live gauges no longer count."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
