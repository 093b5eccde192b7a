"""Maintenance windows as the engine sees them: which targets are covered right now, and when
a window ends (so what still fails is evaluated at once).

Windows are rows (engine.incidents.services creates and ends them, from the CLI, the API or the
console). The tracker keeps the current and soon-starting windows in memory, refreshed every
few seconds, and arms a timer at each known end; `covered_now` asks the database directly,
for the moment just before an incident would be opened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from engine.storage.models import MaintenanceWindow

log = logging.getLogger("pulseguard.monitor.maintenance")

UTC = UTC


@dataclass(frozen=True)
class Window:
    id: int
    title: str
    services: frozenset[str]
    targets: frozenset[str]
    starts: float
    ends: float

    def covers(self, target: str, service: str | None, at: float) -> bool:
        if not self.starts <= at < self.ends:
            return False
        return target in self.targets or (service is not None and service in self.services)


def _window(row: MaintenanceWindow) -> Window:
    ends = row.ends_at
    if row.ended_at is not None and row.ended_at < ends:
        ends = row.ended_at
    return Window(
        row.id,
        row.title,
        frozenset(row.services or ()),
        frozenset(row.targets or ()),
        row.starts_at.timestamp(),
        ends.timestamp(),
    )


async def windows_between(start: datetime, end: datetime) -> list[Window]:
    """Windows not ended early that overlap [start, end)."""
    rows = await MaintenanceWindow.filter(ended_at=None, starts_at__lt=end, ends_at__gt=start)
    return [_window(r) for r in rows]


async def covered_now(target: str, service: str | None) -> bool:
    now = datetime.now(UTC)
    return any(w.covers(target, service, now.timestamp()) for w in await windows_between(now, now + timedelta(seconds=1)))


class MaintenanceTracker:
    """In-memory view of current windows; calls `on_end(window)` when one ends."""

    def __init__(self, on_end: Callable[[Window], None], *, refresh: float = 1.0, lookahead: float = 60.0) -> None:
        self.on_end = on_end
        self.refresh_interval = refresh
        self.lookahead = lookahead
        self.windows: dict[int, Window] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._ended: set[int] = set()

    def covers(self, target: str, service: str | None, at: float | None = None) -> bool:
        when = time.time() if at is None else at
        return any(w.covers(target, service, when) for w in self.windows.values())

    def active(self, at: float | None = None) -> list[Window]:
        when = time.time() if at is None else at
        return [w for w in self.windows.values() if w.starts <= when < w.ends]

    async def refresh(self) -> None:
        now = datetime.now(UTC)
        current = {w.id: w for w in await windows_between(now, now + timedelta(seconds=self.lookahead))}
        for wid, old in list(self.windows.items()):
            if wid not in current:
                # Ended early (or deleted) since the last look.
                self._finish(old)
        for wid, window in current.items():
            if wid in self._ended:
                continue
            known = self.windows.get(wid)
            self.windows[wid] = window
            if known is None or known.ends != window.ends:
                self._arm(window)

    def _arm(self, window: Window) -> None:
        old = self._timers.pop(window.id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, window.ends - time.time())
        self._timers[window.id] = loop.call_later(delay, self._finish, window)

    def _finish(self, window: Window) -> None:
        if window.id in self._ended:
            return
        self._ended.add(window.id)
        self.windows.pop(window.id, None)
        timer = self._timers.pop(window.id, None)
        if timer is not None:
            timer.cancel()
        try:
            self.on_end(window)
        except Exception:
            log.exception("re-evaluating after maintenance window %s failed", window.id)

    async def run(self, halt: asyncio.Event) -> None:
        from engine.core.halt import pause

        while not halt.is_set():
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading maintenance windows failed")
            if await pause(halt, self.refresh_interval):
                return

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
