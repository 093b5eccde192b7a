"""Snapshots of the console's main screens at 80x24 and 160x48 in two themes (dark and
light), plus the monochrome theme; and of every other screen, detail tab and form at 80x24
and 160x48 (dark), so what is cut on a small terminal shows in review.

Data, clock, time zone and database label are fixed so the pictures are stable. Update them
with `pytest tests/test_console_snapshots.py --snapshot-update` and look at the report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.console_app import make_app, seed_file

from engine.storage.db import resolve_database

SIZES = [(80, 24), (160, 48)]
THEMES = ["dark", "light"]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def seeded(tmp_path: Path, migrated_template: Any) -> Any:
    db = resolve_database(str(tmp_path / "pulseguard.db"))
    migrated_template.copy_sqlite(db.path)  # conftest's once-migrated schema
    seed_file(db)
    return db


def app_for(db: Any, theme: str) -> Any:
    return make_app(db, theme=theme, own_database=True, db_label="sqlite:/var/lib/pulseguard/pulseguard.db")


async def settle(pilot: Any) -> None:
    """Wait until the list and the detail are loaded (no sleeps in the picture)."""
    screen = pilot.app.screen
    for _ in range(200):
        table = getattr(screen, "table", None)
        if table is None or (table.loaded and screen.detail.detail is not None):
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await finished(pilot)


async def finished(pilot: Any) -> None:
    """Animations (the tab underline's slide) over, text cursors held steady and the resulting
    layout drawn: on a loaded machine a fixed pause can catch them midway, and a blinking
    cursor is off in half the pictures taken more than 0.5 s after the last key."""
    await pilot.wait_for_scheduled_animations()
    for _ in range(200):  # Tabs start the slide 20 ms after a refresh, out of the animator's sight
        if underlines_home(pilot.app):
            break
        await pilot.pause(0.02)
    await pilot.wait_for_scheduled_animations()
    for field in pilot.app.screen.query("Input, TextArea"):
        field.cursor_blink = False  # Textual shows the cursor of a focused field that does not blink
    for area in pilot.app.screen.query("TextArea"):
        # TextArea caches a line drawn in a blink's off phase under the same key as a steady
        # cursor's line (Textual 8.2), so a blink caught off would stay off: draw it afresh.
        area.notify_style_update()
        area.refresh()
    await pilot.pause()


def underlines_home(app: Any) -> bool:
    """Every tab row's underline sits under its active tab, on every screen in the stack."""
    from textual.widgets import Tabs
    from textual.widgets._tabs import Underline

    for screen in app.screen_stack:
        for tabs in screen.query(Tabs):
            active = tabs.query("#tabs-list > Tab.-active")
            if not active:
                continue
            tab = active.first()
            span = tab.virtual_region.shrink(tab.styles.gutter).column_span
            underline = tabs.query_one(Underline)
            if (underline.highlight_start, underline.highlight_end) != span:
                return False
    return True


async def go(pilot: Any, mode: str) -> None:
    await pilot.app.switch_mode(mode)
    for _ in range(200):
        if getattr(pilot.app.screen, "query", None) and pilot.app.screen.query("DataTable"):
            table = pilot.app.screen.query_one("DataTable")
            if table.row_count:
                break
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await finished(pilot)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_incidents(snap_compare: Any, seeded: Any, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(seeded, theme), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_targets(snap_compare: Any, seeded: Any, theme: str, size: tuple[int, int]) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await go(pilot, "targets")

    assert snap_compare(app_for(seeded, theme), terminal_size=size, run_before=before)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_maintenance(snap_compare: Any, seeded: Any, theme: str, size: tuple[int, int]) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await go(pilot, "maintenance")

    assert snap_compare(app_for(seeded, theme), terminal_size=size, run_before=before)


def test_incidents_monochrome_comments_tab(snap_compare: Any, seeded: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause(0.1)

    assert snap_compare(app_for(seeded, "monochrome"), terminal_size=(80, 24), run_before=before)


async def quiet(pilot: Any) -> None:
    """Every worker but the change feed finished (a tab's or screen's data is in), then drawn."""
    for _ in range(300):
        if not [w for w in pilot.app.workers if w.group != "feed" and w.is_running]:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await finished(pilot)


async def postmortem_loaded(pilot: Any) -> None:
    from pulseguard_tui.widgets.postmortem import PostmortemView

    for _ in range(500):
        views = list(pilot.app.screen.query(PostmortemView))
        if views and all(v.doc is not None for v in views):
            break
        await pilot.pause(0.02)
    await quiet(pilot)


def pressing(*keys: str, mode: str | None = None, modal: bool = False) -> Any:
    """run_before: settle, switch to `mode`, press `keys` (a form opens on the last when `modal`)."""

    async def before(pilot: Any) -> None:
        from textual.screen import ModalScreen

        await settle(pilot)
        if mode:
            await pilot.app.switch_mode(mode)
            await quiet(pilot)
        for key in keys:
            await pilot.press(key)
            await quiet(pilot)
            if key == "7":  # the Post-mortem tab loads once shown: its forms start from what it loaded
                await postmortem_loaded(pilot)
        if modal:
            for _ in range(200):
                if isinstance(pilot.app.screen, ModalScreen):
                    break
                await pilot.pause(0.02)
            assert isinstance(pilot.app.screen, ModalScreen), f"{keys} opened no form"
            await quiet(pilot)

    return before


SIZE_IDS = [f"{w}x{h}" for w, h in SIZES]
DETAIL_TABS = ["comments", "updates", "evidence", "correlation", "resolution", "postmortem"]  # keys 2-7; 1 is above


@pytest.mark.parametrize("tab", DETAIL_TABS)
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_detail_tab(snap_compare: Any, seeded: Any, size: tuple[int, int], tab: str) -> None:
    key = str(DETAIL_TABS.index(tab) + 2)
    assert snap_compare(app_for(seeded, "dark"), terminal_size=size, run_before=pressing(key))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_help(snap_compare: Any, seeded: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(seeded, "dark"), terminal_size=size, run_before=pressing("question_mark"))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_analytics(snap_compare: Any, seeded: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(seeded, "dark"), terminal_size=size, run_before=pressing(mode="analytics"))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_oncall(snap_compare: Any, seeded: Any, size: tuple[int, int], tmp_path: Path) -> None:
    from support.configs import ONCALL_CONFIG

    from engine.config.loading import load_config

    path = tmp_path / "pulseguard.toml"
    path.write_text(ONCALL_CONFIG)
    app = app_for(seeded, "dark")
    app.config = load_config(path)
    assert snap_compare(app, terminal_size=size, run_before=pressing(mode="oncall"))


def test_oncall_with_contact_rules(snap_compare: Any, seeded: Any, tmp_path: Path) -> None:
    """The on-call screen says how the person on call is paged (their contact rules)."""
    from support.configs import ONCALL_RULES_CONFIG

    from engine.config.loading import load_config

    path = tmp_path / "pulseguard.toml"
    path.write_text(ONCALL_RULES_CONFIG)
    app = app_for(seeded, "dark")
    app.config = load_config(path)
    assert snap_compare(app, terminal_size=(80, 24), run_before=pressing(mode="oncall"))


FORMS = {  # name: (keys, mode)
    "acknowledge": (["j", "a"], None),
    "status": (["s"], None),
    "severity": (["v"], None),
    "comment": (["c"], None),
    "update": (["u"], None),
    "evidence": (["e"], None),
    "resolve": (["r"], None),
    "promote": (["P"], None),
    "new_incident": (["n"], None),
    "assign": (["A"], None),
    "tags": (["t"], None),
    "false_positive": (["f"], None),
    "command_line": (["colon"], None),
    "maintenance_add": (["n"], "maintenance"),
    "maintenance_end": (["E"], "maintenance"),
    "postmortem_summary": (["7", "S"], None),
    "postmortem_lists": (["7", "W"], None),
    "postmortem_impact": (["7", "I"], None),
    "postmortem_entry": (["7", "N"], None),
    "postmortem_rating": (["7", "G"], None),
}


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_form(snap_compare: Any, seeded: Any, size: tuple[int, int], form: str) -> None:
    keys, mode = FORMS[form]
    assert snap_compare(app_for(seeded, "dark"), terminal_size=size, run_before=pressing(*keys, mode=mode, modal=True))


def test_publish_of_an_open_incidents_post_mortem_says_why_not(snap_compare: Any, seeded: Any) -> None:
    """P on an incident not yet resolved says so at once (it asked first, then refused the yes)."""
    assert snap_compare(app_for(seeded, "dark"), terminal_size=(80, 24), run_before=pressing("7", "P"))


def test_resolve_form_with_problems(snap_compare: Any, seeded: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("r")
        await pilot.pause(0.1)
        await pilot.press("enter")
        await pilot.pause(0.1)
        await finished(pilot)

    assert snap_compare(app_for(seeded, "dark"), terminal_size=(80, 24), run_before=before)


@pytest.fixture
def with_heartbeat(seeded: Any) -> Any:
    """The seeded database plus a heartbeat target whose job stopped pinging."""
    import asyncio

    async def add() -> None:
        from support.console_app import at

        from engine.storage.db import close_database, open_database
        from engine.storage.monitor_models import MonitorTarget

        await open_database(seeded)
        try:
            await MonitorTarget.create(
                name="nightly-backup",
                kind="heartbeat",
                address="pinged every 1d (+1h grace)",
                interval=86400,
                timeout=10,
                state="down",
                last_at=at(0.5),
                last_ok=False,
                last_error="no ping for 1d 2h (expected every 1d, grace 1h)",
                updated_at=at(0.5),
            )
        finally:
            await close_database()

    asyncio.run(add())
    return seeded


def test_targets_with_a_missed_heartbeat(snap_compare: Any, with_heartbeat: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await go(pilot, "targets")

    assert snap_compare(app_for(with_heartbeat, "dark"), terminal_size=(80, 24), run_before=before)


@pytest.fixture
def with_audit(seeded: Any) -> Any:
    """The seeded database plus audit entries from three interfaces."""
    import asyncio

    async def add() -> None:
        from support.console_app import at

        from engine.storage.db import close_database, open_database
        from engine.storage.models import AuditEntry

        await open_database(seeded)
        try:
            rows = [
                (12, "alice", "console", "incident.acknowledged", "INC-3", "acknowledged",
                 {"status": "triggered", "acknowledged_by": None}, {"status": "investigating", "acknowledged_by": "alice"}),
                (9, "ci-bot", "api", "incident.commented", "INC-3", "comment: deploy 4.2 rolled back", {}, {"event": {"comment_id": 7}}),
                (5, "bob", "slack", "incident.status_changed", "INC-3", "status investigating → identified",
                 {"status": "investigating"}, {"status": "identified"}),
                (2, "carol", "cli", "token.create", "token:grafana", "created viewer token grafana", {}, {"role": "viewer"}),
            ]  # fmt: skip
            for minutes, actor, source, action, subject, summary, before, after in rows:
                await AuditEntry.create(
                    at=at(minutes), actor=actor, source=source, action=action, subject=subject, summary=summary, before=before, after=after
                )
        finally:
            await close_database()

    asyncio.run(add())
    return seeded


def test_audit_log(snap_compare: Any, with_audit: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await go(pilot, "audit")

    assert snap_compare(app_for(with_audit, "dark"), terminal_size=(80, 24), run_before=before)


def test_runbook_beside_an_incident(snap_compare: Any, seeded: Any, tmp_path: Path) -> None:
    from engine.config.loading import load_config

    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "checkout.md").write_text(
        "# Checkout returns 500s\n\n1. Check the error rate on the checkout dashboard.\n"
        "2. If a release went out in the last hour, roll it back:\n\n   ```\n   deploy rollback checkout\n   ```\n\n"
        "3. Still failing? Page the payments team.\n"
    )
    (tmp_path / "pulseguard.toml").write_text('[[services]]\nname = "checkout"\nrunbook = "runbooks/checkout.md"\n')
    app = app_for(seeded, "dark")
    app.api.config = load_config(tmp_path / "pulseguard.toml")

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("b")
        for _ in range(200):
            if pilot.app.screen.query("#runbook-body"):
                break
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        await finished(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_services(snap_compare: Any, seeded: Any) -> None:
    from engine.config.loading import parse_config_text

    app = app_for(seeded, "dark")
    app.api.config = parse_config_text(
        '[[users]]\nid = "alice"\nname = "Alice Jansen"\n[[users]]\nid = "bob"\nname = "Bob de Vries"\n\n'
        '[[schedules]]\nname = "primary"\nrotation = "weekly"\nusers = ["alice"]\n\n'
        '[[schedules]]\nname = "payments"\nrotation = "weekly"\nusers = ["bob"]\n\n'
        '[[services]]\nname = "checkout"\nowner = "payments-team"\nescalation_policy = "payments"\n\n'
        '[[services]]\nname = "search"\nowner = "platform"\n\n'
        '[escalation_policy.critical]\n[[escalation_policy.critical.levels]]\nnotify = ["schedule:primary"]\n\n'
        '[escalation_policies.payments.critical]\n[[escalation_policies.payments.critical.levels]]\nnotify = ["schedule:payments", "user:alice"]\n'
    )

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await go(pilot, "services")

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


@pytest.fixture
def with_silences(seeded: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The seeded database plus an active, a pending and an expired silence, with the engine's
    clock at the console's (whether a silence is active is a matter of time)."""
    import asyncio
    from datetime import timedelta

    from support.console_app import NOW, at

    from engine.incidents.services import silences

    monkeypatch.setattr(silences, "utcnow", lambda: NOW)

    async def add() -> None:
        from engine.storage.db import close_database, open_database
        from engine.storage.models import Silence

        def m(field: str, op: str, value: str) -> dict[str, str]:
            return {"field": field, "op": op, "value": value}

        await open_database(seeded)
        try:
            rows = [
                ([m("service", "=", "checkout"), m("severity", "!=", "critical")], at(20), NOW + timedelta(minutes=100), "alice", "deploy 4.2 of checkout", 3, None),
                ([m("target", "=~", "web-.*")], NOW + timedelta(hours=10), NOW + timedelta(hours=12), "bob", "nightly migration of the web tier", 0, None),
                ([m("trigger", "=", "disk_full")], at(300), at(60), "carol", "known: log rotation broken", 1, "carol"),
            ]  # fmt: skip
            for matchers, starts, ends, who, comment, hits, expired_by in rows:
                await Silence.create(
                    matchers=matchers, starts_at=starts, ends_at=ends, comment=comment, created_by=who, created_at=starts,
                    expired_by=expired_by, silenced=hits,
                )  # fmt: skip
        finally:
            await close_database()

    asyncio.run(add())
    return seeded


def test_silences(snap_compare: Any, with_silences: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await go(pilot, "silences")

    assert snap_compare(app_for(with_silences, "dark"), terminal_size=(80, 24), run_before=before)


def _group_and_merge(db: Any) -> None:
    """On the seeded data: 100 firings grouped on INC-2, and INC-6 merged into INC-1."""
    import asyncio

    from support.console_app import at

    from engine.incidents import services
    from engine.storage.db import close_database, open_database
    from engine.storage.models import Incident

    async def go() -> None:
        await open_database(db)
        try:
            await Incident.filter(number=2).update(dedup_key="alert:payments", firing_count=100, last_seen_at=at(1))
            await services.merge("INC-6", "INC-1", "alice", reason="same CDN outage", at=at(2))
        finally:
            await close_database()

    asyncio.run(go())


def test_grouped_incident_shows_its_count_and_last_firing(snap_compare: Any, seeded: Any) -> None:
    _group_and_merge(seeded)

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("down")
        await settle(pilot)
        for _ in range(200):
            if (pilot.app.screen.detail.detail or {}).get("key") == "INC-2":
                break
            await pilot.pause(0.02)
        await finished(pilot)

    assert snap_compare(app_for(seeded, "dark"), terminal_size=(80, 24), run_before=before)


def test_merge_form_picks_the_surviving_incident(snap_compare: Any, seeded: Any) -> None:
    _group_and_merge(seeded)

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("down")
        await pilot.press("m")
        for _ in range(200):
            if pilot.app.screen.query("#f-into"):
                break
            await pilot.pause(0.02)
        await finished(pilot)

    assert snap_compare(app_for(seeded, "dark"), terminal_size=(80, 24), run_before=before)


def test_merged_incident_timeline_on_the_survivor(snap_compare: Any, seeded: Any) -> None:
    _group_and_merge(seeded)

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await finished(pilot)

    assert snap_compare(app_for(seeded, "dark"), terminal_size=(80, 24), run_before=before)


def test_acknowledged_from_an_email_link_on_the_timeline(snap_compare: Any, seeded: Any) -> None:
    """An acknowledgement made from a page's link reads as such on the incident's timeline."""
    import asyncio

    from support.console_app import at

    from engine.incidents import services
    from engine.storage.db import close_database, open_database
    from engine.storage.models import Incident

    keys: list[str] = []

    async def act() -> None:
        await open_database(seeded)
        try:
            incident = await Incident.filter(acknowledged_at=None, status="triggered").order_by("number").first()
            assert incident is not None, "the seeded data has a triggered incident"
            keys.append(incident.key)
            await services.act_once(incident.key, "acknowledge", "alice", nonce="n-snapshot", via="e-mail link", at=at(1))
        finally:
            await close_database()

    asyncio.run(act())

    async def before(pilot: Any) -> None:
        await settle(pilot)
        for _ in range(30):
            if (pilot.app.screen.detail.detail or {}).get("key") == keys[0]:
                break
            await pilot.press("down")
            await settle(pilot)
        assert (pilot.app.screen.detail.detail or {}).get("key") == keys[0]
        await finished(pilot)

    assert snap_compare(app_for(seeded, "dark"), terminal_size=(80, 24), run_before=before)
