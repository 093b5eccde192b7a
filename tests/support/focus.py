"""Walking every modal the key registry reaches, closing each both ways, and checking that focus returns
to the incident list."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import Input, Select, TextArea

from pulseguard_tui.actions import ACTIONS, Action
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.forms.base import ConfirmScreen, FormScreen
from pulseguard_tui.screens.help import HelpScreen
from pulseguard_tui.widgets.command_line import CommandLineScreen
from support.pilot import main, type_text, until

# Actions that open no modal by design (or would end the test): every other action of the
# list, the detail, the Post-mortem tab and the app is pressed and, if a modal opens, closed.
NOT_MODAL = {
    "app.quit",
    "app.readonly",
    "app.back",
    "list.filter",
    "list.resolved",
    "list.zoom",
    "list.refresh",
    "detail.next_tab",
    "detail.prev_tab",
    "detail.tabs",
    "postmortem.copy",
    "postmortem.hide_entry",
}


SCOPES = ("app", "incidents", "postmortem")


# A modal that the test cannot close is a new kind: teach `accept` how its user closes it.
FILL = {
    "url": "https://example.com/x",
    "at": "5m",
    "range_from": "15m",
    "range_to": "now",
    "customer": "4",
    "team": "4",
    "assignee": "alice",
}


async def settle(pilot: Pilot, done: Callable[[], object], at_most: float) -> None:
    """Wait until `done()` or `at_most` seconds: a fixed pause that ends as soon as the outcome
    it waits for is there (the full time only when it never comes, as for a key that opens no modal)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + at_most
    await pilot.pause()
    while not done() and loop.time() < deadline:
        await pilot.pause(0.02)
    await pilot.pause()  # and what that outcome posts (focus, error marks) is processed


def keys_of(action: Action) -> list[str]:
    return [action.key.split(",")[0]]


def pick_row(app: PulseGuardApp, action: Action) -> str | None:
    rows = main(app).table.loaded_rows()
    if action.id == "incident.ack":
        wanted = [r for r in rows if not r.get("acknowledged_at") and r["status"] != "resolved"]
    elif action.id in ("incident.reopen", "postmortem.publish"):  # only a resolved incident's post-mortem is published
        # Not one merged away by the walk's merge: a merged incident takes no changes.
        wanted = [r for r in rows if r["status"] == "resolved" and not r.get("merged_into")]
    elif action.id == "incident.promote":
        wanted = [r for r in rows if r["key"] == "INC-1"]
    else:
        wanted = [r for r in rows if r["status"] != "resolved"]
    return wanted[0]["key"] if wanted else None


async def select(pilot: Pilot, key: str) -> None:
    screen = main(pilot.app)  # type: ignore[arg-type]
    rows = [r["key"] for r in screen.table.loaded_rows()]
    screen.table.cursor = rows.index(key)
    await until(pilot, lambda: screen.detail.detail is not None and screen.detail.detail["key"] == key, what=key)


async def accept(pilot: Pilot, modal: ModalScreen[Any]) -> None:
    """Close `modal` the way a user who means it does (save, confirm, run)."""
    if isinstance(modal, ConfirmScreen):
        await pilot.press("enter")
        await settle(pilot, lambda: pilot.app.screen is not modal or modal.problems_shown, 0.3)
        if pilot.app.screen is modal and modal.problems_shown:
            await pilot.press("escape")  # the engine said no (say, nothing to publish yet): the refusal is shown
    elif isinstance(modal, FormScreen):
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: pilot.app.screen is not modal or modal.problems_shown, 0.2)
        if pilot.app.screen is modal and modal.problems_shown:
            fields = [modal.query_one(f"#f-{(err.id or '').removeprefix('err-')}") for err in modal.query(".field-error.-shown")]
            if not fields:  # refused as a whole (say, "already unassigned"): give the first empty field a value
                fields = [w for w in modal.query("Input") if not w.value][:1]
            for field in fields:
                name = (field.id or "").removeprefix("f-")
                field.focus()
                await pilot.pause()
                if isinstance(field, (Input, TextArea)):
                    await type_text(pilot, FILL.get(name, "x"))
                elif isinstance(field, Select):  # pick another choice
                    await pilot.press("enter", "down", "enter")
            await pilot.press("ctrl+s")
        for _ in range(50):
            if pilot.app.screen is not modal:
                break
            await pilot.pause(0.1)
        else:
            raise AssertionError(f"{type(modal).__name__} did not save: {modal.problems_shown}")
    elif isinstance(modal, HelpScreen):
        await pilot.press("question_mark")
    elif isinstance(modal, CommandLineScreen):
        await type_text(pilot, "incidents")
        await pilot.press("enter")
    elif isinstance(modal, CommandPalette):
        await type_text(pilot, "Go to Incidents")
        await pilot.pause(0.3)
        await pilot.press("enter")
    else:
        raise AssertionError(f"{type(modal).__name__}: a modal this test does not know how to accept")


async def next_key_acts_on_list(app: PulseGuardApp, pilot: Pilot, what: str, filter_text: str) -> None:
    screen = main(app)
    await pilot.pause()
    assert screen.focused is not screen.query_one("#filter", Input), f"{what}: focus went to the filter field"
    before = screen.show_resolved
    await pilot.press("x")  # the list's own key: show / hide resolved
    await until(pilot, lambda: screen.show_resolved is not before, what=f"{what}: x to reach the list")
    await pilot.press("x")
    await until(pilot, lambda: screen.show_resolved is before, what=f"{what}: x back")
    assert screen.filter_text == filter_text, f"{what}: keys went into the filter"


async def walk_every_modal(app: PulseGuardApp, pilot: Pilot, *, filter_text: str = "") -> set[str]:
    """Open every modal the registry reaches, close it both ways; return the modals seen.

    One of the two closes of each modal happens with the list's focus lost meanwhile (as after a
    terminal focus change or a removed widget): Textual gives focus back to what had it, and when
    that is gone it focused the first focusable widget, the hidden filter field, so the next keys
    filtered the list away. Which way loses it alternates from modal to modal, so both ways are
    walked with and without it."""
    screen = main(app)
    seen: set[str] = set()
    actions = [a for a in ACTIONS if a.scope in SCOPES and a.id not in NOT_MODAL]
    for index, action in enumerate(actions + [Action("palette", "ctrl+p", "command_palette", "palette", "app")]):
        if not app.action_available(action):
            continue  # not offered here (a viewer's write keys; features this engine does not serve)
        for way in ("cancel", "accept"):
            if action.scope != "app":
                screen.show_resolved = action.id in ("incident.reopen", "postmortem.publish")
                screen.apply_filter(screen.filter_text)
                await until(pilot, lambda: not screen._refreshing and screen.table.loaded, what="reload")
                key = pick_row(app, action)
                if key is None:
                    continue
                if action.id == "postmortem.publish":  # the console asks only when there is a summary to publish
                    from engine.learning import postmortem

                    await postmortem.update_postmortem(key, "walker", summary="What happened, in a line.")
                await select(pilot, key)
            if action.scope == "postmortem":
                await pilot.press("7")
                await until(
                    pilot,
                    lambda: screen.detail.postmortem.doc is not None and screen.detail.postmortem.doc["key"] == screen.table.selected_key,
                    what="post-mortem",
                )
                screen.query_one("#pm-timeline").focus()
            await pilot.press(*keys_of(action))
            await settle(pilot, lambda: isinstance(app.screen, ModalScreen), 0.3)
            modal = app.screen
            if not isinstance(modal, ModalScreen):
                # The action acted (or explained why not) without a form: nothing to close.
                await pilot.press("1")
                screen.table.focus()
                break
            name = type(modal).__name__
            seen.add(name)
            if (index + (way == "accept")) % 2 == 0:
                screen.set_focus(None)
            screen.request_refresh(detail=True)
            app.notify("a toast while the modal closes")
            if way == "cancel":
                await pilot.press("escape")
            else:
                await accept(pilot, modal)
            await until(pilot, lambda: app.screen is screen, what=f"{name} to close ({way})")
            await next_key_acts_on_list(app, pilot, f"{action.id} {name} {way}", filter_text)
            await pilot.press("1")
            screen.table.focus()
            await pilot.pause()
    return seen


EXPECTED = {
    "AcknowledgeScreen",
    "StatusScreen",
    "SeverityScreen",
    "CommentScreen",
    "UpdateScreen",
    "EvidenceScreen",
    "ResolveScreen",
    "ReopenScreen",
    "PromoteScreen",
    "NewIncidentScreen",
    "AssignScreen",
    "TagsScreen",
    "FalsePositiveScreen",
    "FollowUpScreen",
    "FollowUpDoneScreen",
    "HelpScreen",
    "CommandLineScreen",
    "CommandPalette",
    "SummaryForm",
    "ListsForm",
    "ImpactForm",
    "EntryForm",
    "RatingForm",
    "PublishScreen",
}
