"""Columns size to the terminal: at 80x24 nothing important is cut (titles, a target's error,
the footer's keys), wide terminals show more, and a resize lays the screen out again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.console_app import NOW, at, make_app, seed
from support.pilot import command, started, until
from textual.widgets import DataTable, Static
from textual.widgets._footer import FooterKey

from engine.incidents import services
from engine.storage.db import close_database, open_database
from pulseguard_tui.screens.maintenance import MaintenanceScreen
from pulseguard_tui.screens.targets import TargetsScreen
from pulseguard_tui.widgets.incident_table import columns_for

LONG_TITLE = "Checkout API returns 500s for every EU customer paying by card"  # 62 characters


@pytest.fixture
async def sdb(sqlite_database: Any, migrated_template: Any) -> AsyncIterator[Any]:
    migrated_template.copy_sqlite(sqlite_database.path)
    await open_database(sqlite_database)
    try:
        yield sqlite_database
    finally:
        await close_database()


def widths(cols: list[tuple[str, str, int]]) -> dict[str, int]:
    return {field: w for field, _, w in cols}


def test_fixed_columns_and_the_title_takes_the_rest() -> None:
    for width in (79, 91, 119, 200):
        cols = widths(columns_for(width, len(LONG_TITLE)))
        assert sum(cols.values()) + len(cols) - 1 == width  # the row fills the table exactly
        assert (cols["key"], cols["severity"], cols["ack"], cols["age"]) == (8, 6, 3, 5)
    narrow = widths(columns_for(79, len(LONG_TITLE)))
    assert narrow["title"] >= 36 and "services" not in narrow  # the title, not the services, keeps its room
    # The list beside the detail on a 160-column terminal is 91 cells: the title gets more
    # than the 27 cells it used to, and the status is spelled out.
    split = widths(columns_for(91, len(LONG_TITLE)))
    assert split["title"] >= 36 and split["status"] == 13
    wide = widths(columns_for(200, len(LONG_TITLE)))
    assert wide["title"] >= len(LONG_TITLE) and {"assignee", "services"} <= set(wide)
    # Short titles leave room for the optional columns even on 80 columns.
    assert {"assignee", "services"} <= set(widths(columns_for(79, 20)))


async def test_long_title_is_shown_whole_at_160_columns_and_follows_a_resize(sdb: Any) -> None:
    await seed()
    await services.create_incident(title=LONG_TITLE, severity="critical", actor="monitor", at=at(1))
    app = make_app(sdb)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        await until(pilot, lambda: screen.table.selected_key is not None, what="rows")
        row = next(i for i in range(1, 12) if "INC-9" in screen.table.render_line(i).text)
        assert LONG_TITLE[:39] in screen.table.render_line(row).text
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        line = screen.table.render_line(row).text
        assert len(line) <= 80 and LONG_TITLE[:36] in line


async def test_resolved_incidents_say_whether_they_were_acknowledged(sdb: Any) -> None:
    """ACK on a resolved incident says what happened: `yes` once acknowledged (it said "-",
    as if nobody had), `no` when resolved without one; the loud `NO` stays for open incidents
    that still wait for someone."""
    await seed()  # INC-1 acknowledged by alice; INC-8 resolved without an acknowledgement
    await services.resolve("INC-1", "alice", root_cause="release 4.2", solution="rolled back", category="deployment", at=at(2))
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(app, pilot)
        await pilot.press("x")  # resolved incidents too
        await until(pilot, lambda: any(r["key"] == "INC-8" for r in screen.table.loaded_rows()), what="resolved rows")
        await pilot.pause(0.1)
        cols = columns_for(screen.table.size.width, screen.table._longest_title())
        start = sum(w + 1 for field, _, w in cols[: [f for f, _, _ in cols].index("ack")])

        def ack(key: str) -> str:
            line = next(screen.table.render_line(i).text for i in range(1, 20) if screen.table.render_line(i).text.startswith(key + " "))
            return line[start : start + 3].strip()

        assert (ack("INC-1"), ack("INC-8")) == ("yes", "no")
        assert ack("INC-2") == "NO"  # open, nobody acknowledged


async def test_targets_fit_80_columns_and_the_selected_error_is_whole(sdb: Any) -> None:
    await seed()
    app = make_app(sdb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await command(pilot, "targets")
        await until(pilot, lambda: isinstance(app.screen, TargetsScreen), what="targets")
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 3, what="three targets")
        await pilot.pause(0.1)
        assert not table.max_scroll_x, "the table fits the terminal: nothing to scroll sideways"
        info = str(app.screen.query_one("#targets-info", Static).render())
        assert "checkout-api: HTTP 500 (expected 2xx or 3xx)" in info  # the first row is selected
        await pilot.resize_terminal(160, 48)
        await until(pilot, lambda: "TREND" in [str(c.label) for c in table.columns.values()], what="re-layout")
        name, *_, error = table.get_row_at(0)
        assert name == "checkout-api" and error == "HTTP 500 (expected 2xx or 3xx)"


async def test_maintenance_fits_80_columns(sdb: Any) -> None:
    await seed()
    await services.create_maintenance(
        title="Upgrade every database replica in the EU region to PostgreSQL 17",
        starts_at=at(10),
        ends_at=at(-60),
        actor="carol",
        services=["database", "checkout", "payments", "search"],
        at=at(0),  # the console's frozen clock: the window is current then
    )
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await command(pilot, "maintenance")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen), what="maintenance")
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2, what="two windows")
        await pilot.pause(0.1)
        assert not table.max_scroll_x, "the table fits the terminal: nothing to scroll sideways"
        for i in range(2):  # the times are never the ones cut
            assert "…" not in str(table.get_row_at(i)[5]) + str(table.get_row_at(i)[6])
        await pilot.press("down")
        info = app.screen.query_one("#windows-info", Static)
        await until(
            pilot,
            lambda: "Upgrade every database replica in the EU region to PostgreSQL 17" in str(info.render()),
            what="the selected window whole below the table",
        )


async def test_footer_keys_fit_80_columns_on_the_post_mortem_tab(sdb: Any) -> None:
    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("7")
        await pilot.pause(0.3)

        def keys() -> list[FooterKey]:
            return [k for k in app.screen.query(FooterKey) if "-command-palette" not in k.classes]

        await until(pilot, lambda: any(k.key == "S" for k in keys()), what="post-mortem keys in the footer")
        await pilot.pause(0.2)
        palette = next(k for k in app.screen.query(FooterKey) if "-command-palette" in k.classes)
        assert max(k.region.right for k in keys()) <= palette.region.x  # nothing runs under or past it
        shown = {k.key for k in keys()}
        assert {"S", "P", "question_mark"} <= shown


async def test_the_tab_underline_follows_the_narrow_tabs(sdb: Any) -> None:
    """Beside the list the detail's tabs lose their right padding; Tabs move the underline on a
    relabel, not on a padding change, so it was left one cell longer than the active tab."""
    from textual.widgets import Tabs
    from textual.widgets._tabs import Underline

    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        assert screen.detail.has_class("-narrow-tabs")
        tabs = screen.detail.query_one(Tabs)

        def underline_under_active() -> bool:
            tab = tabs.query_one("#tabs-list > Tab.-active")
            span = tab.virtual_region.shrink(tab.styles.gutter).column_span
            underline = tabs.query_one(Underline)
            return (underline.highlight_start, underline.highlight_end) == span and span[1] - span[0] == tab.label.cell_length

        await until(pilot, underline_under_active, what="the underline under the active tab")
        await pilot.press("3")  # Updates
        await until(pilot, lambda: screen.detail.active_tab == "updates" and underline_under_active(), what="the underline under Updates")
