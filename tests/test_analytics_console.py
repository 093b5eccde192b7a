"""The console's Analytics screen: the same figures as the report, its charts, period keys,
live reload from the change feed, and 80x24."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import pytest
from support.analytics import FEBRUARY, MARCH, make
from support.console_app import make_app
from support.pilot import until
from textual_plotext import PlotextPlot

from engine.incidents import services
from engine.storage.db import close_database, open_database
from pulseguard_tui.screens.analytics import AnalyticsScreen, _shift_month


@pytest.fixture
async def sdb(sqlite_database: Any, migrated_template: Any) -> AsyncIterator[Any]:
    migrated_template.copy_sqlite(sqlite_database.path)  # conftest's once-migrated schema
    await open_database(sqlite_database)
    try:
        for spec in FEBRUARY + MARCH:
            await make(spec)
        yield sqlite_database
    finally:
        await close_database()


async def analytics(app: Any, pilot: Any) -> AnalyticsScreen:
    await app.switch_mode("analytics")
    screen = app.screen
    assert isinstance(screen, AnalyticsScreen)
    await until(pilot, lambda: screen.report is not None, what="first report")
    return screen


def summary(screen: AnalyticsScreen) -> str:
    return str(screen.query_one("#analytics-summary").render())


async def test_the_screen_shows_the_month_of_the_clock_with_its_charts(sdb: Any) -> None:
    app = make_app(sdb, follow_feed=False)  # the console's clock says 2026-03-02
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await analytics(app, pilot)
        report = screen.report
        assert report["period"]["label"] == "2026-03" and report["total_incidents"] == 8
        text = summary(screen)
        assert "Incidents       8" in text and "incident prevention rate  50.0% (2 of 4" in text
        assert "↑ worsening" in text and "database" in text
        period = str(screen.query_one("#analytics-period").render())
        assert "2026-03 vs 2026-02" in period
        weekly = screen.query_one("#chart-weekly", PlotextPlot)
        rendered = weekly.render().plain
        assert "Incidents per week by severity" in rendered
        assert "Root causes" in screen.query_one("#chart-causes", PlotextPlot).render().plain
        assert "MTTR per week" in screen.query_one("#chart-mttr", PlotextPlot).render().plain
        assert not screen.query_one("#analytics-body").has_class("-wide")

        await pilot.press("left_square_bracket")
        await until(pilot, lambda: screen.report["period"]["label"] == "2026-02", what="previous month")
        assert screen.report["total_incidents"] == 4
        await pilot.press("y")
        await until(pilot, lambda: screen.report["period"]["label"].startswith("2026-01-01"), what="year")
        # January 1st up to the clock's day (March 2nd): February's four plus i8 and i1.
        assert screen.report["total_incidents"] == 6
        await pilot.press("m")
        await until(pilot, lambda: screen.report["period"]["label"] == "2026-02", what="back to the month")


async def test_next_stops_at_the_current_period_and_the_year_says_to_date(sdb: Any) -> None:
    """`]` at the current month or year stays there and says so: it stepped into months to
    come, empty reports of nothing. The current year reads as "to date" (January 1st to today),
    not as a whole year."""
    app = make_app(sdb, follow_feed=False)  # the console's clock says 2026-03-02
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await analytics(app, pilot)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "already at the current month" in [n.message for n in app._notifications], what="notice")
        await pilot.pause(0.2)
        assert screen.month == "2026-03" and screen.report["period"]["label"] == "2026-03"

        await pilot.press("y")
        await until(pilot, lambda: screen.report["period"]["label"].startswith("2026-01-01"), what="year")
        period = str(screen.query_one("#analytics-period").render())
        assert period.startswith("2026 to date: 2026-01-01 – 2026-03-02 vs ")
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "already at the current year" in [n.message for n in app._notifications], what="notice")
        await pilot.pause(0.2)
        assert screen.year == 2026 and screen.report["period"]["label"] == "2026-01-01 – 2026-03-02"

        await pilot.press("left_square_bracket")  # a past year is the whole calendar year
        await until(pilot, lambda: screen.report["period"]["label"] == "2025-01-01 – 2025-12-31", what="2025")
        assert "to date" not in str(screen.query_one("#analytics-period").render())
        await pilot.press("right_square_bracket")  # back to the current one is still allowed
        await until(pilot, lambda: screen.report["period"]["label"] == "2026-01-01 – 2026-03-02", what="2026 again")


async def test_another_period_opens_at_its_top(sdb: Any) -> None:
    """Scrolled down to the charts, `[` kept the scroll: the earlier month's shorter report
    showed an empty chart box under its headline until Home."""
    app = make_app(sdb, follow_feed=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await analytics(app, pilot)
        scroll = screen.query_one("#analytics-scroll")
        scroll.scroll_end(animate=False)
        await until(pilot, lambda: scroll.scroll_y > 0, what="scrolled down to the charts")
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: screen.report is not None and screen.report["period"]["label"] == "2026-02", what="February")
        assert scroll.scroll_y == 0


async def test_the_months_follow_the_configured_zone_as_the_report_does(sdb: Any, monkeypatch: Any) -> None:
    """With `[engine] timezone` set, the console counts a month's days in that zone, as
    `pulseguard report` does; it counted them in UTC and said so."""
    from datetime import datetime

    from engine.core import timefmt
    from engine.learning import analytics as reports

    monkeypatch.setattr(timefmt, "_configured", None)
    timefmt.set_display_zone("Pacific/Auckland")  # +13:00 in February and March 2026
    # 12:00 UTC on February 28th is 01:00 on March 1st in Auckland: March there.
    app = make_app(sdb, follow_feed=False, clock=lambda: datetime(2026, 2, 28, 12, tzinfo=UTC))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await analytics(app, pilot)
        expected = await reports.build_report(reports.month_period("2026-03", "Pacific/Auckland"))
        assert screen.report["period"]["label"] == "2026-03"
        assert screen.report["period"]["timezone"] == "Pacific/Auckland"
        # p4 (23:59:59 UTC on February 28th) falls on March 1st in Auckland.
        assert screen.report["total_incidents"] == expected["total_incidents"] == 9
        assert "(Pacific/Auckland)" in str(screen.query_one("#analytics-period").render())


async def test_new_incidents_reload_the_report(sdb: Any) -> None:
    app = make_app(sdb)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await analytics(app, pilot)
        assert screen.query_one("#analytics-body").has_class("-wide")
        screen._last_reload = 0.0  # no throttling wait in the test
        from datetime import datetime

        await services.create_incident(title="late one", severity="low", actor="x", at=datetime(2026, 3, 2, 11, tzinfo=UTC))
        await until(pilot, lambda: screen.report["total_incidents"] == 9, timeout=10, what="reload from the feed")


def test_month_stepping_crosses_years() -> None:
    assert _shift_month("2026-01", -1) == "2025-12"
    assert _shift_month("2025-12", 1) == "2026-01"
    assert _shift_month("2026-03", -14) == "2025-01"


def test_report_command_draws_the_charts_once_the_renderer_is_installed(sqlite_database: Any) -> None:
    import subprocess
    import sys

    from support.db import REPO, cli_env

    async def fill() -> None:
        await open_database(sqlite_database)
        try:
            for spec in MARCH:
                await make(spec)
        finally:
            await close_database()

    import asyncio

    asyncio.run(fill())
    code = (
        "import sys; from pulseguard_tui.cli import install_report_charts; install_report_charts(); "
        "from engine.cli.main import main; sys.exit(main(['report', '--month', '2026-03', '--width', '80']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=cli_env(sqlite_database), timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for title in ("Incidents per week by severity", "MTTR per week (hours)", "Root causes (% of resolved)"):
        assert title in out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "██ critical" in out  # the legend names the severities
