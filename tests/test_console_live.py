"""The console follows the change feed: changes made by other processes show within a second
or two, without losing the selection or the scroll position; a new critical incident rings the
bell and is highlighted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from support.console_app import make_app, seed
from support.db import run_cli
from support.pilot import main, select_row, until

from engine.incidents import services
from pulseguard_tui.forms.base import FormScreen
from pulseguard_tui.screens.incidents import IncidentsScreen


async def test_incident_created_by_another_process_shows_within_two_seconds(db: Any) -> None:
    await seed()
    app = make_app(db)
    bells: list[float] = []
    app.bell = lambda: bells.append(time.monotonic())  # type: ignore[method-assign]
    async with app.run_test(size=(100, 34)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        await select_row(pilot, "INC-3")
        before = screen.table.total
        proc = await asyncio.to_thread(
            run_cli,
            db,
            "incident",
            "create",
            "--title",
            "Database primary down",
            "--severity",
            "critical",
            "--service",
            "database",
            actor="carol",
        )
        assert proc.returncode == 0, proc.stderr
        key = proc.stdout.split()[0]
        # How soon it shows is a benchmark figure; here, that it shows without a key pressed.
        await until(pilot, lambda: key in [r["key"] for r in screen.table.loaded_rows()], timeout=10.0, what=f"{key} in the list")
        assert screen.table.total == before + 1
        # The selection stayed on INC-3 although a row was inserted above it.
        assert screen.table.selected_key == "INC-3"
        assert screen.detail.detail["key"] == "INC-3"
        # A new critical incident rings the bell once and is highlighted in the list.
        await until(pilot, lambda: bells, timeout=1.0, what="bell")
        assert len(bells) == 1
        assert key in screen.table.highlights
        # The header's counts follow too.
        assert app.counts["critical"] == 2


async def test_a_critical_incident_announced_while_a_form_is_open_waits_for_it_to_close(db: Any) -> None:
    """At 80x24 the toast covered the lower fields of an open form (the new-incident form's
    assignee and detection time) for 15 s. The bell rings and the header counts it at once; the
    toast shows when the form closes."""
    await seed()
    app = make_app(db)
    bells: list[float] = []
    app.bell = lambda: bells.append(time.monotonic())  # type: ignore[method-assign]
    said = lambda: [n.message for n in app._notifications if n.title == "New critical incident"]  # noqa: E731
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded, what="first load")
        critical = app.counts.get("critical", 0)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the new-incident form")
        await pilot.press(*"Checkout")
        proc = await asyncio.to_thread(
            run_cli, db, "incident", "create", "--title", "Payments down", "--severity", "critical", actor="carol"
        )
        assert proc.returncode == 0, proc.stderr
        key = proc.stdout.split()[0]
        await until(pilot, lambda: bells and app.counts.get("critical", 0) == critical + 1, what="bell and header count")
        await pilot.pause(0.2)
        assert said() == [], said()
        assert key in app.held_toasts[0]
        assert app.screen.query_one("#f-title").value == "Checkout"  # the form is untouched
        await pilot.press("escape")
        await until(pilot, lambda: said(), what="the toast, once the form closed")
        assert key in said()[0] and app.held_toasts == []


async def test_change_by_another_process_updates_detail_and_keeps_scroll(db: Any) -> None:
    await seed()
    for i in range(60):
        await services.create_incident(title=f"filler {i}", severity="low", actor="seed")
    app = make_app(db)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        await pilot.press("pagedown", "pagedown", "down", "down")
        await until(
            pilot, lambda: screen.detail.detail and screen.detail.detail["key"] == screen.table.selected_key, what="detail follows cursor"
        )
        key = screen.table.selected_key
        scroll_before = screen.table.scroll_y
        cursor_before = screen.table.cursor
        assert scroll_before > 0
        proc = await asyncio.to_thread(run_cli, db, "incident", "comment", key, "seen from the other terminal", actor="bob")
        assert proc.returncode == 0, proc.stderr
        await until(
            pilot,
            lambda: any(c["content"] == "seen from the other terminal" for c in screen.detail.detail.get("comments", [])),
            timeout=10.0,
            what="comment in the detail",
        )
        assert screen.table.selected_key == key
        assert screen.table.scroll_y == scroll_before and screen.table.cursor == cursor_before
        timeline = str(screen.query_one("#timeline-body").render())
        assert "seen from the other terminal" in timeline.splitlines()[0]  # newest first


async def test_bell_can_be_turned_off(db: Any) -> None:
    await seed()
    app = make_app(db, bell=False)
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded, what="load")
        await services.create_incident(title="quiet critical", severity="critical", actor="seed")
        await until(pilot, lambda: any(r["title"] == "quiet critical" for r in screen.table.loaded_rows()), timeout=10.0, what="row")
        await pilot.pause(0.2)
        assert bells == []
        assert isinstance(app.screen, IncidentsScreen)


async def test_a_critical_incident_this_console_opened_is_not_announced_to_it_again(db: Any) -> None:
    """The New form says "INC-n opened (critical)"; the feed's bell and red toast for the same
    incident told the person who had just typed it a second time. Someone else's still ring."""
    await seed()
    app = make_app(db)
    bells: list[float] = []
    app.bell = lambda: bells.append(time.monotonic())  # type: ignore[method-assign]
    said = lambda: [n.message for n in app._notifications if n.title == "New critical incident"]  # noqa: E731
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded, what="first load")
        critical = app.counts.get("critical", 0)
        mine = (await app.api.create_incident(title="Payments down", severity="critical"))["key"]  # what the New form sends
        await until(pilot, lambda: app.counts.get("critical", 0) == critical + 1, what="the header counts it")
        await until(pilot, lambda: mine in screen.table.highlights, what="its row highlighted")
        await pilot.pause(0.3)
        assert (bells, said()) == ([], [])
        theirs = (await services.create_incident(title="Search down", severity="critical", actor="carol")).key
        await until(pilot, lambda: bells and said(), what="the bell and toast for carol's incident")
        assert len(bells) == 1 and len(said()) == 1 and theirs in said()[0]
