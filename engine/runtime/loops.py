"""A service made of one loop function (Engine.add_loop): started as a task, stopped by
setting its halt event and, for loops that take none, by cancelling it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("pulseguard.monitor.runtime")


class LoopService:
    """A service made of one `async def fn(engine[, halt])` loop (see Engine.add_loop).

    `engine` is typed Any: engine.runtime.engine imports this module, not the other way."""

    def __init__(self, name: str, fn: Callable[..., Awaitable[None]]) -> None:
        import inspect

        self.name = name
        self.fn = fn
        self.cooperative = len(inspect.signature(fn).parameters) >= 2
        self.halt = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self, engine: Any) -> None:
        self.halt = asyncio.Event()
        self.task = asyncio.create_task(self._guard(engine), name=f"pulseguard:{self.name}")

    async def _guard(self, engine: Any) -> None:
        try:
            await (self.fn(engine, self.halt) if self.cooperative else self.fn(engine))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("engine loop %s crashed", self.name)

    async def stop(self) -> None:
        from engine.core.halt import finish

        if self.task is not None:
            self.halt.set()
            await finish([self.task], 10.0 if self.cooperative else 0.0)
            self.task = None
