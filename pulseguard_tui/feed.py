"""The console's side of the engine's change feed: follow it from a cursor for as long as the app
runs, hand each batch to every live screen, and announce a new critical incident (bell, toast,
a highlighted row for a while)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from textual.app import ScreenStackError

if TYPE_CHECKING:
    from pulseguard_tui.app import PulseGuardApp

HIGHLIGHT_SECONDS = 60.0


async def follow(app: PulseGuardApp) -> None:
    """Follow the engine's change feed for as long as the app runs."""
    await app.ready.wait()
    backoff = 0.5
    while True:
        try:
            if app.feed_cursor is None:
                app.feed_cursor = await app.api.latest_cursor()
            async for batch in app.api.subscribe(app.feed_cursor):
                if batch:
                    app.feed_cursor = batch[-1]["id"]
                    await app.on_feed_batch(batch)
                backoff = 0.5
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a database hiccup: report it, then try again
            if getattr(app.api, "token_refused", None):
                return  # the header says TOKEN REFUSED; the token is not sent again (RemoteEngine)
            if app.feed_error is None:
                app.notify(f"change feed interrupted: {exc}; retrying", severity="warning")
            app.feed_error = str(exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
        else:
            return


async def deliver(app: PulseGuardApp, events: list[dict[str, Any]]) -> None:
    """One batch: announce new critical incidents, refresh the header, then every live screen."""
    app.feed_error = None
    for e in events:
        if e.get("kind") == "created" and (e.get("data") or {}).get("severity") == "critical":
            announce_critical(app, e)
    if any(e.get("incident") for e in events) or any(e.get("kind", "").startswith("target") for e in events):
        await app.refresh_overview()
    for screen in app.live_screens():
        handler = getattr(screen, "on_feed", None)
        if handler is not None:
            await handler(events)


def announce_critical(app: PulseGuardApp, event: dict[str, Any]) -> None:
    key = event.get("incident") or "?"
    # One this console's own user opened was said by its form ("INC-5 opened (critical)"): a
    # bell and a second, red toast would announce it to the person who just typed it.
    own = bool(app.api.actor) and event.get("actor") == app.api.actor
    if not own:
        if app.settings.bell:
            app.bell()
        text = event.get("summary") or f"{key} opened"
        if form_open(app):  # a toast would cover the form's lower fields at 80x24
            app.held_toasts.append(text)  # the bell rang and the header counts it; shown when the form closes
        else:
            show_critical(app, text)
    until = time.monotonic() + HIGHLIGHT_SECONDS
    for screen in app.live_screens():
        table = getattr(screen, "table", None)
        if table is not None and hasattr(table, "highlight"):
            table.highlight(key, until)


def form_open(app: PulseGuardApp) -> bool:
    try:
        return bool(getattr(app.screen, "holds_toasts", False))
    except ScreenStackError:  # the console is closing: no screen at all
        return False


def show_critical(app: PulseGuardApp, text: str) -> None:
    app.notify(text, title="New critical incident", severity="error", timeout=15)


def show_held(app: PulseGuardApp) -> None:
    """The critical incidents announced while a form was open, now that it has closed."""
    held, app.held_toasts = app.held_toasts, []
    for text in held:
        show_critical(app, text)
