"""The Post-mortem tab (PostmortemView) driven by keys in a real Textual pilot: every edit goes
through the engine and shows in the tab; refusals show in the form and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.pilot import until
from support.postmortem import Host, form, full_lifecycle, loaded, save
from textual.widgets import Input, OptionList, TextArea

from engine.api.local import LocalEngine
from engine.storage.db import close_database, open_database
from engine.storage.models import Incident
from engine.storage.postmortem_models import Postmortem, PostmortemEntry
from pulseguard_tui.forms.base import FormScreen
from pulseguard_tui.widgets.postmortem import PostmortemView


@pytest.fixture
async def sdb(sqlite_database: Any, migrated_template: Any) -> AsyncIterator[Any]:
    migrated_template.copy_sqlite(sqlite_database.path)  # conftest's once-migrated schema
    await open_database(sqlite_database)
    try:
        yield sqlite_database
    finally:
        await close_database()


async def test_a_summary_of_several_lines_keeps_its_indent(sdb: Any) -> None:
    """A summary written on several lines (S's box takes Enter) shows every line indented under
    "Summary" as its first line is; the lines after the first started at the margin."""
    key = await full_lifecycle()
    app = Host(LocalEngine("carol"))
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(PostmortemView)
        view.show_incident({"key": key})
        await loaded(pilot, view)
        app.query_one("#pm-timeline", OptionList).focus()
        await pilot.press("S")
        screen = await form(pilot, "SummaryForm")
        screen.query_one("#f-summary", TextArea).text = "Release 4.2 broke checkout.\nRolled back after 48 minutes.\nNo data lost."
        await save(pilot)
        await loaded(pilot, view, lambda d: d["postmortem"]["summary"].startswith("Release 4.2"))
        await pilot.pause(0.1)
        lines = str(view.query_one("#pm-summary").render()).splitlines()
        start = lines.index("Summary") + 1
        assert lines[start : start + 4] == [
            "  Release 4.2 broke checkout.",
            "  Rolled back after 48 minutes.",
            "  No data lost.",
            "Impact",
        ]


async def test_editing_the_post_mortem_from_the_keyboard(sdb: Any) -> None:
    key = await full_lifecycle()
    app = Host(LocalEngine("carol"))
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(PostmortemView)
        view.show_incident({"key": key})
        doc = await loaded(pilot, view)
        app.query_one("#pm-timeline", OptionList).focus()
        assert [e["kind"] for e in doc["timeline"]][:3] == ["deployment", "first_alert", "declared"]
        assert "Checkout failed for 48 minutes" in str(view.query_one("#pm-summary").render())

        # S: summary
        await pilot.press("S")
        screen = await form(pilot, "SummaryForm")
        screen.query_one("#f-summary", TextArea).text = "Release 4.2 broke checkout for 48 minutes."
        await save(pilot)
        await loaded(pilot, view, lambda d: d["postmortem"]["summary"].startswith("Release 4.2"))

        # H: hide the highlighted entry (the deployment), H again shows it
        await pilot.press("H")
        await loaded(pilot, view, lambda d: d["timeline"][0]["hidden"])
        assert (await PostmortemEntry.get(kind="deployment")).hidden

        # N: a new entry, with a bad time first
        await pilot.press("N")
        screen = await form(pilot, "EntryForm")
        screen.query_one("#f-at", Input).value = "yesterday-ish"
        screen.query_one("#f-text", Input).value = "support tickets spike"
        await save(pilot)
        await until(pilot, lambda: any("not a time" in p for p in screen.problems_shown), what="time problem")
        screen.query_one("#f-at", Input).value = "2026-03-02T10:20:00+00:00"
        await save(pilot)
        await loaded(pilot, view, lambda d: any(e["text"] == "support tickets spike" for e in d["timeline"]))

        # I: impact, refused then saved
        await pilot.press("I")
        screen = await form(pilot, "ImpactForm")
        screen.query_one("#f-users", Input).value = "-5"
        screen.query_one("#f-downtime", Input).value = "soon"
        await save(pilot)
        # Both named at once (the engine refused the first only, the second after a fix and save).
        await until(pilot, lambda: len(screen.problems_shown) == 2, what="two impact problems")
        assert "out of range" in screen.problems_shown[0] and "'soon' is not a number of minutes" in screen.problems_shown[1]
        assert (await Incident.get(number=1)).impact.get("affected_users") == 1200
        screen.query_one("#f-users", Input).value = "1,500"  # as people write it
        screen.query_one("#f-downtime", Input).value = "50"
        await save(pilot)
        doc = await loaded(pilot, view, lambda d: d["impact"]["affected_users"] == 1500)
        assert doc["impact"]["downtime_minutes"] == 50.0 and doc["impact"]["downtime_source"] == "manual"

        # G: satisfaction
        await pilot.press("G")
        screen = await form(pilot, "RatingForm")
        screen.query_one("#f-team", Input).value = "5"
        await save(pilot)
        await loaded(pilot, view, lambda d: d["satisfaction"]["team"] == 5)

        # Enter on an entry: edit it (annotation)
        timeline = app.query_one("#pm-timeline", OptionList)
        timeline.highlighted = 2  # declared
        await pilot.press("enter")
        screen = await form(pilot, "EntryForm")
        screen.query_one("#f-annotation", Input).value = "paged the wrong team"
        await save(pilot)
        await loaded(pilot, view, lambda d: d["timeline"][2]["annotation"] == "paged the wrong team")

        # P: publish; then an edit is refused as its key is pressed: the form opened, was filled
        # in, and only its save said the post-mortem is published (the text could only be thrown away).
        await pilot.press("P")
        await form(pilot, "PublishScreen")
        await pilot.press("y")
        await loaded(pilot, view, lambda d: d["postmortem"]["status"] == "published")
        assert "PUBLISHED" in str(view.query_one("#pm-summary").render())
        for k in ("S", "W", "I", "N"):
            await pilot.press(k)
            await pilot.pause(0.1)
            assert not isinstance(app.screen, FormScreen), k
        said = [n.message for n in app._notifications if "unpublish it (P) before you edit it" in n.message]
        assert len(said) == 4 and said[0] == "the post-mortem of INC-1 is published; unpublish it (P) before you edit it"
        assert (await Postmortem.get(incident__number=1)).summary.startswith("Release 4.2")
        # P still unpublishes (the one key that is not an edit).
        await pilot.press("P")
        await form(pilot, "PublishScreen")
        await pilot.press("escape")


async def test_read_only_console_opens_no_form(sdb: Any) -> None:
    key = await full_lifecycle()
    app = Host(LocalEngine("carol"))
    app.readonly = True
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(PostmortemView)
        view.show_incident({"key": key})
        await loaded(pilot, view)
        app.query_one("#pm-timeline", OptionList).focus()
        for k in ("S", "N", "I", "P", "H"):
            await pilot.press(k)
            await pilot.pause(0.05)
            assert not isinstance(app.screen, FormScreen)
        assert (await Postmortem.get(incident__number=1)).summary.startswith("Checkout failed")


async def test_an_incident_without_a_post_mortem_shows_a_preview(sdb: Any) -> None:
    from engine.incidents import services

    inc = await services.create_incident(title="db slow", severity="low", actor="alice")
    app = Host(LocalEngine("alice"))
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(PostmortemView)
        view.show_incident({"key": inc.key})
        await loaded(pilot, view)
        text = str(view.query_one("#pm-summary").render())
        assert "preview" in text and "no summary yet" in text
        view.show_incident({"key": "INC-99"})
        await until(pilot, lambda: view.error is not None, what="missing incident")
        assert "no incident INC-99" in str(view.query_one("#pm-summary").render())


async def test_esc_asks_before_it_throws_away_a_typed_summary(sdb: Any) -> None:
    """Two sentences typed into the summary went with one Esc, unasked. The first Esc says a
    second one throws the text away; typing on resets that; an untouched form closes at once."""
    key = await full_lifecycle()
    app = Host(LocalEngine("carol"))
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(PostmortemView)
        view.show_incident({"key": key})
        await loaded(pilot, view)
        app.query_one("#pm-timeline", OptionList).focus()
        await pilot.press("S")
        screen = await form(pilot, "SummaryForm")
        await pilot.press("escape")  # nothing typed: closes at once
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), what="closed")
        await pilot.press("S")
        screen = await form(pilot, "SummaryForm")
        await pilot.press(*" Two more words.")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.screen is screen and "Esc again throws away" in str(screen.query_one(".form-hint").render())
        await pilot.press("x")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.screen is screen  # typed on: warned again
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), what="closed by the second Esc")
    assert "Two more words" not in (await Postmortem.get(incident__number=1)).summary
