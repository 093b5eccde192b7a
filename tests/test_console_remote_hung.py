"""A console over --connect whose engine stops answering (SIGSTOP, a frozen VM): the header says
ENGINE UNREACHABLE within a few seconds, form or no form, and `q` still closes the console while
a save hangs on it.

The engine is a real API server (uvicorn on loopback) behind a real loopback TCP proxy
(support.hung_engine) that, once hung, accepts connections and reads what is sent but never
answers, as the kernel does for a stopped process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.hung_engine import HangingProxy, hanging_proxy
from support.pilot import main, open_form, type_text, until
from support.rest import running_api
from test_console_remote import console_args, seed_two, started

from engine.incidents import queries
from pulseguard_tui.app import HEARTBEAT, HEARTBEAT_WAIT
from pulseguard_tui.console import build_console, initial_settings
from pulseguard_tui.forms.incident import CommentScreen
from pulseguard_tui.screens.incidents import IncidentsScreen

# The heartbeat's own figures, and a second for a test run beside others.
FLAGGED_WITHIN = HEARTBEAT + HEARTBEAT_WAIT + 1.5


@asynccontextmanager
async def console_behind(tmp_path: Path) -> AsyncIterator[tuple[Any, Any, HangingProxy]]:
    """A responder's console over the proxy, on the incident list, the engine answering."""
    await seed_two()
    async with running_api() as api, hanging_proxy(api.url) as proxy:
        args = console_args(tmp_path, proxy.url, api.tokens["responder"])
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await started(app, pilot)
                yield app, pilot, proxy
        finally:
            await cleanup()


def header(screen: IncidentsScreen) -> str:
    return str(screen.query_one("#status-line").render())


async def comment_saving(app: Any, pilot: Any, text: str) -> CommentScreen:
    form = await open_form(pilot, "c", CommentScreen)
    await type_text(pilot, text)
    await pilot.press("enter")
    hint = form.query_one(".form-hint")
    await until(pilot, lambda: "saving" in str(hint.render()), what="the form says it is saving")
    return form  # type: ignore[return-value]


async def test_q_closes_the_console_while_a_save_hangs_on_a_stopped_engine(db: Any, tmp_path: Path) -> None:
    """`q` typed while the form said "saving…" was held for the list (the keys typed after Enter
    wait for the form to close): the console stayed open until the client gave up after 15 s,
    and the next q went into the comment ("stuck twoq"). It closes as documented: the save is
    given its 3 s (the form says so at once), then the console closes and says the comment was
    not confirmed."""
    async with console_behind(tmp_path) as (app, pilot, proxy):
        proxy.hang()
        form = await comment_saving(app, pilot, "stuck two")
        pressed = time.monotonic()
        await pilot.press("q")
        await pilot.pause(0.3)
        assert app.is_running and not app._exit  # the save's bounded wait
        # Said at once where the eyes are, in the form: a corner notice alone read as a key not taken.
        hint = str(form.query_one(".form-hint").render())
        assert f"at most {app.quit_grace:g} s" in hint and "q again closes now" in hint, hint
        await until(pilot, lambda: app._exit, timeout=app.quit_grace + 2, what="closed after the save's wait")
        assert time.monotonic() - pressed < app.quit_grace + 1.5
        assert form.query_one("#f-content").value == "stuck two"
        said = "\n".join(str(r) for r in app._exit_renderables)  # printed on the terminal once closed
    assert "not confirmed: Comment on INC-1" in said and "check whether it was saved" in said, said
    assert all(c["content"] != "stuck two" for c in (await queries.incident_detail("INC-1"))["comments"])


async def test_q_twice_while_a_save_hangs_closes_at_once(db: Any, tmp_path: Path) -> None:
    async with console_behind(tmp_path) as (app, pilot, proxy):
        proxy.hang()
        await comment_saving(app, pilot, "stuck two")
        pressed = time.monotonic()
        await pilot.press("q", "q")
        await until(pilot, lambda: app._exit, timeout=2, what="closed at the second q")
        assert time.monotonic() - pressed < 1.5
        said = "\n".join(str(r) for r in app._exit_renderables)
    assert "not confirmed: Comment on INC-1" in said, said


async def test_quit_rebound_closes_a_form_saving_from_its_checkbox(db: Any, tmp_path: Path) -> None:
    """Saved with ctrl+s from the checkbox, no field holds the keys after it, and a form keeps
    the app's keys out of reach: quit ([console.keymap] "app.quit" = "q,ctrl+c") did nothing."""
    async with console_behind(tmp_path) as (app, pilot, proxy):
        app.set_keymap({"app.quit": "q,ctrl+c"})
        proxy.hang()
        form = await open_form(pilot, "c", CommentScreen)
        await type_text(pilot, "stuck two")
        await pilot.press("tab", "ctrl+s")
        await until(pilot, lambda: form.busy, what="saving")
        assert form.focused is form.query_one("#f-internal")
        await pilot.press("ctrl+c", "ctrl+c")
        await until(pilot, lambda: app._exit, timeout=2, what="closed at the second ctrl+c")
        said = "\n".join(str(r) for r in app._exit_renderables)
    assert "not confirmed: Comment on INC-1" in said, said


async def test_the_header_says_engine_unreachable_within_seconds_and_recovers(db: Any, tmp_path: Path) -> None:
    """The 5-second overview asked with the client's 15 s timeout and was replaced by the next
    one before an answer could fail: a stopped engine was never flagged (or 10-25 s late)."""
    async with console_behind(tmp_path) as (app, pilot, proxy):
        screen = main(app)
        await pilot.pause(HEARTBEAT)  # between two looks
        proxy.hang()
        await until(pilot, lambda: "ENGINE UNREACHABLE" in header(screen), timeout=FLAGGED_WITHIN, what="ENGINE UNREACHABLE")
        proxy.wake()
        await until(pilot, lambda: "ENGINE UNREACHABLE" not in header(screen), timeout=FLAGGED_WITHIN, what="the engine back")
        assert "remote" in header(screen)


@pytest.mark.slow
async def test_a_save_stuck_on_a_stopped_engine_does_not_keep_it_from_the_header(db: Any, tmp_path: Path) -> None:
    """With a save hanging on the stopped engine, then given up on, and the form closed, the
    header still named the engine as running, for minutes."""
    async with console_behind(tmp_path) as (app, pilot, proxy):
        screen = main(app)
        app.api._client.timeout = httpx.Timeout(HEARTBEAT + HEARTBEAT_WAIT + 2)  # the client's 15 s, shorter
        proxy.hang()
        form = await comment_saving(app, pilot, "stuck two")
        # Under the form, while it says "saving…": the list's header, seen through its backdrop.
        await until(pilot, lambda: "ENGINE UNREACHABLE" in header(screen), timeout=FLAGGED_WITHIN, what="flagged under the form")
        assert form.busy
        await until(pilot, lambda: "did not answer in time" in " ".join(form.problems_shown), timeout=10, what="the save given up")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="the form closed")
        await pilot.pause(HEARTBEAT + 0.5)
        assert "ENGINE UNREACHABLE" in header(screen)
        proxy.wake()
        await until(pilot, lambda: "ENGINE UNREACHABLE" not in header(screen), timeout=FLAGGED_WITHIN, what="the engine back")


async def test_counts_are_unknown_until_a_hung_engine_first_answers(sdb: Any, tmp_path: Path) -> None:
    """Started against a stopped engine, the header read "open ◆0 ▲0 ●0 ○0 │ no targets" for the
    15 s the client waited: all clear, at 3 a.m., where nothing was known."""
    await seed_two()
    async with running_api() as api, hanging_proxy(api.url) as proxy:
        proxy.hang()
        args = console_args(tmp_path, proxy.url, api.tokens["responder"])
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                screen = main(app)
                await pilot.pause(1.0)
                shown = header(screen)
                assert "connecting" in shown and "◆? ▲? ●? ○?" in shown and "targets ?" in shown, shown
                assert "◆0" not in shown and "no targets" not in shown, shown
                await proxy.down()  # the request held ends, rather than after the client's 15 s
        finally:
            await cleanup()
