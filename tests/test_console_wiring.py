"""Features wired into the console: the Post-mortem tab of the incident detail, the action
registry entries of the Analytics screen and the Post-mortem tab (help, palette, keymap)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList, TextArea

from engine import postmortem
from pulseguard_tui.actions import ACTIONS, for_scope
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.screens.analytics import OWN_BINDINGS, AnalyticsScreen
from pulseguard_tui.screens.help import help_text
from pulseguard_tui.widgets.postmortem import PostmortemView
from snapshots.console_app import make_app, seed
from test_console_workflows import main, select_row, until


@pytest.fixture
async def console(db: Any) -> AsyncIterator[tuple[PulseGuardApp, Pilot]]:
    await seed()
    app = make_app(db)
    async with app.run_test(size=(100, 34)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        yield app, pilot


def pm_text(app: PulseGuardApp) -> str:
    return str(main(app).query_one("#pm-summary").render())


async def test_postmortem_tab_edits_and_follows_the_feed(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await select_row(pilot, "INC-1")
    view = main(app).query_one(PostmortemView)
    assert view.doc is None  # not loaded until its tab is shown
    await pilot.press("7")
    await until(pilot, lambda: main(app).detail.active_tab == "postmortem", what="post-mortem tab")
    await until(pilot, lambda: view.doc is not None and view.doc["key"] == "INC-1", what="document loaded")
    assert "INC-1 post-mortem" in pm_text(app) and "no summary yet" in pm_text(app)
    assert app.focused is view.query_one("#pm-timeline", OptionList)  # its keys work at once

    await pilot.press("S")
    await until(pilot, lambda: type(app.screen).__name__ == "SummaryForm", what="summary form")
    app.screen.query_one("#f-summary", TextArea).text = "Release 4.2 broke checkout."
    await pilot.press("ctrl+s")
    await until(pilot, lambda: type(app.screen).__name__ == "IncidentsScreen", what="form closed")
    doc = await postmortem.postmortem_document("INC-1")
    assert doc["postmortem"]["summary"] == "Release 4.2 broke checkout."
    assert doc["postmortem"]["stored"]
    await until(pilot, lambda: "Release 4.2 broke checkout." in pm_text(app), what="summary shown")

    # A change made elsewhere (another console, the CLI) arrives through the feed.
    await postmortem.update_postmortem("INC-1", "bob", summary="Rollback of 4.2 fixed checkout.")
    await until(pilot, lambda: "Rollback of 4.2 fixed checkout." in pm_text(app), what="feed reload", timeout=5)

    # Another incident: the tab follows the selection.
    await pilot.press("escape")
    await until(pilot, lambda: app.focused is main(app).table, what="Esc returns to the list")
    await select_row(pilot, "INC-2")
    await until(pilot, lambda: view.doc is not None and view.doc["key"] == "INC-2", what="INC-2 post-mortem")
    assert "no summary yet" in pm_text(app)


async def test_postmortem_tab_is_read_only_in_a_readonly_console(db: Any) -> None:
    await seed()
    app = make_app(db, readonly=True)
    async with app.run_test(size=(100, 34)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        await pilot.press("7")
        view = screen.query_one(PostmortemView)
        await until(pilot, lambda: view.doc is not None, what="document loaded")
        await pilot.press("S")
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "IncidentsScreen"
        assert not (await postmortem.postmortem_document("INC-1"))["postmortem"]["stored"]


async def test_palette_runs_a_postmortem_action(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.commands import ConsoleCommands

    app, pilot = console
    screen = main(app)
    provider = ConsoleCommands(screen)
    entries = {name: run for name, _, run in provider._entries()}
    assert "Post-mortem: edit the summary" in entries and "Previous period" not in entries
    await entries["Post-mortem: edit the summary"]()
    await until(pilot, lambda: type(app.screen).__name__ == "SummaryForm", what="summary form from the palette")
    assert screen.detail.active_tab == "postmortem"
    assert app.screen.doc["key"] == "INC-1"


def test_registry_lists_the_analytics_and_postmortem_keys() -> None:
    # The analytics screen takes its bindings from the registry: same ids, same keys.
    registry = {(b.id, b.key) for b in AnalyticsScreen.BINDINGS}
    assert registry == {(b.id, b.key) for b in OWN_BINDINGS}
    # The Post-mortem tab's own bindings are all in the registry (help, palette, keymap).
    listed = {(a.id, a.key, a.action) for a in for_scope("postmortem")}
    assert {(b.id, b.key, b.action) for b in PostmortemView.BINDINGS} == listed
    text = help_text(None)
    assert "Post-mortem tab" in text and "Analytics" in text and "Previous period" in text
    assert len({a.id for a in ACTIONS}) == len(ACTIONS)
