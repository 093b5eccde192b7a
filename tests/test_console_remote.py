"""`pulseguard --connect URL --token T`: the console over a real API server on loopback (uvicorn,
tokens per role), opening no database itself. A responder acknowledges through the API; a
viewer's console is read-only; a missing token or a bad URL is one clear line and exit 2."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from support.configs import ONCALL_RULES_CONFIG
from support.pilot import detail_text, main, open_form, select_row, until
from support.rest import Api, running_api

from engine.api.local import LocalEngine
from engine.api.remote import RemoteEngine
from engine.incidents import queries, services
from pulseguard_tui.console import build_console, initial_settings, run_console
from pulseguard_tui.forms.incident import AcknowledgeScreen
from pulseguard_tui.screens.incidents import IncidentsScreen


@pytest.fixture
async def api(db: Any) -> AsyncIterator[Api]:
    async with running_api() as running:
        yield running


def console_args(tmp_path: Path, url: str, token: str | None) -> argparse.Namespace:
    config = tmp_path / "pulseguard.toml"
    config.write_text('[engine]\ntimezone = "UTC"\n')
    return argparse.Namespace(
        connect=url,
        token=token,
        config=str(config),
        db=None,
        actor=None,
        json=False,
        theme="dark",
        readonly=False,
        no_engine=False,
        command=None,
    )


async def seed_two() -> None:
    await services.create_incident(title="Checkout API returns 500s", severity="critical", actor="monitor", services=["checkout"])
    await services.create_incident(title="Disk 85% on db-2", severity="medium", actor="monitor")


async def started(app: Any, pilot: Any) -> IncidentsScreen:
    await until(pilot, lambda: app.ready.is_set(), timeout=10, what="connected")
    screen = main(app)
    await until(
        pilot, lambda: screen.table.loaded and screen.table.total >= 2 and screen.detail.detail is not None, what="incidents listed"
    )
    return screen


@asynccontextmanager
async def remote_console(tmp_path: Path, url: str, token: str, size: tuple[int, int] = (80, 24)) -> AsyncIterator[tuple[Any, Any]]:
    """A console over --connect with `token`, started and on INC-2; closed (and its client) after."""
    args = console_args(tmp_path, url, token)
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=size) as pilot:
            await started(app, pilot)
            await select_row(pilot, "INC-2")
            yield app, pilot
    finally:
        await cleanup()


async def test_console_over_the_api_lists_and_acknowledges(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await seed_two()
    monkeypatch.setenv("PULSEGUARD_TOKEN", api.tokens["responder"])  # no --token: the environment's
    args = console_args(tmp_path, api.url, None)
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(100, 34)) as pilot:
            screen = await started(app, pilot)
            assert isinstance(app.api, RemoteEngine) and not isinstance(app.api, LocalEngine)
            assert app.readonly is False
            assert {r["key"] for r in screen.table.loaded_rows()} == {"INC-1", "INC-2"}
            await until(pilot, lambda: "remote" in str(screen.query_one("#status-line").render()), what="header")
            assert api.url.removeprefix("http://") in str(screen.query_one("#status-line").render())

            await select_row(pilot, "INC-2")
            await open_form(pilot, "a", AcknowledgeScreen)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")
            inc = await queries.incident_detail("INC-2")
            assert inc["acknowledged_by"] == "responder-token"  # the token's name: it went through the API
            await until(
                pilot,
                lambda: "acknowledged by responder-token" in detail_text(app, "#detail-header"),
                what="header shows the acknowledgement",
            )

            # A change made elsewhere arrives over the API's event stream.
            await services.create_incident(title="Payment provider timeouts", severity="high", actor="cli")
            await until(
                pilot, lambda: "INC-3" in {r["key"] for r in screen.table.loaded_rows()}, timeout=5, what="incident from another process"
            )
            remote = app.api
    finally:
        await cleanup()
    assert remote._client.is_closed


async def test_viewer_token_gives_a_read_only_console(api: Api, tmp_path: Path) -> None:
    await seed_two()
    args = console_args(tmp_path, api.url, api.tokens["viewer"])
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(100, 34)) as pilot:
            screen = await started(app, pilot)
            assert app.readonly is True and app.api.readonly is True
            await until(pilot, lambda: "READ-ONLY" in str(screen.query_one("#status-line").render()), what="header")
            await select_row(pilot, "INC-2")
            await pilot.press("a")
            await pilot.pause(0.2)
            assert isinstance(app.screen, IncidentsScreen)  # no form opened
            # The key is not in the footer, yet pressed it says why nothing happens.
            said = [n.message for n in app._notifications]
            assert any("(viewer) may not change anything" in m for m in said), said
            # Typed into the filter, the same letter is text, not a refused key.
            await pilot.press("slash", "a", "c")
            await pilot.pause(0.2)
            assert [n.message for n in app._notifications] == said
            await pilot.press("escape")
            await pilot.press("R")  # the toggle cannot unlock a viewer's token
            await pilot.pause(0.1)
            assert app.readonly is True and app.api.readonly is True
            await pilot.press("a")
            await pilot.pause(0.2)
            assert isinstance(app.screen, IncidentsScreen)
    finally:
        await cleanup()
    assert (await queries.incident_detail("INC-2"))["acknowledged_at"] is None


async def test_a_refused_token_ends_the_console_with_a_clear_message(api: Api, tmp_path: Path) -> None:
    args = console_args(tmp_path, api.url, "pg_not_a_real_token")
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: not app.is_running or app.return_code is not None, timeout=10, what="the console to give up")
    finally:
        await cleanup()
    assert app.return_code == 2


async def gives_up_on_a_closed_port(tmp_path: Path, config: str | None = None) -> tuple[int | None, str, int]:
    """A console started against a port nothing listens on (with `config` as its configuration
    file's text): its exit status, what it said on closing, and the port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, said = await gives_up(tmp_path, f"http://127.0.0.1:{port}", "pg_whatever", config)
    return code, said, port


async def gives_up(tmp_path: Path, url: str, token: str, config: str | None = None) -> tuple[int | None, str]:
    """A console started against `url` with `token` that gives up: its exit status and what it said on closing."""
    args = console_args(tmp_path, url, token)
    if config is not None:
        Path(args.config).write_text(config)
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app._exit, timeout=10, what="the console to give up")
            said = "\n".join(str(r) for r in app._exit_renderables)
    finally:
        await cleanup()
    return app.return_code, said


async def test_an_engine_that_cannot_be_reached_ends_the_console_with_exit_1(tmp_path: Path) -> None:
    """An engine that is down is not bad input: exit 1, as an unreachable database (it was 2)."""
    code, said, port = await gives_up_on_a_closed_port(tmp_path)
    assert code == 1 and f"cannot reach http://127.0.0.1:{port}" in said


def test_missing_token_or_bad_url_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PULSEGUARD_TOKEN", raising=False)
    assert run_console(console_args(tmp_path, "http://127.0.0.1:9", None)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--connect needs an API token" in err and "PULSEGUARD_TOKEN" in err
    assert run_console(console_args(tmp_path, "engine.internal:8080", "t")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an http(s) URL" in err


def shown_actions(app: Any) -> set[str]:
    """The actions whose keys the footer and the key handling offer right now."""
    return {b.binding.action for b in app.screen.active_bindings.values()}


@pytest.fixture
def no_learning_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started in this test serve no post-mortem or analytics endpoints (as an older engine)."""
    from fastapi import APIRouter

    from engine.rest import learning

    monkeypatch.setattr(learning, "router", APIRouter())


async def test_api_me_says_what_the_server_serves(api: Api) -> None:
    async with api.client("viewer") as client:
        me = (await client.get("/api/me")).json()
    assert me["name"] == "viewer-token" and me["role"] == "viewer" and me["may_write"] is False
    assert me["features"] == {"postmortems": True, "postmortem_edits": True, "analytics": True, "oncall": True, "idempotency": True}
    for role, may_write in (("viewer", False), ("responder", True)):
        remote = await RemoteEngine.connect(api.url, api.tokens[role])
        try:
            caps = await remote.capabilities()
        finally:
            await remote.aclose()
        assert caps == {
            "name": f"{role}-token",
            "role": role,
            "may_write": may_write,
            "features": {"postmortems": True, "postmortem_edits": True, "analytics": True, "oncall": True},
        }
    local = await LocalEngine("alice").capabilities()
    assert local["role"] == "local" and local["may_write"] and all(local["features"].values())


async def test_an_engine_without_postmortems_or_analytics_says_so_in_api_me(db: Any, no_learning_routes: None) -> None:
    async with running_api() as api:
        async with api.client("responder") as client:
            me = (await client.get("/api/me")).json()
        learning = {"postmortems": False, "postmortem_edits": False, "analytics": False}
        assert me["may_write"] is True and me["features"] == {**learning, "oncall": True, "idempotency": True}
        remote = await RemoteEngine.connect(api.url, api.tokens["responder"])
        try:
            assert (await remote.capabilities())["features"] == {**learning, "oncall": True}
        finally:
            await remote.aclose()


async def test_viewer_console_offers_no_write_keys_and_never_says_press_r(api: Api, tmp_path: Path) -> None:
    from pulseguard_tui.commands import ConsoleCommands
    from pulseguard_tui.screens.help import help_text

    await seed_two()
    args = console_args(tmp_path, api.url, api.tokens["viewer"])
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await started(app, pilot)
            assert app.capabilities.role == "viewer"
            shown = shown_actions(app)
            assert "filter" in shown and "help" in shown
            assert not shown & {"ack", "comment", "resolve", "new", "toggle_readonly"}, shown
            text = help_text(app)
            assert "Acknowledge" not in text and "changes data" not in text and "Toggle read-only" not in text
            assert "Filter" in text
            names = [name for name, _, _ in ConsoleCommands(screen, None)._entries()]
            assert "Acknowledge" not in names and "Filter (sev: status: svc: tag: @user)" in names
            await select_row(pilot, "INC-2")
            for key in ("a", "R", "c", "n", "7", "S"):
                await pilot.press(key)
                await pilot.pause(0.1)
            assert isinstance(app.screen, IncidentsScreen) and app.readonly
            said = " ".join(n.message for n in app._notifications)
            assert "press R" not in said and "press" not in said.lower()
            # R, hidden for a viewer, said nothing at all when pressed; it says why now.
            await pilot.press("R")
            await pilot.pause(0.1)
            assert app._notifications and list(app._notifications)[-1].message == (
                "this console's API token is a viewer's: it stays read-only"
            )
    finally:
        await cleanup()
    assert (await queries.incident_detail("INC-2"))["acknowledged_at"] is None


async def test_remote_without_postmortems_or_analytics_says_so(db: Any, tmp_path: Path, no_learning_routes: None) -> None:
    async with running_api() as api:
        await remote_without_learning(api, tmp_path)


async def remote_without_learning(api: Api, tmp_path: Path) -> None:
    from pulseguard_tui.screens.analytics import AnalyticsScreen
    from pulseguard_tui.widgets.postmortem import NOT_HERE

    await seed_two()
    args = console_args(tmp_path, api.url, api.tokens["responder"])
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await started(app, pilot)
            assert app.may_write and not app.feature("analytics") and not app.feature("postmortems")
            assert "ack" in shown_actions(app)  # a responder still acknowledges, comments, resolves
            await pilot.press("7")
            view = screen.detail.postmortem
            await until(
                pilot,
                lambda: "not available over this connection" in str(view.query_one("#pm-summary").render()),
                what="post-mortem tab says why",
            )
            view.query_one("#pm-timeline").focus()
            await pilot.pause(0.1)
            assert not shown_actions(app) & {"summary", "lists", "impact", "new_entry", "publish", "copy_markdown"}
            assert NOT_HERE.split(":")[0] in str(view.query_one("#pm-summary").render())
            await app.switch_mode("analytics")
            await until(pilot, lambda: isinstance(app.screen, AnalyticsScreen), what="analytics")
            analytics = app.screen
            await until(
                pilot,
                lambda: "not available over this connection" in str(analytics.query_one("#analytics-summary").render()),
                what="analytics says why, no spinner",
            )
            assert "loading" not in str(analytics.query_one("#analytics-period").render())
            assert not shown_actions(app) & {"previous_period", "next_period", "month", "year"}
    finally:
        await cleanup()


@pytest.mark.slow
# Focus after a modal over --connect depends on the console and the wire, not on the engine's
# database: the walk (70 s) runs once, on SQLite.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_every_modal_over_the_api_then_the_next_key_acts_on_the_list(api: Api, tmp_path: Path) -> None:
    """The responder's console over --connect: every modal it offers, closed both ways, with the
    keys reaching the list afterwards (saves take a round trip, and refreshes arrive over the
    event stream while the modal closes)."""
    from support.console_app import seed
    from support.focus import EXPECTED, walk_every_modal

    await seed(targets=False)
    args = console_args(tmp_path, api.url, api.tokens["responder"])
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(100, 34)) as pilot:
            await started(app, pilot)
            seen = await walk_every_modal(app, pilot)
            postmortem_forms = {"SummaryForm", "ListsForm", "ImpactForm", "EntryForm", "RatingForm", "PublishScreen"}
            expected = EXPECTED if app.feature("postmortem_edits") else EXPECTED - postmortem_forms
            assert expected <= seen, f"not opened: {expected - seen}"
    finally:
        await cleanup()


async def test_on_call_over_the_api_as_the_engine_computes_it_contacts_for_responders_only(db: Any) -> None:
    from datetime import UTC, datetime

    from support.rest import config

    from engine.oncall.overview import load_oncall_overview

    cfg = config(ONCALL_RULES_CONFIG)
    at = datetime(2026, 3, 4, 12, tzinfo=UTC)
    async with running_api(cfg) as api:
        async with api.client("responder") as c:
            full = (await c.get("/api/oncall", params={"at": at.isoformat(), "days": 7})).json()
            assert full == await load_oncall_overview(cfg, at, days=7)
            assert full["schedules"][0]["on_call"]["person"]["phone"] == "+31600000002"  # bob's week
            r = await c.get("/api/oncall", params={"schedule": "nope"})
            assert r.status_code == 404 and "nope" in r.json()["message"], r.text
            r = await c.get("/api/oncall", params={"at": "yesterday"})
            assert r.status_code == 422 and r.json()["field"] == "at", r.text
        async with api.client("viewer") as c:
            seen = (await c.get("/api/oncall", params={"at": at.isoformat(), "days": 7})).json()
        people = [seen["schedules"][0]["on_call"]["person"], seen["schedules"][0]["next_handoff"]["person"]]
        people += [s["person"] for s in seen["schedules"][0]["shifts"]]
        assert all(p["name"] and not {"email", "phone", "slack"} & set(p) for p in people), people


async def test_on_call_over_the_api_without_schedules_is_empty(db: Any) -> None:
    from support.rest import config

    async with running_api(config()) as api, api.client("viewer") as c:
        assert (await c.get("/api/oncall")).json()["schedules"] == []


async def test_remote_console_shows_who_is_on_call_from_the_engine(db: Any, tmp_path: Path) -> None:
    """The console over --connect has no schedules of its own (its configuration is empty): the
    engine's are shown, with the times in the schedule's zone."""
    from support.pilot import table_rows
    from support.rest import config

    from pulseguard_tui.screens.oncall import OncallScreen

    await seed_two()
    async with running_api(config(ONCALL_RULES_CONFIG)) as api:
        args = console_args(tmp_path, api.url, api.tokens["viewer"])
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await started(app, pilot)
                await app.switch_mode("oncall")
                screen = app.screen
                assert isinstance(screen, OncallScreen)
                await until(pilot, lambda: screen.overview is not None or screen.error, what="on-call overview")
                assert screen.error is None, screen.error
                rows = table_rows(screen, "#oncall-now")
                assert [r[0] for r in rows] == ["primary", "secondary"] and rows[0][1] in ("Alice Jansen (alice)", "bob", "carol")
                assert "times in Europe/Amsterdam" in str(screen.query_one("#oncall-info").render())
                assert table_rows(screen, "#oncall-shifts")
        finally:
            await cleanup()


async def test_a_row_moved_to_while_the_list_reloads_over_a_slow_link_stays_selected(api: Api, tmp_path: Path) -> None:
    """Over a slow link a reload asked for by the feed arrives after the user moved on: it must
    not put the cursor back on the incident selected when it was asked for (the next key would
    act on that one)."""
    import asyncio

    await seed_two()
    await services.create_incident(title="Search latency above 2 s", severity="low", actor="monitor")
    args = console_args(tmp_path, api.url, api.tokens["responder"])
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await started(app, pilot)
            assert screen.table.selected_key == "INC-1"
            gate = asyncio.Event()
            asked: list[str | None] = []
            real = app.api.incident_page

            async def slow_page(filters: Any = None, offset: int = 0, limit: int = 100, focus_key: str | None = None) -> Any:
                asked.append(focus_key)
                await gate.wait()
                return await real(filters, offset, limit, focus_key)

            app.api.incident_page = slow_page
            await services.create_incident(title="Nightly export failed", severity="low", actor="cli")
            await until(pilot, lambda: asked, timeout=5, what="a reload on its way")
            assert asked == ["INC-1"]
            await pilot.press("j", "j")
            assert screen.table.selected_key == "INC-3"
            gate.set()
            await until(pilot, lambda: screen.table.total == 4, what="the reload's answer")
            await pilot.pause(0.1)
            assert screen.table.selected_key == "INC-3"
            await until(pilot, lambda: screen.detail.detail is not None and screen.detail.detail["key"] == "INC-3", what="detail")
    finally:
        await cleanup()


def test_remote_engine_unreachable_or_refusing_the_token_is_in_the_header_at_80_columns() -> None:
    from pulseguard_tui.widgets.status_line import status_content

    state = {"role": "engine", "remote": "http://127.0.0.1:18080", "readonly": False}
    assert "remote" in str(status_content(state, {}, [], 80))
    for role, shown in (("unreachable", "ENGINE UNREACHABLE"), ("token refused", "TOKEN REFUSED")):
        for width in (80, 120):
            text = str(status_content({**state, "role": role}, {"critical": 1}, [{"state": "down"}], width))
            assert shown in text and len(text) <= width, text
    # A viewer's console on another screen, with two-digit counts: the alarm still shows whole at
    # 80 columns (it came last, and was cut to "ENGINE").
    crowded = {"critical": 12, "high": 30, "medium": 45, "low": 99}
    targets = [{"state": "up"}] * 10 + [{"state": "down"}] * 14
    for title in ("Analytics", "Maintenance", ""):
        text = status_content({**state, "role": "unreachable", "readonly": True}, crowded, targets, 80, title).plain
        assert "ENGINE UNREACHABLE" in text[:80] and "READ-ONLY" in text[:80], text


async def test_the_header_says_when_the_remote_engine_goes_away(db: Any, tmp_path: Path) -> None:
    await seed_two()
    async with running_api() as api:
        args = console_args(tmp_path, api.url, api.tokens["responder"])
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                screen = await started(app, pilot)
                await api.service.stop()
                await app.refresh_overview()  # what the 5-second tick does
                await pilot.pause(0.05)
                assert "ENGINE UNREACHABLE" in str(screen.query_one("#status-line").render())
        finally:
            await cleanup()


@asynccontextmanager
async def a_comment_on_its_way(api: Api, tmp_path: Path) -> AsyncIterator[tuple[Any, Any, Any]]:
    """A responder's console whose comment "ok" on INC-1 is saving: the engine answers when the
    yielded gate is set (the link is slow, or the engine has stopped)."""
    import asyncio

    from pulseguard_tui.forms.incident import CommentScreen

    await seed_two()
    args = console_args(tmp_path, api.url, api.tokens["responder"])
    app, cleanup = build_console(args, initial_settings(args))
    gate = asyncio.Event()
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await started(app, pilot)
            real = app.api.comment

            async def slow_comment(*args: Any, **kwargs: Any) -> Any:
                await gate.wait()
                return await real(*args, **kwargs)

            app.api.comment = slow_comment
            form = await open_form(pilot, "c", CommentScreen)
            await pilot.press("o", "k", "enter")
            hint = form.query_one(".form-hint")
            await until(pilot, lambda: "saving" in str(hint.render()), what="the form says it is saving")
            try:
                yield app, pilot, gate
            finally:
                gate.set()
    finally:
        await cleanup()


async def test_a_slow_save_says_saving_and_esc_does_not_hide_whether_it_was_made(api: Api, tmp_path: Path) -> None:
    """Over a slow link the engine's answer takes seconds: the form keeps drawing and says it is
    saving (it froze, Esc and all, until the answer came); Esc meanwhile keeps it open."""
    async with a_comment_on_its_way(api, tmp_path) as (app, pilot, gate):
        form = app.screen
        hint = form.query_one(".form-hint")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.screen is form and "cannot be called back" in str(hint.render())
        gate.set()
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="closed once saved")
    assert [c["content"] for c in (await queries.incident_detail("INC-1"))["comments"]] == ["ok"]


async def test_quit_while_a_save_is_on_its_way_closes_once_it_is_answered(api: Api, tmp_path: Path) -> None:
    """ctrl+q (or q elsewhere) under a form saying "saving…" closed the console at once and the
    comment was never made, without a word. The console waits for the answer (a few seconds at
    most), then closes, the comment made."""
    async with a_comment_on_its_way(api, tmp_path) as (app, pilot, gate):
        await pilot.press("ctrl+q")
        await pilot.pause(0.3)
        assert app.is_running and not app._exit
        gate.set()
        await until(pilot, lambda: app._exit, what="closed once the save was answered")
        assert not app._exit_renderables  # nothing to say on the terminal
    assert app.return_code == 0
    assert [c["content"] for c in (await queries.incident_detail("INC-1"))["comments"]] == ["ok"]


async def test_quit_when_the_engine_does_not_answer_says_the_save_may_be_lost(api: Api, tmp_path: Path) -> None:
    async with a_comment_on_its_way(api, tmp_path) as (app, pilot, _gate):
        app.quit_grace = 0.3
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app._exit, what="closed after the grace")
        said = "\n".join(str(r) for r in app._exit_renderables)  # printed on the terminal once closed
    assert "not confirmed: Comment on INC-1" in said and "check whether it was saved" in said


async def test_remote_console_counts_today_in_the_engines_time_zone(db: Any, tmp_path: Path) -> None:
    """A console on a machine with no zone of its own (no [engine] timezone in its configuration)
    opens analytics on the engine's current month, as a console beside that engine would: at
    12:00 UTC on 31 March it is already 1 April in Kiritimati (UTC+14)."""
    from datetime import UTC, datetime

    from support.rest import config

    from pulseguard_tui.screens.analytics import AnalyticsScreen

    async with running_api(config('[engine]\ntimezone = "Pacific/Kiritimati"\n')) as api:
        async with api.client("viewer") as c:
            assert (await c.get("/api/me")).json()["timezone"] == "Pacific/Kiritimati"
            assert (await c.get("/api/engine")).json()["timezone"] == "Pacific/Kiritimati"
        await seed_two()
        args = console_args(tmp_path, api.url, api.tokens["viewer"])
        Path(args.config).write_text("[console]\nbell = false\n")  # no zone of its own
        app, cleanup = build_console(args, initial_settings(args))
        app._clock = lambda: datetime(2026, 3, 31, 12, tzinfo=UTC)
        try:
            async with app.run_test(size=(100, 34)) as pilot:
                await started(app, pilot)
                await app.switch_mode("analytics")
                await until(pilot, lambda: isinstance(app.screen, AnalyticsScreen), what="analytics")
                period = app.screen.query_one("#analytics-period")
                await until(pilot, lambda: "(Pacific/Kiritimati)" in str(period.render()), what="the report")
                assert str(period.render()).startswith("2026-04"), str(period.render())
                await pilot.press("y")
                await until(pilot, lambda: "2026-01-01" in str(period.render()), what="the year")
                assert "2026-04-01" in str(period.render()), str(period.render())  # the year so far ends today
        finally:
            await cleanup()


async def test_the_maintenance_form_reads_a_time_without_a_zone_in_the_engines(db: Any, tmp_path: Path) -> None:
    """The form read "2030-01-01T10:00" in the machine's own zone while `pulseguard maintenance
    add` reads it in the engine's `[engine] timezone`: over --connect to an engine in Kiritimati
    (UTC+14) the window came out 14 hours late. It is read in the engine's zone now, and the
    form says which; a wall time the clocks skip there is refused under its field."""
    from support.pilot import command, type_text
    from support.rest import config
    from textual.widgets import Input

    from pulseguard_tui.forms.maintenance import AddMaintenanceScreen
    from pulseguard_tui.screens.maintenance import MaintenanceScreen

    async with running_api(config('[engine]\ntimezone = "Pacific/Kiritimati"\n[[services]]\nname = "database"\n')) as api:
        await seed_two()
        args = console_args(tmp_path, api.url, api.tokens["admin"])
        Path(args.config).write_text("[console]\nbell = false\n")  # no zone of its own
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await started(app, pilot)
                await command(pilot, "maintenance")
                await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen), what="maintenance")
                form = await open_form(pilot, "n", AddMaintenanceScreen)
                assert "times without a zone are read in Pacific/Kiritimati" in str(form.query_one(".form-subtitle").render())
                await type_text(pilot, "DB upgrade")
                form.query_one("#f-services", Input).value = "database"
                # Kiritimati never had summer time; a day it skipped whole: 1994-12-31 (from UTC-10 to +14).
                form.query_one("#f-starts", Input).value = "1994-12-31T10:00"
                await pilot.press("ctrl+s")
                await until(pilot, lambda: any("does not exist in Pacific/Kiritimati" in p for p in form.problems_shown), what="skipped")
                form.query_one("#f-starts", Input).value = "2030-01-01T10:00"
                form.query_one("#f-ends", Input).value = "2030-01-01T12:00"
                await pilot.press("ctrl+s")
                await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen), what="form closed")
        finally:
            await cleanup()
        [window] = [w for w in await queries.list_maintenance(False) if w["title"] == "DB upgrade"]
        assert (window["starts_at"], window["ends_at"]) == ("2029-12-31T20:00:00+00:00", "2029-12-31T22:00:00+00:00"), window


async def test_the_escalation_countdown_stops_while_the_remote_engine_is_away(db: Any, tmp_path: Path) -> None:
    """The countdown is the console's arithmetic over the engine's due time; with the engine gone
    nothing says the step will run then (or that nobody acknowledged meanwhile). The detail says
    the escalation is unknown and when the step was due, ticks no more, and counts again once the
    engine answers."""
    from datetime import UTC, datetime, timedelta

    from engine.rest.server import ApiService
    from engine.storage.models import Incident
    from pulseguard_tui.formatting import local_time

    inc = await services.create_incident(title="Checkout down", severity="critical", actor="engine", services=["checkout"])
    due = datetime.now(UTC) + timedelta(minutes=5)
    # As in test_console_wiring: the planner's field, written directly (no engine loops run here).
    await Incident.filter(id=inc.id).update(escalation={"generation": 1, "level": 0, "next_at": due.isoformat()})
    restarted: ApiService | None = None
    async with running_api() as api:
        args = console_args(tmp_path, api.url, api.tokens["responder"])
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: app.ready.is_set(), timeout=10, what="connected")
                screen = main(app)

                def header() -> str:
                    return detail_text(app, "#detail-header")

                await until(pilot, lambda: "escalates in 4:5" in header(), what="countdown")

                await api.service.stop()  # the engine's API goes away; the console finds out on its own
                lost = f"escalation unknown (offline; due {local_time(due)})"
                await until(pilot, lambda: lost in header(), timeout=10, what="the escalation unknown")
                assert "escalates in" not in header()
                assert "ENGINE UNREACHABLE" in str(screen.query_one("#status-line").render())
                await pilot.pause(1.5)  # the clock ticks (the incident's age moves on), no countdown does
                assert lost in header() and "escalates in" not in header()

                restarted = ApiService(f"127.0.0.1:{api.service.port}", None, db_label="test", relay=False, drain_seconds=3)
                await restarted.start()
                await until(pilot, lambda: "escalates in 4:" in header(), timeout=10, what="the countdown back")
                assert "unknown" not in header()
                assert "ENGINE UNREACHABLE" not in str(screen.query_one("#status-line").render())
        finally:
            await cleanup()
            if restarted is not None:
                await restarted.stop()


async def test_a_status_message_typed_with_s_over_the_api_goes_into_the_message(api: Api, tmp_path: Path) -> None:
    """The same form over --connect: "s" and the words after it in one burst (as SSH delivers
    them) are the message, and the status is the form's default (tests/test_console_forms_polish.py)."""
    from textual import events

    from pulseguard_tui.forms.incident import StatusScreen

    await seed_two()
    async with remote_console(tmp_path, api.url, api.tokens["responder"]) as (app, pilot):
        names = {" ": "space"}
        for c in "sstill on it":
            app.post_message(events.Key(names.get(c, c), c))
        await until(pilot, lambda: isinstance(app.screen, StatusScreen), what="status form")
        form = app.screen
        await until(pilot, lambda: form.query_one("#f-message").value == "still on it", what="the words in the message")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), timeout=10, what="form closed")
        inc = await queries.incident_detail("INC-2")
        assert inc["status"] == "investigating" and inc["updates"][-1]["message"] == "still on it"
        assert inc["updates"][-1]["author"] == "responder-token"  # through the API


async def test_the_way_to_the_list_asks_who_the_token_is_once(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """connect() and the capabilities right after it share one GET /api/me (the console asked
    twice in a row before its first page); a later capabilities() asks again."""
    await seed_two()
    asked: list[str] = []
    call = RemoteEngine._call

    async def counting(self: RemoteEngine, method: str, path: str, **kwargs: Any) -> Any:
        asked.append(path)
        return await call(self, method, path, **kwargs)

    monkeypatch.setattr(RemoteEngine, "_call", counting)
    args = console_args(tmp_path, api.url, api.tokens["responder"])
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await started(app, pilot)
            assert asked.count("/api/me") == 1
            assert app.capabilities.can_write and app.api.actor
            await app.api.capabilities()
            assert asked.count("/api/me") == 2
    finally:
        await cleanup()


async def test_a_bad_configuration_is_reported_before_an_engine_that_cannot_be_reached(tmp_path: Path) -> None:
    """The configuration loads beside the first request to the engine: a broken file is still
    what the console says (exit 2) when the engine is down too."""
    code, said, _ = await gives_up_on_a_closed_port(tmp_path, "[engine\n")
    assert code == 2 and "pulseguard.toml" in said and "cannot reach" not in said


async def test_a_responders_console_offers_no_maintenance_keys_and_says_why(api: Api, tmp_path: Path) -> None:
    """Maintenance windows are an admin token's (the API says 403): a responder's console showed
    "n Add E End", and a whole form filled in was refused at the end. Their keys are not offered
    there; pressed anyway they say why. An admin's console offers them."""
    from support.pilot import command

    from pulseguard_tui.forms.maintenance import AddMaintenanceScreen
    from pulseguard_tui.screens.maintenance import MaintenanceScreen

    await seed_two()

    async def try_maintenance_keys(role: str, offered: bool) -> None:
        args = console_args(tmp_path, api.url, api.tokens[role])
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await started(app, pilot)
                await command(pilot, "maintenance")
                await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen), what="maintenance")
                assert ({"add", "end"} <= shown_actions(app)) is offered, shown_actions(app)
                await pilot.press("n")
                if offered:
                    await until(pilot, lambda: isinstance(app.screen, AddMaintenanceScreen), what="the form")
                    return
                await until(pilot, lambda: any("needs an admin token" in n.message for n in app._notifications), what="why")
                assert isinstance(app.screen, MaintenanceScreen)
                said = [n.message for n in app._notifications if "admin" in n.message]
                assert said == ["add a maintenance window needs an admin token; this console's is a responder's"]
        finally:
            await cleanup()

    await try_maintenance_keys("responder", offered=False)
    await try_maintenance_keys("admin", offered=True)


async def test_a_viewer_pressing_post_mortem_keys_is_told_why_nothing_happens(api: Api, tmp_path: Path) -> None:
    """In the Post-mortem tab a viewer's S, W, I, N, G, H and D did nothing and said nothing
    (only P and Enter said read-only): each now says why, and opens nothing."""
    await seed_two()
    args = console_args(tmp_path, api.url, api.tokens["viewer"])
    app, cleanup = build_console(args, initial_settings(args))
    try:
        async with app.run_test(size=(100, 34)) as pilot:
            screen = await started(app, pilot)
            await select_row(pilot, "INC-2")
            await pilot.press("7")
            await until(pilot, lambda: getattr(app.focused, "id", None) == "pm-timeline", what="the tab's list")
            said: list[str] = []
            notify = app.notify
            app.notify = lambda message, **kw: (said.append(str(message)), notify(message, **kw))[1]  # type: ignore[method-assign]
            for key in ("S", "W", "I", "N", "G", "H", "D"):
                await pilot.press(key)
                await until(pilot, lambda: len(said) == 1, what=f"why {key} does nothing")
                assert "(viewer) may not change anything" in said.pop()
                assert app.screen is screen
    finally:
        await cleanup()


async def test_a_viewer_is_shown_no_hints_for_keys_it_cannot_use(sdb: Any, tmp_path: Path) -> None:
    """Empty tabs named the write keys to a viewer: "no summary yet (S writes one)", "no
    follow-ups yet (F adds one)", "not resolved yet (r resolves …)". A responder's still do."""
    await seed_two()
    async with running_api() as api:
        for role in ("viewer", "responder"):
            async with remote_console(tmp_path, api.url, api.tokens[role], size=(100, 34)) as (app, pilot):
                await pilot.press("6")
                resolution = detail_text(app, "#resolution-body")
                assert "not resolved yet" in resolution and "no follow-ups yet" in resolution, resolution
                await pilot.press("2")
                comments = str(main(app).query_one("#comments-list").get_option_at_index(0).prompt)
                await pilot.press("7")
                await until(pilot, lambda: "no summary yet" in detail_text(app, "#pm-summary"), what="the post-mortem")
                shown = "\n".join((resolution, comments, detail_text(app, "#pm-summary"), detail_text(app, "#pm-lists")))
                hints = ("(r resolves", "(F adds one)", "(c adds one)", "(S writes one)", "(W edits", "N add", "(add follow-ups")
                if role == "viewer":
                    assert not [h for h in hints if h in shown], shown
                else:
                    assert all(h in shown for h in hints), shown


async def test_a_console_without_a_zone_of_its_own_shows_the_engines(db: Any, tmp_path: Path) -> None:
    """The engine's configuration names `[engine] timezone`: a console on a machine in another
    zone (no zone in its own configuration) shows the timeline in the engine's zone, as the
    texts the engine wrote ("held since 18:57 JST") are; one whose configuration names a zone
    keeps it."""
    from support.rest import config as rest_config

    from engine.core import timefmt

    async with running_api(rest_config('[engine]\ntimezone = "Asia/Tokyo"\n')) as api:
        await seed_two()
        args = console_args(tmp_path, api.url, api.tokens["viewer"])
        (tmp_path / "pulseguard.toml").write_text("# no [engine] timezone here\n")
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(100, 30)) as pilot:
                await started(app, pilot)
                assert str(timefmt.display_zone()) == "Asia/Tokyo"
                await until(pilot, lambda: " JST " in detail_text(app, "#timeline-body"), what="timeline in JST")
        finally:
            await cleanup()
        args = console_args(tmp_path, api.url, api.tokens["viewer"])  # timezone = "UTC", its own
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(100, 30)) as pilot:
                await started(app, pilot)
                assert str(timefmt.display_zone()) == "UTC"
        finally:
            await cleanup()


async def test_targets_keep_ageing_and_say_when_they_were_read_while_the_engine_is_away(db: Any, tmp_path: Path) -> None:
    """With the engine unreachable the targets screen keeps its last rows, but "ok 200 30s ago"
    must not stay 30 s old for as long as the engine is away: the ages count on, and the
    summary says the rows are as read then."""
    from datetime import timedelta

    from support.console_app import NOW, seed_targets
    from support.pilot import command
    from textual.widgets import DataTable, Static

    from pulseguard_tui.screens.targets import TargetsScreen

    now = NOW  # the seeded probes ran at NOW - 30 s
    await seed_targets()
    clock = [now]
    async with running_api() as api:
        args = console_args(tmp_path, api.url, api.tokens["viewer"])
        app, cleanup = build_console(args, initial_settings(args))
        app._clock = lambda: clock[0]
        try:
            async with app.run_test(size=(120, 30)) as pilot:
                await until(pilot, lambda: app.ready.is_set(), timeout=10, what="connected")
                await command(pilot, "targets")
                await until(pilot, lambda: isinstance(app.screen, TargetsScreen), what="targets")
                table = app.screen.query_one(DataTable)
                await until(pilot, lambda: table.row_count == 3, what="three targets")

                def last(name: str) -> str:
                    return str(next(table.get_row_at(i)[3] for i in range(table.row_count) if table.get_row_at(i)[0] == name))

                assert last("storefront") == "ok 200 30s ago"
                await api.service.stop()
                clock[0] = now + timedelta(minutes=10)
                await pilot.press("ctrl+r")
                info = app.screen.query_one("#targets-info", Static)
                await until(pilot, lambda: "could not load targets" in str(info.render()), timeout=10, what="unreachable")
                assert last("storefront") == "ok 200 10m ago"
                assert "as read 10m ago" in str(info.render())
                assert table.row_count == 3
        finally:
            await cleanup()


async def test_a_new_incident_over_the_api_takes_when_it_was_detected(api: Api, tmp_path: Path) -> None:
    """The form offers "Detected" (10m ago, an ISO time); over the API it was refused with
    "is not a field of this request", and the only way to save was to clear it."""
    from datetime import UTC, datetime, timedelta

    from support.pilot import open_form, type_text
    from textual.widgets import Input

    from engine.storage.models import Incident
    from pulseguard_tui.forms.incident import NewIncidentScreen

    await seed_two()
    async with remote_console(tmp_path, api.url, api.tokens["responder"]) as (app, pilot):
        form = await open_form(pilot, "n", NewIncidentScreen)
        await type_text(pilot, "Queue backlog growing")
        form.query_one("#f-detected", Input).value = "10m"
        before = datetime.now(UTC)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="the form saved and closed")
    stored = await Incident.get(title="Queue backlog growing")
    assert stored.source == "api" and stored.detected_at is not None
    assert timedelta(minutes=9) < before - stored.detected_at < timedelta(minutes=11)
    async with api.client("responder") as c:
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        r = await c.post("/api/incidents", json={"title": "t", "severity": "low", "detected_at": later})
        assert r.status_code == 422 and r.json()["field"] == "detected_at", r.text
