"""Features wired into the console: the Post-mortem tab of the incident detail, the action
registry entries of the Analytics screen and the Post-mortem tab (help, palette, keymap)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from support.configs import ONCALL_CONFIG
from support.console_app import make_app, seed
from support.pilot import main, select_row, table_rows, until
from textual.pilot import Pilot
from textual.widgets import OptionList, TextArea

from engine.learning import postmortem
from pulseguard_tui.actions import ACTIONS, for_scope
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.screens.analytics import OWN_BINDINGS, AnalyticsScreen
from pulseguard_tui.screens.help import help_text
from pulseguard_tui.widgets.postmortem import PostmortemView


def pm_text(app: PulseGuardApp) -> str:
    return str(main(app).query_one("#pm-summary").render())


async def test_postmortem_tab_edits_and_follows_the_feed(console_on_each_backend: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console_on_each_backend
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


async def test_postmortem_tab_is_read_only_in_a_readonly_console(sdb: Any) -> None:
    await seed()
    app = make_app(sdb, readonly=True)
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


async def test_oncall_screen_shows_who_is_on_call(db: Any, tmp_path: Any) -> None:
    from engine.config.loading import load_config
    from pulseguard_tui.screens.oncall import OncallScreen

    path = tmp_path / "pulseguard.toml"
    path.write_text(ONCALL_CONFIG)
    await seed(targets=False)
    app = make_app(db)  # the clock is fixed at Monday 2026-03-02 12:00 UTC (13:00 in Amsterdam)
    app.config = load_config(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("oncall")
        screen = app.screen
        assert isinstance(screen, OncallScreen)
        await until(pilot, lambda: screen.overview is not None, what="on-call overview")
        rows = {r[0]: r for r in table_rows(screen, "#oncall-now")}
        assert set(rows) == {"primary", "secondary"}
        # 52 weeks after 2025-03-03: alice, bob, carol, … → bob this week, until Monday 9 March 09:00.
        assert rows["primary"][1] == "bob"
        # 80 columns: no SINCE (the shifts table's first row has it), the next person by id.
        assert rows["primary"][2] == "Mon 09 Mar 09:00"  # Amsterdam time, named below
        assert rows["primary"][3] == "carol in 6d 20h"
        assert rows["secondary"][3].endswith("in 20h 0m")  # daily hand-off at 09:00 tomorrow
        shifts = table_rows(screen, "#oncall-shifts")
        assert "Shifts of primary" in str(screen.query_one("#oncall-shifts-title").render())
        assert "times in Europe/Amsterdam" in str(screen.query_one("#oncall-info").render())
        assert [s[0] for s in shifts] == ["bob", "carol", "Alice Jansen (alice)"]  # this week and two more
        # The secondary schedule's shifts: one a day.
        await pilot.press("down")
        await until(pilot, lambda: screen.selected == "secondary", what="secondary picked")
        shifts = table_rows(screen, "#oncall-shifts")
        assert len(shifts) == 15 and shifts[0][1] == "Mon 02 Mar 09:00"
        assert [s[0] for s in shifts[:3]] == [
            rows["secondary"][1],
            *(["carol", "bob"] if rows["secondary"][1] == "bob" else ["bob", "carol"]),
        ]
        # A wide terminal has room for the zone's name in every cell.
        await pilot.resize_terminal(160, 48)
        await until(pilot, lambda: table_rows(screen, "#oncall-now")[0][2].endswith(" CET"), what="zone-named times")
        assert {r[0]: r for r in table_rows(screen, "#oncall-now")}["primary"][2] == "Mon 2026-03-02 09:00 CET"


async def test_oncall_screen_without_schedules_says_so(sdb: Any) -> None:
    from pulseguard_tui.screens.oncall import OncallScreen

    await seed(targets=False)
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("oncall")
        screen = app.screen
        assert isinstance(screen, OncallScreen)
        await until(pilot, lambda: "no on-call schedules" in str(screen.query_one("#oncall-info").render()), what="no schedules message")
        assert table_rows(screen, "#oncall-now") == []


async def test_detail_header_counts_down_to_escalation_then_names_who_acknowledged(db: Any) -> None:
    from datetime import datetime, timedelta

    from support.pilot import detail_text, open_form

    from engine.incidents import services
    from engine.storage.models import Incident
    from pulseguard_tui.forms.incident import AcknowledgeScreen

    inc = await services.create_incident(title="Checkout down", severity="critical", actor="engine", services=["checkout"])
    due = datetime.now(UTC) + timedelta(minutes=5)
    # The escalation planner writes this field when a policy applies (engine/escalation/changes.py);
    # the test writes it directly so the console can be checked without running the engine.
    await Incident.filter(id=inc.id).update(escalation={"generation": 1, "level": 0, "next_at": due.isoformat()})
    shift = [timedelta(0)]
    app = make_app(db, clock=lambda: datetime.now(UTC) + shift[0])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.detail.detail is not None, what="detail")

        def header() -> str:
            return detail_text(app, "#detail-header")

        await until(pilot, lambda: "escalates in 4:5" in header(), what="countdown")
        first = header()
        await until(pilot, lambda: header() != first, timeout=2.5, what="the countdown ticks")
        assert "escalates in 4:5" in header()
        shift[0] = timedelta(minutes=2)  # two minutes later, without waiting for them
        await until(pilot, lambda: "escalates in 2:5" in header(), timeout=2.5, what="countdown after 2 minutes")

        await open_form(pilot, "a", AcknowledgeScreen)
        await pilot.press("enter")
        await until(pilot, lambda: "acknowledged by alice" in header(), what="acknowledged")
        assert "escalates" not in header()
        shift[0] += timedelta(minutes=2)
        await until(pilot, lambda: "acknowledged by alice 2m ago" in header(), timeout=2.5, what="ack age ticks")
