"""The engine inside the console process: it runs the engine loops only while this process
holds the engine lease (otherwise it waits on standby), outside Textual so no widget owns it.

Starting it is a task beside the app, so the first frame does not wait for the lease or for
the targets to be synced; the console has it wait for the incident list's first page too
(`start_soon(after=...)`): the engine's start imports its areas' modules and syncs the targets
on the same event loop, and held that page back by 100-200 ms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("pulseguard.console")


def monitor_queries() -> Any:
    """The monitoring engine's read side (targets, metric series)."""
    from engine.api.startup import monitor_queries as queries

    return queries()


class EngineHost:
    """Owns an in-process Engine for the console; tells the API (and the app) its role."""

    def __init__(self, api: Any, config: Any, database: Any, *, engine: Any = None) -> None:
        """`config` None: no configuration file, the engine runs with the defaults."""
        self.api = api
        self.config = config
        self.database = database
        self.engine = engine
        self.app: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self.error: str | None = None

    def _role_changed(self, role: str) -> None:
        self.api.role = role
        if self.app is not None and self.app.is_running:
            self.app.call_later(self.app.refresh_overview)

    def start_soon(self, after: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Start the engine in the background (returns at once), after awaiting `after()` if given."""
        if self.engine is not None:  # already running (the demo starts its own)
            self.api.role = self.engine.role
            self.engine.on_role_change = self._role_changed
            return
        if self._stopping is not None:  # the console closed first: nothing to start
            return
        self.api.role = "standby"
        self._task = asyncio.create_task(self._start(after), name="pulseguard:console-engine")

    async def _start(self, after: Callable[[], Awaitable[Any]] | None = None) -> None:
        try:
            if after is not None:
                await after()
            # The engine's modules and its areas' plugins load in a thread, off the event loop
            # the console's keys run on.
            from engine.api.startup import default_config, new_engine, warm_engine_imports

            await asyncio.to_thread(warm_engine_imports)
            if self.config is None:  # no configuration file: the defaults (their model loads in a thread too)
                self.config = await asyncio.to_thread(default_config)

            self.engine = new_engine(self.config, self.database, role="console", on_role_change=self._role_changed)
            await self.engine.start()
            self._role_changed(self.engine.role)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the console stays useful as a pure console
            log.exception("the engine did not start")
            self.error = str(exc)
            self.api.role = "console"
            if self.app is not None and self.app.is_running:
                self.app.notify(f"engine did not start here: {exc}; running as a pure console", severity="warning")

    def stop_soon(self) -> None:
        """Begin stopping the engine now (returns at once): called when the console starts to
        close, so the engine's loops wind down while the screens are taken down."""
        if self._stopping is None:
            if self.engine is not None:
                self.engine.halt()  # now, not once the app's teardown lets the loop run
            self._stopping = asyncio.ensure_future(self._stop())

    async def stop(self) -> None:
        self.stop_soon()
        assert self._stopping is not None
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        if self._task is not None:
            if not self._task.done():
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.engine is not None:
            await self.engine.stop()
