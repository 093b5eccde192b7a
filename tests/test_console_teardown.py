"""Closing the console while work is in flight: no screen's worker, clock tick or feed batch
reaches a widget that is already gone (which would end the console with a traceback).

Both tests close the console as every pilot test does, by leaving `run_test`: Textual then
removes the screens while the app's message loop, its timers and its workers still run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from support.console_app import NOW, make_app, seed
from support.pilot import main, until
from textual.worker import WorkerState

from engine.api.local import LocalEngine
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.engine_host import monitor_queries
from pulseguard_tui.screens.maintenance import MaintenanceScreen
from pulseguard_tui.settings import ConsoleSettings


class HeldEngine(LocalEngine):
    """The real engine over the test database, except that the maintenance list, once read, can
    be held back until a condition holds: its answer then arrives in the middle of the removal
    of the screen that asked for it (no timing luck needed)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release: Callable[[], bool] | None = None
        self.held = asyncio.Event()

    async def list_maintenance(self, include_ended: bool = False) -> list[dict[str, Any]]:
        rows = await super().list_maintenance(include_ended)
        if self.release is not None:
            self.held.set()
            while not self.release():
                await asyncio.sleep(0)
        return rows


async def test_closing_while_a_screen_waits_for_the_database(db: Any) -> None:
    """Leaving `run_test` removes the screens while the app, its workers and timers still run
    (quitting with q stops the workers first); a screen's worker must stop when its screen's
    removal begins, before the widgets it fills are gone."""
    await seed()
    api = HeldEngine("alice", role="console", db_label=db.label)
    api.targets_provider = monitor_queries()
    app = PulseGuardApp(api, ConsoleSettings(remember_theme=False), clock=lambda: NOW)
    async with app.run_test(size=(100, 34)) as pilot:
        await app.switch_mode("maintenance")
        screen = app.screen
        assert isinstance(screen, MaintenanceScreen)
        await until(pilot, lambda: bool(screen.windows), what="maintenance windows")
        # The answer comes back only once the screen's widgets are gone (or never).
        api.release = lambda: not screen.query("#windows-info")
        screen.action_toggle_ended()
        await api.held.wait()
        workers = [w for w in app.workers if w.node is screen and w.group == "maintenance"]
        assert workers and workers[-1].state == WorkerState.RUNNING
    # Cancelled when the screen's removal began, not failed on a widget that had gone.
    assert workers[-1].state == WorkerState.CANCELLED


async def test_clock_and_feed_reach_no_screen_while_the_console_closes(db: Any) -> None:
    """The app's clock and the change feed run on their own tasks; here they tick and deliver a
    batch (a new critical incident, which every live screen hears of) at every turn of the
    event loop, also while the screens are being taken down."""
    await seed()
    app = make_app(db)
    batch = [{"id": 1_000_000, "kind": "created", "incident": "INC-1", "summary": "Checkout down", "data": {"severity": "critical"}}]
    errors: list[BaseException] = []
    ticks = 0
    closing = False

    async def clock() -> None:
        nonlocal ticks
        while not closing:
            try:
                app._tick()
                ticks += 1
            except Exception as exc:
                errors.append(exc)
            await asyncio.sleep(0)

    async def feed() -> None:
        while not closing:
            try:
                await app.on_feed_batch(batch)
            except Exception as exc:
                errors.append(exc)
            await asyncio.sleep(0)

    async with app.run_test(size=(100, 34)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        for mode in ("targets", "maintenance", "oncall", "analytics", "incidents"):
            await app.switch_mode(mode)
            await pilot.pause()
        tasks = [asyncio.create_task(clock()), asyncio.create_task(feed())]
        await until(pilot, lambda: ticks > 10, what="the clock to tick")
        before = ticks
    closing = True
    await asyncio.gather(*tasks)
    assert ticks > before  # it went on ticking while the console closed
    assert errors == []
