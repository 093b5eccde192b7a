"""Following the engine's change feed: each batch of events goes to every screen that is alive;
a new critical incident rings the bell and is highlighted for a while."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from textual.app import App
from textual.screen import Screen

from pulseguard_tui.lifecycle import is_live
from pulseguard_tui.settings import ConsoleSettings

HIGHLIGHT_SECONDS = 60.0


class FeedFollower(App[None]):
    """The app's half that follows the feed; PulseGuardApp sets these attributes and overrides
    `refresh_overview`."""

    api: Any
    ready: asyncio.Event
    settings: ConsoleSettings
    feed_cursor: int | None
    feed_error: str | None

    async def refresh_overview(self) -> None:
        raise NotImplementedError

    def _live_screens(self) -> list[Screen[Any]]:
        """The screens the clock, the feed and the status line may reach: mounted and not being
        removed (while the console closes, none)."""
        screens: list[Screen[Any]] = []
        for stack in self._screen_stacks.values():
            for screen in stack:
                if screen not in screens and is_live(screen):
                    screens.append(screen)
        for installed in self._installed_screens.values():
            if isinstance(installed, Screen) and installed not in screens and is_live(installed):
                screens.append(installed)
        return screens

    def _live_current_screen(self) -> Screen[Any] | None:
        """The screen on top, unless it is being removed (or the console is closing)."""
        stack = self.screen_stack
        return stack[-1] if stack and is_live(stack[-1]) else None

    # --- the change feed ------------------------------------------------------------------------------

    async def _follow(self) -> None:
        """Follow the engine's change feed for as long as the app runs."""
        await self.ready.wait()
        backoff = 0.5
        while True:
            try:
                if self.feed_cursor is None:
                    self.feed_cursor = await self.api.latest_cursor()
                async for batch in self.api.subscribe(self.feed_cursor):
                    if batch:
                        self.feed_cursor = batch[-1]["id"]
                        await self.on_feed_batch(batch)
                    backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup: report it, then try again
                if self.feed_error is None:
                    self.notify(f"change feed interrupted: {exc}; retrying", severity="warning")
                self.feed_error = str(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                return

    async def on_feed_batch(self, events: list[dict[str, Any]]) -> None:
        self.feed_error = None
        for e in events:
            if e.get("kind") == "created" and (e.get("data") or {}).get("severity") == "critical":
                self._new_critical(e)
        if any(e.get("incident") for e in events) or any(e.get("kind", "").startswith("target") for e in events):
            await self.refresh_overview()
        for screen in self._live_screens():
            handler = getattr(screen, "on_feed", None)
            if handler is not None:
                await handler(events)

    def _new_critical(self, event: dict[str, Any]) -> None:
        key = event.get("incident") or "?"
        if self.settings.bell:
            self.bell()
        self.notify(event.get("summary") or f"{key} opened", title="New critical incident", severity="error", timeout=15)
        until = time.monotonic() + HIGHLIGHT_SECONDS
        for screen in self._live_screens():
            table = getattr(screen, "table", None)
            if table is not None and hasattr(table, "highlight"):
                table.highlight(key, until)
