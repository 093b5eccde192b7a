"""Follow-ups from the console, at 80x24: `F` adds one to the selected incident (group,
description, owner, due date), `d` marks one done (or open again). Problems show under the
field, the engine's refusals too, and nothing typed is lost; over `--connect` the same keys go
through the REST API, and a viewer's console refuses them with a reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from support.console_app import make_app, seed
from support.pilot import choose, detail_text, main, open_form, seeded_console, select_row, type_text, until
from support.rest import Api, running_api
from test_console_remote import remote_console, seed_two
from textual.pilot import Pilot
from textual.widgets import Input

from engine.incidents import queries, services
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.screens.incidents import IncidentsScreen


@pytest.fixture
async def small_console(sdb: Any) -> AsyncIterator[tuple[PulseGuardApp, Pilot]]:
    """The seeded console as an on-call engineer over SSH sees it: 80x24."""
    async with seeded_console(sdb, size=(80, 24)) as running:
        yield running


@pytest.fixture
async def api(db: Any) -> AsyncIterator[Api]:
    async with running_api() as running:
        yield running


def said(app: PulseGuardApp) -> list[str]:
    return [n.message for n in app._notifications]


async def closed(pilot: Pilot) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, IncidentsScreen), what="form to close")


async def test_shift_f_adds_a_follow_up_with_problems_under_the_fields(small_console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.followups import FollowUpScreen

    app, pilot = small_console
    await select_row(pilot, "INC-3")
    form = await open_form(pilot, "F", FollowUpScreen)
    assert form.focused is form.query_one("#f-description", Input)  # typing starts at once

    await pilot.press("enter")  # nothing typed: refused under the field
    await until(pilot, lambda: form.problems_shown, what="empty description refused")
    assert "must not be empty" in form.problems_shown[0]

    await type_text(pilot, "Alert on search p99 above 1 s")
    await choose(pilot, form, "group", "monitoring_improvements")
    form.query_one("#f-due", Input).focus()
    await type_text(pilot, "next week")
    await pilot.press("ctrl+s")  # a due date the form cannot read: said under it, before asking the engine
    await until(pilot, lambda: form.problems_shown, what="bad due date refused")
    assert "not a date" in form.problems_shown[0]
    form.query_one("#f-due", Input).value = ""
    await type_text(pilot, "2026-03-16")

    form.query_one("#f-owner", Input).focus()
    await type_text(pilot, "bob smith")  # not a name: the engine's refusal lands under the owner
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="engine refusal")
    assert form.query_one("#err-owner").has_class("-shown") and "not a valid name" in form.problems_shown[0]
    assert (await queries.incident_detail("INC-3"))["followups"] == []
    # Nothing typed was lost.
    assert form.query_one("#f-description", Input).value == "Alert on search p99 above 1 s"
    assert form.query_one("#f-due", Input).value == "2026-03-16"

    form.query_one("#f-owner", Input).value = "bob"
    await pilot.press("ctrl+s")
    await closed(pilot)
    rows = (await queries.incident_detail("INC-3"))["followups"]
    assert [(r["group"], r["description"], r["owner"], r["due_date"], r["done"]) for r in rows] == [
        ("monitoring_improvements", "Alert on search p99 above 1 s", "bob", date(2026, 3, 16), False)
    ]
    assert any("follow-up" in m and "INC-3" in m for m in said(app))
    await pilot.press("6")
    await until(pilot, lambda: "Alert on search p99 above 1 s" in detail_text(app, "#resolution-body"), what="resolution tab")


async def test_due_date_may_be_days_from_today(small_console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.followups import FollowUpScreen

    app, pilot = small_console
    await select_row(pilot, "INC-2")
    form = await open_form(pilot, "F", FollowUpScreen)
    await type_text(pilot, "Runbook for provider failover")
    form.query_one("#f-due", Input).focus()
    await type_text(pilot, "7d")
    await pilot.press("ctrl+s")
    await closed(pilot)
    (row,) = (await queries.incident_detail("INC-2"))["followups"]
    assert row["due_date"] == date(2026, 3, 9) and row["group"] == "preventive_measures"  # the console's clock: 2026-03-02


async def test_d_marks_a_follow_up_done_and_open_again(small_console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.followups import FollowUpDoneScreen

    app, pilot = small_console
    await services.add_followup("INC-4", "technical_changes", "Grow the db-2 volume", "carol", owner="carol")
    await services.add_followup("INC-4", "monitoring_improvements", "Alert at 75% disk", "carol")
    await select_row(pilot, "INC-1")
    await select_row(pilot, "INC-4")

    form = await open_form(pilot, "d", FollowUpDoneScreen)
    await choose(pilot, form, "followup", str((await queries.incident_detail("INC-4"))["followups"][1]["id"]))
    await pilot.press("ctrl+s")
    await closed(pilot)
    rows = (await queries.incident_detail("INC-4"))["followups"]
    assert [r["done"] for r in rows] == [False, True]
    assert any("done" in m for m in said(app))
    await pilot.press("6")
    await until(pilot, lambda: "[x] Monitoring improvements: Alert at 75% disk" in detail_text(app, "#resolution-body"), what="tab")
    # The kinds read as words, as the tab's other labels do, not as the engine's field names.
    assert "[ ] Technical changes: Grow the db-2 volume" in detail_text(app, "#resolution-body")
    assert "_" not in detail_text(app, "#resolution-body")

    # The same key on a done one opens it again.
    form = await open_form(pilot, "d", FollowUpDoneScreen)
    await choose(pilot, form, "followup", str(rows[1]["id"]))
    await pilot.press("ctrl+s")
    await closed(pilot)
    assert [r["done"] for r in (await queries.incident_detail("INC-4"))["followups"]] == [False, False]


async def test_d_without_follow_ups_says_so_and_opens_nothing(small_console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = small_console
    await select_row(pilot, "INC-2")
    await pilot.press("d")
    await until(pilot, lambda: any("no follow-ups" in m for m in said(app)), what="explanation")
    assert isinstance(app.screen, IncidentsScreen)


async def test_follow_up_keys_are_in_help_and_refused_read_only(sdb: Any) -> None:
    from pulseguard_tui.screens.help import help_text

    await seed()
    app = make_app(sdb, readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="first load")
        text = help_text(app)
        assert "Add a follow-up" in text and "Mark a follow-up done" in text
        for key in ("F", "d"):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert isinstance(app.screen, IncidentsScreen)
        assert sum("read-only" in m for m in said(app)) == 2
    assert (await queries.incident_detail("INC-1"))["followups"] == []


async def test_follow_ups_over_the_api_added_and_done_as_the_token(api: Api, tmp_path: Path) -> None:
    from pulseguard_tui.forms.followups import FollowUpDoneScreen, FollowUpScreen

    await seed_two()
    async with remote_console(tmp_path, api.url, api.tokens["responder"]) as (app, pilot):
        form = await open_form(pilot, "F", FollowUpScreen)
        await type_text(pilot, "Alert at 75% disk")
        form.query_one("#f-owner", Input).focus()
        await type_text(pilot, "bob smith")  # the API refuses it: under the field, as locally
        await pilot.press("ctrl+s")
        await until(pilot, lambda: form.problems_shown, what="API refusal")
        assert form.query_one("#err-owner").has_class("-shown"), form.problems_shown
        form.query_one("#f-owner", Input).value = "bob"
        await pilot.press("ctrl+s")
        await closed(pilot)
        (row,) = (await queries.incident_detail("INC-2"))["followups"]
        assert row["description"] == "Alert at 75% disk" and row["owner"] == "bob"
        await pilot.press("6")
        await until(pilot, lambda: "Alert at 75% disk" in detail_text(app, "#resolution-body"), what="shown over the API")

        await open_form(pilot, "d", FollowUpDoneScreen)
        await pilot.press("ctrl+s")
        await closed(pilot)
        await until(pilot, lambda: "[x] Preventive measures" in detail_text(app, "#resolution-body"), what="done over the API")
    detail = await queries.incident_detail("INC-2")
    assert detail["followups"][0]["done"] is True
    assert {e["actor"] for e in detail["timeline"] if e["kind"].startswith("followup")} == {"responder-token"}


async def test_a_viewer_token_is_refused_follow_ups_with_a_reason(api: Api, tmp_path: Path) -> None:
    await seed_two()
    await services.add_followup("INC-2", "technical_changes", "Grow the db-2 volume", "carol")
    async with remote_console(tmp_path, api.url, api.tokens["viewer"]) as (app, pilot):
        for key in ("F", "d"):
            await pilot.press(key)
            await pilot.pause(0.2)
            assert isinstance(app.screen, IncidentsScreen)
        assert sum("(viewer) may not change anything" in m for m in said(app)) == 2, said(app)
    assert [r["done"] for r in (await queries.incident_detail("INC-2"))["followups"]] == [False]


async def test_the_engine_refusing_a_viewer_is_said_in_the_form(api: Api, tmp_path: Path) -> None:
    """A console that believed it could write (its token was demoted meanwhile) gets the API's
    refusal in the form, not a traceback."""
    from pulseguard_tui.forms.followups import FollowUpScreen

    await seed_two()
    async with remote_console(tmp_path, api.url, api.tokens["responder"]) as (app, pilot):
        form = await open_form(pilot, "F", FollowUpScreen)
        await type_text(pilot, "Alert at 75% disk")
        app.api._client.headers["Authorization"] = f"Bearer {api.tokens['viewer']}"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: form.problems_shown, what="refusal")
        assert app.screen is form
        assert form.query_one("#f-description", Input).value == "Alert at 75% disk"
        assert "Traceback" not in " ".join(form.problems_shown)
    assert (await queries.incident_detail("INC-2"))["followups"] == []


def test_due_dates_count_days_as_the_engine_does() -> None:
    """ "7d" counted from the machine's own date: over --connect, with the engine's zone a day
    behind, the follow-up came due a day late (or, the other way, read overdue a day early)."""
    from datetime import UTC, date, datetime
    from types import SimpleNamespace

    from engine.core import timefmt
    from pulseguard_tui.forms.followups import team_today

    now = datetime(2026, 3, 31, 6, 0, tzinfo=UTC)
    assert team_today(now, SimpleNamespace(timezone="Etc/GMT+12")) == date(2026, 3, 30)  # the remote engine's zone
    assert team_today(now, SimpleNamespace()) == date(2026, 3, 31)  # a local engine's default, UTC
    timefmt.set_display_zone("Pacific/Kiritimati")
    try:
        assert team_today(now, SimpleNamespace(timezone="Etc/GMT+12")) == date(2026, 3, 31)  # the console's own zone first
        assert team_today(datetime(2026, 3, 31, 11, 0, tzinfo=UTC), SimpleNamespace()) == date(2026, 4, 1)
    finally:
        timefmt.set_display_zone(None)
