"""A uvicorn factory for bench/socket_memory.py: the app of `BENCH_TRACED_APP`'s
`app_from_environment`, dumping a tracemalloc snapshot to `BENCH_TRACE_PATH` on
SIGUSR1 (then touching the path with `.done` for a suffix). Tracing starts at the first
signal: started before, it slows the app's start past the harness's minute, and only
what is allocated between two snapshots is compared anyway."""

from __future__ import annotations

import gc
import importlib
import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any


def app_from_environment() -> Any:
    frames = int(os.environ.get("BENCH_TRACE_FRAMES", "30"))
    path = Path(os.environ["BENCH_TRACE_PATH"])

    def dump(signum: int, frame: FrameType | None) -> None:
        # A Python handler runs between bytecodes of the main thread: the loop is paused.
        if os.environ.get("BENCH_TRACE_GC") == "1":
            gc.collect()  # what only waits for the cycle collector is not kept
        if not tracemalloc.is_tracing():
            tracemalloc.start(frames)
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(str(path))
        path.with_suffix(".done").touch()

    signal.signal(signal.SIGUSR1, dump)
    module = importlib.import_module(os.environ["BENCH_TRACED_APP"])
    return module.app_from_environment()
