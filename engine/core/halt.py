"""Cooperative stopping for engine loops.

Loops that touch the database are never cancelled mid-query: Tortoise's SQLite transaction
context leaks its connection lock when a task is cancelled while BEGIN waits for another
process's write lock (every later query then hangs). So loops wait on a `halt` event between
rounds and finish the round they are in; cancellation is only a last resort at shutdown.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def pause(halt: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` unless `halt` is set first; True when halted."""
    if halt.is_set():
        return True
    try:
        await asyncio.wait_for(halt.wait(), seconds)
        return True
    except TimeoutError:
        return False


async def finish(tasks: list[asyncio.Task[Any]], timeout: float) -> list[asyncio.Task[Any]]:
    """Wait for halted loops to end; cancel (last resort) those still running after `timeout`.
    Returns the ones that had to be cancelled."""
    if not tasks:
        return []
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return list(pending)
