"""A console over --connect whose engine goes away and comes back (stopped, restarted): what it
showed stays on screen, marked as not current, and is read again as soon as the engine answers.

The engine is a real API server (uvicorn on loopback) behind a real loopback TCP proxy
(support.hung_engine) whose port refuses connections while `down()`, as a stopped engine's does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.pilot import detail_text, main, open_form, select_row, type_text, until
from support.rest import running_api
from test_console_remote import gives_up, remote_console, seed_two
from test_console_remote_hung import FLAGGED_WITHIN, console_behind, header

from engine.rest import auth
from pulseguard_tui.app import HEARTBEAT
from pulseguard_tui.forms.incident import CommentScreen


async def test_the_detail_keeps_the_last_known_incident_while_the_engine_is_down(sdb: Any, tmp_path: Path) -> None:
    """Down, the detail of an incident just viewed went blank ("no incident selected") with a
    row selected, and stayed so for seconds after the engine was back."""
    async with console_behind(tmp_path) as (app, pilot, proxy):
        screen = main(app)
        await select_row(pilot, "INC-1")
        await proxy.down()
        await until(pilot, lambda: "ENGINE UNREACHABLE" in header(screen), timeout=FLAGGED_WITHIN, what="ENGINE UNREACHABLE")
        await pilot.press("j")
        await until(pilot, lambda: screen.table.selected_key == "INC-2", what="INC-2 selected")
        await pilot.pause(0.3)
        shown = detail_text(app, "#detail-header")
        # Never viewed here: what the list knows of it, and that the rest is not loaded.
        assert "INC-2" in shown and "Disk 85% on db-2" in shown and "no incident selected" not in shown, shown
        assert "not loaded" in detail_text(app, "#timeline-body")
        await pilot.press("k")
        await until(pilot, lambda: screen.table.selected_key == "INC-1", what="INC-1 selected")
        await pilot.pause(0.3)
        shown = detail_text(app, "#detail-header")
        assert "INC-1" in shown and "Checkout API returns 500s" in shown and "NOT CURRENT" in shown, shown
        assert "created" in detail_text(app, "#timeline-body")  # the timeline as last read
        assert not [n for n in app._notifications if "could not load" in n.message]  # the detail says it

        await proxy.up()
        await until(pilot, lambda: "ENGINE UNREACHABLE" not in header(screen), timeout=FLAGGED_WITHIN, what="the engine back")
        # Read again at once, not when the event stream reconnects (up to 10 s later).
        await until(pilot, lambda: "NOT CURRENT" not in detail_text(app, "#detail-header"), timeout=1.5, what="the detail read again")
        assert "INC-1" in detail_text(app, "#detail-header")


async def test_a_hung_engine_neither_holds_the_detail_nor_its_return(sdb: Any, tmp_path: Path) -> None:
    """Stopped (SIGSTOP), the engine held the request for the row moved to for 15 s, and the
    detail showed the row left meanwhile; back, the detail waited for that request to time out."""
    async with console_behind(tmp_path) as (app, pilot, proxy):
        screen = main(app)
        await select_row(pilot, "INC-1")
        proxy.hang()
        await pilot.press("j")  # its request hangs
        await until(pilot, lambda: "ENGINE UNREACHABLE" in header(screen), timeout=FLAGGED_WITHIN, what="ENGINE UNREACHABLE")
        await pilot.pause(0.2)
        shown = detail_text(app, "#detail-header")
        assert "INC-2" in shown and "NOT LOADED" in shown, shown
        proxy.wake()
        await until(pilot, lambda: "ENGINE UNREACHABLE" not in header(screen), timeout=FLAGGED_WITHIN, what="the engine back")
        await until(pilot, lambda: "NOT" not in detail_text(app, "#detail-header"), timeout=1.5, what="INC-2 read at once")
        assert "INC-2" in detail_text(app, "#detail-header") and "created" in detail_text(app, "#timeline-body")


async def test_a_revoked_token_is_said_once_and_not_sent_again(sdb: Any, tmp_path: Path) -> None:
    """Refused (401), the token went on being sent by the heartbeat, the overview and the feed;
    past five failures the engine slowed the console down and a write said "too many failed
    authentication attempts; retry in 4 s", growing with every retry (16 s at the next start)."""
    await seed_two()
    async with running_api() as api:
        async with remote_console(tmp_path, api.url, api.tokens["responder"]) as (app, pilot):
            screen = main(app)
            form = await open_form(pilot, "c", CommentScreen)
            await type_text(pilot, "on it")
            await auth.revoke_token("responder-token", "tests")
            await until(pilot, lambda: "TOKEN REFUSED" in header(screen), timeout=FLAGGED_WITHIN, what="TOKEN REFUSED")
            failures = api.state.auth_failures
            await pilot.press("enter")  # the form open before: refused at once, without a request
            await until(pilot, lambda: form.problems_shown, timeout=0.5, what="the save refused")
            assert "revoked or unknown" in " ".join(form.problems_shown) and "get a new one" in " ".join(form.problems_shown)
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, what="the form closed")
            await pilot.press("a")  # a write key: said at once, no form to fill in vain
            await pilot.pause(0.2)
            assert app.screen is screen
            said = [n.message for n in app._notifications]
            assert any("revoked or unknown" in m for m in said) and not any("too many" in m for m in said), said
            await pilot.pause(2 * HEARTBEAT + 1.5)  # the heartbeat, the overview and the feed would retry
            assert api.state.auth_failures == failures
            assert "TOKEN REFUSED" in header(screen)
        assert max(api.state.throttle.failures(k) for k in list(api.state.throttle._clients)) <= api.state.throttle.free
        code, said_at_start = await gives_up(tmp_path, api.url, api.tokens["responder"])
    assert code == 2 and "revoked or unknown" in said_at_start and "retry in" not in said_at_start, said_at_start
