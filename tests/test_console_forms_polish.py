"""The small things a first-time user trips over: help shows keys, not markup; the `:` prompt
starts empty after a refusal; a fixed field loses its problem; a form opens over the dimmed
list; the severity form starts at the incident's severity; keys typed ahead of a Tab land in the
next field."""

from __future__ import annotations

from typing import Any

from support.pilot import open_form, select_row, type_text, until
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input, Select, TextArea

from engine.incidents import queries
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.forms.incident import AcknowledgeScreen, CommentScreen, EvidenceScreen, ResolveScreen, SeverityScreen, StatusScreen
from pulseguard_tui.forms.silences import SnoozeScreen
from pulseguard_tui.screens.help import HelpScreen
from pulseguard_tui.screens.incidents import IncidentsScreen
from pulseguard_tui.widgets.command_line import CommandLineScreen
from pulseguard_tui.widgets.postmortem_forms import SummaryForm


async def test_help_shows_keys_not_markup(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await pilot.press("question_mark")
    await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
    text = app.screen.query_one("#help-text").render().plain  # type: ignore[attr-defined]
    assert "[/b]" not in text and "[b]" not in text and "[dim]" not in text
    lines = text.splitlines()
    assert any(line.split()[:1] == ["["] and "Previous detail tab" in line for line in lines)
    assert any(line.split()[:1] == ["]"] and "Next detail tab" in line for line in lines)


async def test_command_line_starts_empty_after_a_refusal(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await pilot.press("colon")
    await until(pilot, lambda: isinstance(app.screen, CommandLineScreen), what="prompt")
    prompt = app.screen
    await type_text(pilot, "targts")
    await pilot.press("enter")
    await pilot.pause(0.1)
    error = prompt.query_one("#command-error")
    assert error.display and "targts" in str(error.render())  # the message names what was typed
    assert prompt.query_one("#command", Input).value == ""
    await type_text(pilot, "incidents")
    assert not error.display  # typing again: the old refusal goes
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="prompt closed")


async def test_command_line_hint_lists_every_command_it_accepts(sdb: Any, monkeypatch: Any) -> None:
    """The `:` prompt's hint names every command the prompt accepts, whole at 80x24 (it left out
    maintenance, services and readonly, and a one-line placeholder could not hold them all); it
    is built from the commands, so one added later is listed too."""
    from support.pilot import seeded_console

    from pulseguard_tui import commands

    monkeypatch.setitem(commands.COMMANDS, "later", "a command added later")
    async with seeded_console(sdb, size=(80, 24)) as (app, pilot):
        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, CommandLineScreen), what="prompt")
        await pilot.pause(0.1)
        hint = app.screen.query_one("#command-hint")
        # What is drawn in its place on screen: wrapped at 80 columns, every line shown.
        drawn = " ".join(strip.text for strip in hint.render_lines(hint.region.reset_offset))
        for name in ("maintenance", "services", "readonly [on|off]", "theme NAME", "later"):
            assert f":{name}" in drawn, name
        assert all(f":{name}" in drawn.split() for name in commands.COMMANDS if name not in commands.USAGE)
        assert hint.region.height >= 2 and hint.region.right <= 80
        assert hint.region.bottom <= app.screen.query_one("#command").region.y <= 23


async def test_form_hint_says_what_enter_does_in_a_list(sdb: Any) -> None:
    """At 80x24 the form's hint said "Enter save" while a list (Select) had focus, where Enter
    opens the list; it now says so there, and "Enter pick" while the list is open, and the
    usual hint comes back when the focus moves on."""
    from support.pilot import seeded_console

    async with seeded_console(sdb, size=(80, 24)) as (app, pilot):
        await select_row(pilot, "INC-2")
        form = await open_form(pilot, "v", SeverityScreen)
        select = form.query_one("#f-severity", Select)

        def hint() -> str:
            return str(form.query_one(".form-hint").render())

        assert form.focused is select
        await until(pilot, lambda: hint().startswith("Enter open list"), what="the list's hint")
        assert "Enter save" not in hint()
        await pilot.press("enter")  # what the hint says: the list opens, nothing is saved
        await until(pilot, lambda: select.expanded, what="list open")
        await until(pilot, lambda: hint().startswith("Enter pick"), what="the open list's hint")
        await pilot.press("escape")  # closes the list, not the form
        await until(pilot, lambda: not select.expanded and form.focused is select, what="list closed")
        assert isinstance(app.screen, SeverityScreen) and hint().startswith("Enter open list")
        await pilot.press("tab")
        await until(pilot, lambda: form.focused is form.query_one("#f-reason", Input), what="reason field")
        await until(pilot, lambda: hint() == form.hint_text == "Enter save · Tab next field · Esc cancel", what="usual hint")


async def test_a_fixed_field_loses_its_problem(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await select_row(pilot, "INC-2")
    form = await open_form(pilot, "c", CommentScreen)
    await pilot.press("enter")
    await until(pilot, lambda: form.problems_shown, what="empty comment refused")
    await type_text(pilot, "x")
    await pilot.pause(0.1)
    assert form.problems_shown == []


async def test_a_refused_form_focuses_its_first_wrong_field_from_the_top(console: tuple[PulseGuardApp, Pilot]) -> None:
    """A mistyped matcher and an empty comment: the focus went to the comment (the order the
    checks found them in), and the fix typed for the matchers landed there."""
    from support.pilot import command

    from pulseguard_tui.forms.silences import AddSilenceScreen
    from pulseguard_tui.screens.silences import SilencesScreen

    app, pilot = console
    await command(pilot, "silences")
    await until(pilot, lambda: isinstance(app.screen, SilencesScreen), what="the silences screen")
    form = await open_form(pilot, "n", AddSilenceScreen)
    await type_text(pilot, "servce=web-app")
    await pilot.press("enter")
    await until(pilot, lambda: len(form.problems_shown) == 2, what="matchers and comment refused")
    assert form.focused is form.query_one("#f-matchers", Input)
    await type_text(pilot, "X")
    assert form.query_one("#f-matchers", Input).value == "servce=web-appX" and form.query_one("#f-comment", Input).value == ""


async def test_a_form_opens_over_the_dimmed_list(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await select_row(pilot, "INC-2")
    await open_form(pilot, "c", CommentScreen)
    await pilot.pause(0.2)
    picture = app.export_screenshot()
    assert "Nightly&#160;export&#160;failed" in picture  # the list still shows under the form (SVG spaces)


async def test_severity_form_starts_at_the_current_severity(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await select_row(pilot, "INC-1")  # critical
    form = await open_form(pilot, "v", SeverityScreen)
    assert form.query_one("#f-severity", Select).value == "critical"
    await pilot.press("ctrl+s")  # unchanged: said so, nothing stored
    await until(pilot, lambda: form.problems_shown, what="unchanged refused")
    assert "critical already" in form.problems_shown[0]
    assert (await queries.incident_detail("INC-1"))["severity"] == "critical"


async def test_keys_typed_ahead_of_a_tab_land_in_the_next_field(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await select_row(pilot, "INC-2")
    form = await open_form(pilot, "r", ResolveScreen)
    # One burst, as a slow SSH link delivers a fast typist's keys: the app has read them all
    # before the root cause field has handled its first.
    burst = [
        ("d", "d"),
        ("b", "b"),
        ("tab", "\t"),
        ("tab", "\t"),
        ("f", "f"),
        ("i", "i"),
        ("x", "x"),
        ("shift+tab", None),
        ("shift+tab", None),
    ]
    for key, character in burst:
        app.post_message(events.Key(key, character))
    await pilot.pause(0.3)
    assert form.query_one("#f-root_cause", Input).value == "db"
    assert form.query_one("#f-solution", Input).value == "fix"
    assert app.focused is form.query_one("#f-root_cause", Input)


async def test_backspaces_in_a_burst_keep_their_place_among_typed_keys(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Over SSH, "2026-02-30", ten backspaces and "7d" arrive in one burst: the field read "20",
    as the last backspaces ran after "7d" was typed and erased it (a bound key ran only once it had
    bubbled up to the app, a typed one at once)."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    form = await open_form(pilot, "c", CommentScreen)
    burst = [(c, c) for c in "2026-02-30"] + [("backspace", "\x7f")] * 10 + [("7", "7"), ("d", "d")]
    burst += [("left", None), ("left", None), ("delete", None), ("x", "x"), ("end", None), ("!", "!")]
    for key, character in burst:
        app.post_message(events.Key(key, character))
    await pilot.pause(0.3)
    assert form.query_one("#f-content", Input).value == "xd!"


async def test_the_filter_keeps_a_burst_of_keys_in_order(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await pilot.press("slash")
    await until(pilot, lambda: isinstance(app.focused, Input) and app.focused.id == "filter", what="filter focused")
    for key, character in [(c, c) for c in "dbx"] + [("backspace", "\x7f"), ("backspace", "\x7f"), ("x", "x")]:
        app.post_message(events.Key(key, character))
    await pilot.pause(0.3)
    assert app.screen.query_one("#filter", Input).value == "dx"


def typed(text: str) -> list[tuple[str, str | None]]:
    names = {" ": "space", "-": "minus", ":": "colon"}
    return [(names.get(c, c), c) for c in text]


async def test_keys_typed_with_the_key_that_opens_a_form_go_into_it(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Over SSH the key that opens a form and the words after it arrive in one burst ("cpool
    exhausted"): they reached the form before its first field had focus, and were dropped,
    or acted on the list. They go into the form's fields, Tab included, in the order typed."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    for key, character in typed("cpool exhausted"):
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: isinstance(app.screen, CommentScreen), what="comment form")
    form = app.screen
    await until(pilot, lambda: form.query_one("#f-content", Input).value == "pool exhausted", what="the words typed")
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")

    burst = typed("rdb") + [("tab", "\t"), ("tab", "\t")] + typed("fix")
    for key, character in burst:
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: isinstance(app.screen, ResolveScreen), what="resolve form")
    form = app.screen
    fields = form.query_one("#f-root_cause", Input), form.query_one("#f-solution", Input)
    await until(pilot, lambda: [f.value for f in fields] == ["db", "fix"], what="the words typed, each in its field")
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")

    for key, character in typed(":help"):
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: isinstance(app.screen, CommandLineScreen), what="command line")
    prompt = app.screen
    await until(pilot, lambda: prompt.query_one(Input).value == "help", what="the command typed")


async def test_a_confirmation_typed_with_its_key_is_answered(console: tuple[PulseGuardApp, Pilot]) -> None:
    """ "a" and "y" in one burst: the acknowledgement is confirmed, as pressing them apart would."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    for key, character in typed("ay"):
        app.post_message(events.Key(key, character))
    assert (await queries.get_incident("INC-2")).acknowledged_at is None
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="confirmation answered")
    for _ in range(50):
        if (await queries.get_incident("INC-2")).acknowledged_at is not None:
            break
        await pilot.pause(0.1)
    assert (await queries.get_incident("INC-2")).acknowledged_by is not None


async def test_a_no_typed_as_a_word_runs_none_of_its_letters(console: tuple[PulseGuardApp, Pilot]) -> None:
    """ "no wait" typed into the acknowledge question at a hurried typist's pace: the question
    closed at the "n" and the list read the rest as commands ("o" opened the reopen form, the
    "a" of "wait" a new acknowledgement). The whole word is read as the answer: nothing runs."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, AcknowledgeScreen), what="the question")
    screens: set[str] = set()
    for key, character in typed("no wait"):
        app.post_message(events.Key(key, character))
        await pilot.pause(0.08)
        screens.add(type(app.screen).__name__)
    assert screens == {"AcknowledgeScreen"}  # still open while the word is typed
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="the question closed")
    await pilot.pause(0.3)
    assert isinstance(app.screen, IncidentsScreen) and len(app.screen_stack) == 1
    assert (await queries.get_incident("INC-2")).acknowledged_at is None
    await pilot.press("a")  # a key after the pause is the list's again
    await until(pilot, lambda: isinstance(app.screen, AcknowledgeScreen), what="asked again")


async def test_a_yes_typed_as_a_word_acknowledges_once_and_opens_nothing(console: tuple[PulseGuardApp, Pilot]) -> None:
    """ "yes" and Enter: the acknowledgement is saved at the "y"; the "e" (evidence) and "s"
    (status) after it belong to the answer, not to the list."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, AcknowledgeScreen), what="the question")
    for key, character in [*typed("yes"), ("enter", "\r")]:
        app.post_message(events.Key(key, character))
        await pilot.pause(0.08)
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="the question closed")
    await pilot.pause(0.3)
    assert len(app.screen_stack) == 1  # no evidence or status form
    incident = await queries.get_incident("INC-2")
    assert incident.acknowledged_at is not None
    assert incident.status == "investigating"


async def test_shift_tab_back_into_a_typed_message_keeps_it(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Textual selects a field's text as it takes focus: Shift+Tab back into the comment
    typed and one letter more replaced the whole comment. A field typed in keeps its text and
    takes the cursor at its end; one still holding its given value is selected, so typing
    replaces the default (the snooze's "30m")."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    form = await open_form(pilot, "c", CommentScreen)
    await type_text(pilot, "pool exhausted")
    await pilot.press("tab", "shift+tab")
    await type_text(pilot, " again")
    assert form.query_one("#f-content", Input).value == "pool exhausted again"
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")
    snooze = await open_form(pilot, "z", SnoozeScreen)
    duration = snooze.query_one("#f-duration", Input)
    snooze.set_focus(None)
    duration.focus()
    await pilot.pause(0.05)
    await type_text(pilot, "45m")
    assert duration.value == "45m"


async def test_words_typed_with_the_slash_go_into_the_filter(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Over SSH "/checkout" arrives in one burst: the list read the words before its "/" had
    focused the filter, so they ran as keys of the list (its "c" opened a comment form with
    "heckout" in it). They go into the filter, in order, backspace included."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    burst = [("slash", "/")] + typed("checkoux") + [("backspace", "\x7f")] + typed("t")
    for key, character in burst:
        app.post_message(events.Key(key, character))
    screen = app.screen
    assert isinstance(screen, IncidentsScreen)
    await until(pilot, lambda: screen.query_one("#filter", Input).value == "checkout", what="the words in the filter")
    assert isinstance(app.screen, IncidentsScreen)  # no form opened
    await until(pilot, lambda: screen.filter_text == "checkout", what="filter applied")
    await pilot.press("enter")  # keeps the filter; keys act on the list again
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, CommentScreen), what="c acts on the list again")


async def test_keys_typed_with_the_post_mortem_tab_key_go_to_the_post_mortem(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Over SSH "7SPool too small" arrives in one burst: the keys after the 7 were the list's
    until the tab had taken the focus, so "S" did nothing and the "o" of "Pool" opened the
    reopen form with "ol too small" in it. The tab takes them: S opens the summary form (from
    the document it loads first) and the words go into it."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    for key, character in [("7", "7"), ("S", "S")] + typed("Pool too small"):
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: isinstance(app.screen, SummaryForm), what="summary form")
    form = app.screen
    assert isinstance(form, SummaryForm) and form.doc["key"] == "INC-2"
    # The form is on the stack before its fields are mounted (under load, a frame later).
    await until(
        pilot,
        lambda: bool(form.query("#f-summary")) and form.query_one("#f-summary", TextArea).text.endswith("Pool too small"),
        what="the words in the summary",
    )


async def test_a_status_message_typed_with_s_goes_into_the_message(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Over SSH "sstill on it" arrives in one burst: the form opened on the status list, whose
    type-to-search took the words (and could change the status). They go into the message; the
    status stays the form's default, a Tab away, and Enter saves both."""
    app, pilot = console
    await select_row(pilot, "INC-3")  # investigating: the form offers identified first
    for key, character in typed("sstill on it"):
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: isinstance(app.screen, StatusScreen), what="status form")
    form = app.screen
    message, status = form.query_one("#f-message", Input), form.query_one("#f-status", Select)
    await until(pilot, lambda: message.value == "still on it", what="the words in the message")
    assert status.value == "identified" and app.focused is message
    await pilot.press("tab")
    assert app.focused is status  # the status list is the next field
    await pilot.press("shift+tab", "enter")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")
    inc = await queries.incident_detail("INC-3")
    assert inc["status"] == "identified"
    assert inc["updates"][-1]["message"] == "still on it" and inc["updates"][-1]["public"] is False


async def test_a_url_typed_with_e_goes_into_the_url(console: tuple[PulseGuardApp, Pilot]) -> None:
    """ "e" and a URL in one burst: the URL is what is stored, with the kind left at link; the
    description is the next field."""
    app, pilot = console
    await select_row(pilot, "INC-4")
    url = "https://grafana.example/d/disk?from=now-1h"
    names = {"/": "slash", ".": "full_stop", "?": "question_mark", "=": "equals_sign"}
    burst = [("e", "e")] + [(names.get(c, c), c) for c in url] + [("tab", "\t")] + typed("disk graph")
    for key, character in burst:
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: isinstance(app.screen, EvidenceScreen), what="evidence form")
    form = app.screen
    await until(pilot, lambda: form.query_one("#f-description", Input).value == "disk graph", what="the description")
    assert form.query_one("#f-url", Input).value == url
    assert form.query_one("#f-kind", Select).value == "link"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")
    evidence = (await queries.incident_detail("INC-4"))["evidence"]
    assert [(e["kind"], e["url"], e["description"]) for e in evidence] == [("link", url, "disk graph")]


async def test_s_on_a_monitoring_incident_moves_nothing_back_by_itself(console: tuple[PulseGuardApp, Pilot]) -> None:
    """From monitoring every other status is a step back: the form preset the first of them
    (investigating), so "s", a message and Enter sent a watched fix back to investigating. Now
    nothing is preset there and Enter asks for a status; an investigating incident still gets
    identified, the next stage, preset."""
    from engine.incidents import services

    app, pilot = console
    await services.change_status("INC-3", "monitoring", "alice")
    await select_row(pilot, "INC-3")
    await until(pilot, lambda: (app.screen.table.selected or {}).get("status") == "monitoring", what="the list's row monitoring")
    for key, character in typed("sconsumer restarted"):
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: isinstance(app.screen, StatusScreen), what="status form")
    form = app.screen
    # The form is on the stack before its fields are mounted (under load, a frame later).
    await until(
        pilot,
        lambda: bool(form.query("#f-message")) and form.query_one("#f-message", Input).value == "consumer restarted",
        what="the message",
    )
    assert form.query_one("#f-status", Select).value is Select.NULL
    await pilot.press("enter")
    await until(pilot, lambda: form.problems_shown, what="asked for a status")
    assert any("it is monitoring: pick the status to go back to" in p for p in form.problems_shown)
    assert isinstance(app.screen, StatusScreen)
    inc = await queries.incident_detail("INC-3")
    assert inc["status"] == "monitoring" and all(u["message"] != "consumer restarted" for u in inc["updates"])


async def test_words_typed_into_a_summary_being_edited_go_after_it(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Editing a summary already written put the cursor at its start: " (update two)" typed
    into it went in front ("(update two)EU logins failed…"). The cursor starts at the end."""
    from engine.learning import postmortem

    app, pilot = console
    await postmortem.update_postmortem(2, "alice", summary="EU logins failed for 10 minutes")
    await select_row(pilot, "INC-2")
    await pilot.press("7")
    form = await open_form(pilot, "S", SummaryForm)
    summary = form.query_one("#f-summary", TextArea)
    await until(pilot, lambda: summary.text == "EU logins failed for 10 minutes", what="the summary in the form")
    await type_text(pilot, " (update two)")
    await until(pilot, lambda: summary.text.endswith("(update two)"), what="the words after it")
    assert summary.text == "EU logins failed for 10 minutes (update two)"


async def test_the_highlighted_post_mortem_entry_stays_in_sight_at_80x24(sdb: Any) -> None:
    """The post-mortem's timeline sits in the tab's scroll under its summary: at 80x24 the arrow
    keys moved the highlight below the bottom, and Enter, H and D acted on an entry nobody could
    see, before and after a form was saved. The tab now scrolls to the highlighted entry."""
    from datetime import UTC, datetime, timedelta

    from support.pilot import seeded_console
    from textual.containers import VerticalScroll
    from textual.widgets import OptionList

    from engine.learning.postmortem.entries import add_entry

    async with seeded_console(sdb, size=(80, 24)) as (app, pilot):
        for i in range(15):
            await add_entry("INC-2", "alice", at_time=datetime.now(UTC) - timedelta(minutes=30 - i), text=f"entry {i}")
        await select_row(pilot, "INC-2")
        await pilot.press("7")
        timeline = app.screen.query_one("#pm-timeline", OptionList)
        await until(pilot, lambda: timeline.option_count >= 15, what="the timeline")

        def in_sight() -> bool:
            scroll = app.screen.query_one("#pm-scroll", VerticalScroll)
            line = timeline._index_to_line[timeline.highlighted]  # type: ignore[index]
            y = timeline.content_region.y + line - int(timeline.scroll_offset.y)
            return scroll.region.y <= y < scroll.region.bottom and timeline.content_region.y <= y < timeline.content_region.bottom

        for round_ in range(2):
            for _ in range(12):
                await pilot.press("down")
                await pilot.pause()
                assert in_sight(), (round_, timeline.highlighted)
            await open_form(pilot, "S", SummaryForm)
            await type_text(pilot, "x")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")
            await until(pilot, lambda: any("saved" in n.message for n in app._notifications), what="saved")
            await pilot.pause(0.3)  # the tab reloads its document
            for _ in range(12):
                await pilot.press("up")


async def test_the_selected_incident_resolved_elsewhere_is_said_and_so_is_the_new_selection(console: tuple[PulseGuardApp, Pilot]) -> None:
    """The engine resolved the incident being worked on: the list dropped it and the selection
    moved to another incident without a word, so the next key acted on that one. Now a notice
    names both; an incident resolved from this console says nothing more than its form did."""
    from engine.incidents import services

    app, pilot = console
    await select_row(pilot, "INC-3")
    screen = app.screen
    assert isinstance(screen, IncidentsScreen)
    await services.resolve("INC-3", "engine", root_cause="Transient", solution="recovered")
    screen.request_refresh(detail=True)  # as the feed does
    await until(pilot, lambda: screen.table.selected_key not in (None, "INC-3"), what="the selection moved")
    moved_to = screen.table.selected_key
    await until(pilot, lambda: any("INC-3 was resolved by engine" in n.message for n in app._notifications), what="the notice")
    notice = next(n.message for n in app._notifications if "INC-3 was resolved" in n.message)
    assert notice == f"INC-3 was resolved by engine; {moved_to} is selected now"


async def test_publish_says_what_is_missing_before_asking(console: tuple[PulseGuardApp, Pilot]) -> None:
    """P asked "Publish the post-mortem of INC-3?" and, after the yes, said the incident was not
    resolved. What the engine would refuse is said before the question; no form opens."""
    app, pilot = console
    await select_row(pilot, "INC-3")  # investigating
    await pilot.press("7")
    await pilot.pause(0.2)
    await pilot.press("P")
    await until(pilot, lambda: any("resolve it before you publish" in n.message for n in app._notifications), what="the reason")
    assert isinstance(app.screen, IncidentsScreen)
    assert any(n.message == "INC-3 is investigating; resolve it before you publish its post-mortem" for n in app._notifications)


async def test_a_maintenance_window_for_a_service_nobody_declared_is_refused(console: tuple[PulseGuardApp, Pilot]) -> None:
    """The console's form made an active window for "chekout", covering nothing, where the CLI
    and the API refuse a service nobody declared."""
    from datetime import UTC, datetime, timedelta

    from pulseguard_tui.forms.maintenance import AddMaintenanceScreen

    app, pilot = console
    before = len(await app.api.list_maintenance())
    app.api.known_services = ["checkout"]
    await pilot.press("colon")
    await type_text(pilot, "maintenance")
    await pilot.press("enter")
    form = await open_form(pilot, "n", AddMaintenanceScreen)
    await type_text(pilot, "db failover")
    form.query_one("#f-services", Input).value = "chekout"
    # The console's clock is frozen in the past: a start a day ahead of the real one is ahead of both.
    form.query_one("#f-starts", Input).value = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="refused")
    assert any("unknown service 'chekout'" in p for p in form.problems_shown), form.problems_shown
    assert len(await app.api.list_maintenance()) == before


async def test_a_root_cause_typed_while_the_engine_resolved_it_is_not_lost(console: tuple[PulseGuardApp, Pilot]) -> None:
    """The engine resolved the incident (recovered) while the Resolve form was being filled in:
    the save said "already resolved" and Esc, the only way out, lost the root cause. The form
    stays, says saving again records it, and the second save does."""
    from engine.incidents import services

    app, pilot = console
    await select_row(pilot, "INC-3")
    form = await open_form(pilot, "r", ResolveScreen)
    form.query_one("#f-root_cause", Input).value = "pool too small"
    form.query_one("#f-solution", Input).value = "bigger pool"
    await services.resolve("INC-3", "engine", root_cause="Transient: recovered without intervention", solution="none")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="the refusal")
    said = "already resolved (by engine) with root cause 'Transient: recovered without intervention' (unknown); save again to replace"
    assert any(said in p for p in form.problems_shown), form.problems_shown
    assert app.screen is form and form.query_one("#f-root_cause", Input).value == "pool too small"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")
    inc = await queries.incident_detail("INC-3")
    assert (inc["root_cause"], inc["solution"], inc["resolved_by"]) == ("pool too small", "bigger pool", "engine")
    assert any(n.message.startswith("INC-3 root cause recorded") for n in app._notifications)


async def test_a_root_cause_someone_wrote_meanwhile_is_shown_before_a_second_save_replaces_it(
    console: tuple[PulseGuardApp, Pilot],
) -> None:
    """carol resolved the incident with her root cause while this form was open: the refusal
    offered "save again to record this root cause", and a second Enter replaced hers unseen.
    The refusal now quotes what a second save would replace."""
    from engine.incidents import services

    app, pilot = console
    await select_row(pilot, "INC-3")
    form = await open_form(pilot, "r", ResolveScreen)
    form.query_one("#f-root_cause", Input).value = "LB misconfig"
    form.query_one("#f-solution", Input).value = "fixed upstream"
    await services.resolve("INC-3", "carol", root_cause="expired TLS certificate", solution="renewed it", category="configuration")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="the refusal")
    said = "already resolved (by carol) with root cause 'expired TLS certificate' (configuration); save again to replace it"
    assert any(said in p for p in form.problems_shown), form.problems_shown
    inc = await queries.incident_detail("INC-3")
    assert (inc["root_cause"], inc["resolved_by"]) == ("expired TLS certificate", "carol")  # nothing replaced unasked
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")


async def test_keys_typed_after_enter_are_not_saved_with_the_form(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Over SSH "cchecking dns<Enter>jj" arrives in one burst: the field read "jj" before the
    save read its text, so "checking dnsjj" was stored (a public update, published). The keys
    after Enter are the list's: it moves down twice once the form has closed."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    screen = app.screen
    assert isinstance(screen, IncidentsScreen)
    before = screen.table.cursor
    for key, character in typed("cchecking dns") + [("enter", "\r")] + typed("jj"):
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: app.screen is screen, what="the form saved and closed")
    await until(pilot, lambda: screen.table.cursor == before + 2, what="j j moved the list")
    detail = await queries.incident_detail("INC-2")
    assert [c["content"] for c in detail["comments"]][-1] == "checking dns"

    # Refused, the form stays open: the keys after Enter are dropped, not typed into it (a second
    # Enter in the burst would have saved again what the refusal is about, unread).
    await select_row(pilot, "INC-2")
    for key, character in typed("c") + [("enter", "\r")] + typed("xy") + [("enter", "\r")]:
        app.post_message(events.Key(key, character))
    await until(pilot, lambda: isinstance(app.screen, CommentScreen) and app.screen.problems_shown, what="the refusal")
    await pilot.pause(0.2)
    form = app.screen
    assert form.query_one("#f-content", Input).value == ""
    await type_text(pilot, "second look")
    await pilot.press("enter")
    await until(pilot, lambda: app.screen is screen, what="saved")
    detail = await queries.incident_detail("INC-2")
    assert [c["content"] for c in detail["comments"]][-2:] == ["checking dns", "second look"]


async def test_a_silence_for_an_undeclared_service_is_refused_under_its_matchers(console: tuple[PulseGuardApp, Pilot]) -> None:
    from support.pilot import command

    from engine.storage.models import Service
    from pulseguard_tui.forms.silences import AddSilenceScreen
    from pulseguard_tui.screens.silences import SilencesScreen

    await Service.create(name="web-app")
    app, pilot = console
    await command(pilot, "silences")
    await until(pilot, lambda: isinstance(app.screen, SilencesScreen), what="the silences screen")
    form = await open_form(pilot, "n", AddSilenceScreen)
    await type_text(pilot, "service=web-ap")
    form.query_one("#f-comment", Input).value = "deploy"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="the unknown service refused")
    assert any("unknown service 'web-ap' (known services: web-app)" in p for p in form.problems_shown), form.problems_shown
    assert isinstance(app.screen, AddSilenceScreen)
