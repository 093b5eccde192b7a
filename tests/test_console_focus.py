"""After any modal the next key acts on the list: every modal the action registry opens is
closed both ways (Esc, and its own way of accepting), with a refresh and a toast arriving as it
closes, and the next key must reach the list, never a hidden filter field. An active filter is
always shown with its text and match count; Esc clears it."""

from __future__ import annotations

import pytest
from support.focus import EXPECTED, next_key_acts_on_list, select, walk_every_modal
from support.pilot import main, type_text, until
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, Static

from engine.incidents import queries
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.forms.base import FormScreen
from pulseguard_tui.screens.incidents import IncidentsScreen


# Where focus goes when a modal closes is the console's own doing; the database plays no part,
# so the walk runs once, on SQLite (the `console` fixture).
@pytest.mark.slow
async def test_every_modal_both_ways_then_the_next_key_acts_on_the_list(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    seen = await walk_every_modal(app, pilot)
    assert EXPECTED <= seen, f"not opened: {EXPECTED - seen}"


async def test_a_modal_opened_from_the_filter_field_returns_to_the_list(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    screen = main(app)
    await pilot.press("slash")
    await until(pilot, lambda: screen.focused is screen.query_one("#filter", Input), what="filter field")
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
    await type_text(pilot, "Comment")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await until(pilot, lambda: type(app.screen).__name__ == "CommentScreen", what="comment form")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is screen, what="form closed")
    await next_key_acts_on_list(app, pilot, "palette from the filter field", "")
    assert screen.focused is screen.table


async def test_active_filter_shows_text_and_count_and_esc_clears(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    screen = main(app)
    total = screen.table.total
    await pilot.press("slash")
    await type_text(pilot, "sev:high")
    await pilot.press("enter")
    await until(pilot, lambda: screen.table.total == 2 and screen.focused is screen.table, what="filtered")
    bar = screen.query_one("#filter-bar")
    assert bar.has_class("-shown") and bar.display
    assert screen.query_one("#filter", Input).value == "sev:high"
    assert "2 matches" in str(screen.query_one("#filter-count", Static).render())
    await pilot.press("c")  # a modal over an active filter: it stays shown, and the keys reach the list
    await until(pilot, lambda: isinstance(app.screen, FormScreen), what="comment form")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is screen, what="closed")
    await next_key_acts_on_list(app, pilot, "over an active filter", "sev:high")
    assert bar.display and "2 matches" in str(screen.query_one("#filter-count", Static).render())
    await pilot.press("escape")
    await until(pilot, lambda: screen.table.total == total, what="filter cleared")
    assert not bar.display and screen.filter_text == ""
    assert not screen.query_one("#filter", Input).focusable  # hidden: can never take keys again


async def test_a_on_an_acknowledged_incident_says_who_and_when(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await select(pilot, "INC-1")  # acknowledged by alice 10 minutes before the frozen clock
    await pilot.press("a")
    await pilot.pause(0.3)
    assert isinstance(app.screen, IncidentsScreen), "asked again instead of saying who acknowledged it"
    messages = [n.message for n in app._notifications]
    assert any("INC-1 is already acknowledged by alice" in m and "10m ago" in m for m in messages), messages
    assert (await queries.incident_detail("INC-1"))["acknowledged_by"] == "alice"
