"""The anomaly service's side of its worker process: the spawn context it is started with,
stopping it without waiting for the call it is in, and batches cut into calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any


def chunks(batch: dict[str, list[tuple[float, float]]], size: int) -> Iterator[dict[str, list[tuple[float, float]]]]:
    """The batch in parts of about `size` samples, each series whole and in one part."""
    part: dict[str, list[tuple[float, float]]] = {}
    count = 0
    for series, samples in batch.items():
        part[series] = samples
        count += len(samples)
        if count >= size:
            yield part
            part, count = {}, 0
    if part:
        yield part


def spawn_context() -> Any:
    """The spawn context, with multiprocessing's resource tracker started on /dev/null: the
    tracker inherits sys.stderr's descriptor, and under the console sys.stderr is Textual's
    capture, which has none (spawning fails), while the terminal must not get its warnings."""
    import multiprocessing
    import os
    import sys
    from multiprocessing import resource_tracker

    saved = sys.stderr
    with open(os.devnull, "w") as sink:
        sys.stderr = sink
        try:
            resource_tracker.ensure_running()
        finally:
            sys.stderr = saved
    return multiprocessing.get_context("spawn")


def end_workers(executor: Executor) -> list[Any]:
    """Terminate the pool's worker processes now, waiting for nothing (stop_executor reaps
    them); returns them. A worker still loading numpy and PyOD, or fitting, burns a core
    until it is told."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    return processes


async def stop_executor(executor: Executor) -> None:
    """Stop the detector's worker without waiting for the call it is in (a fit, or numpy and
    PyOD still loading), which can take seconds: the worker keeps nothing that must outlive it
    (the next start learns from the stored history again)."""
    # The pool has no public way to end a busy worker before Python 3.14 (and forgets its
    # processes on shutdown, so they are taken first).
    processes = end_workers(executor)
    manager = getattr(executor, "_executor_manager_thread", None)
    executor.shutdown(wait=False, cancel_futures=True)

    def wait() -> None:
        for process in processes:
            process.join(5.0)
        if manager is not None:
            manager.join(5.0)
        executor.shutdown(wait=True)

    await asyncio.get_running_loop().run_in_executor(None, wait)
