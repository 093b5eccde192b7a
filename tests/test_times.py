"""One rule for times shown to people: the viewer's zone (or `[engine] timezone` when set), named,
never a raw ISO string — in the CLI, the e-mail body, the status page and the console. JSON keeps
ISO 8601 with its offset."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.db import run_cli
from support.receivers import SmtpSink
from support.rest import config, running_api

from engine.core import timefmt
from engine.incidents import services
from engine.notify.channels import Dispatcher, settings_from_config
from engine.notify.deliverer import Deliverer

T0 = datetime(2026, 3, 2, 10, 32, tzinfo=UTC)
RAW_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d|\d\d:\d\d:\d\d[+-]\d\d:\d\d|\+00:00")
TOKYO = """
[engine]
timezone = "Asia/Tokyo"

[[services]]
name = "checkout"

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {port}
from = "pulseguard@example.com"
starttls = false

[notifications.internal]
email_groups = ["oncall@example.com"]
"""


def no_raw_iso(text: str, where: str) -> None:
    found = RAW_ISO.findall(text)
    assert not found, f"raw ISO time {found[:3]} in {where}:\n{text}"


async def incident(t0: datetime = T0) -> str:
    inc = await services.create_incident(
        title="Checkout errors", severity="high", actor="monitor", services=["checkout"], detected_at=t0 - timedelta(minutes=2), at=t0
    )
    await services.comment(inc.key, "looking at the pool", "alice", at=t0 + timedelta(minutes=3))
    await services.post_update(inc.key, "We are looking into checkout errors.", "alice", public=True, at=t0 + timedelta(minutes=5))
    await services.add_evidence(
        inc.key,
        "log",
        "alice",
        content="10:30 pool exhausted",
        description="app log",
        range_from=t0 - timedelta(minutes=5),
        range_to=t0 + timedelta(minutes=1),
        at=t0 + timedelta(minutes=6),
    )
    await services.resolve(
        inc.key, "alice", root_cause="pool too small", solution="bigger pool", category="database", at=t0 + timedelta(minutes=40)
    )
    return inc.key


@pytest.fixture
def restore_zone():
    yield
    timefmt.set_display_zone(None)


async def test_cli_shows_times_in_the_viewers_zone_or_the_configured_one(db, tmp_path):
    key = await incident()
    amsterdam = {"TZ": "Europe/Amsterdam"}
    show = run_cli(db, "incident", "show", key, check=True, **amsterdam).stdout
    assert "2026-03-02 11:32 CET" in show and "2026-03-02 11:30 CET" in show  # created, detected
    assert "2026-03-02 11:27 CET → 11:33 CET" in show  # the evidence's range: one date
    no_raw_iso(show, "incident show")
    listing = run_cli(db, "incident", "list", "--all", check=True, **amsterdam).stdout
    no_raw_iso(listing, "incident list")
    entries = run_cli(db, "postmortem", key, "--entries", check=True, **amsterdam).stdout
    assert "2026-03-02 11:32 CET" in entries
    no_raw_iso(entries, "postmortem --entries")
    report = run_cli(db, "report", "--month", "2026-03", "--no-charts", check=True, **amsterdam).stdout
    no_raw_iso(report, "report")

    # `[engine] timezone` set in the configuration wins over TZ.
    cfg = tmp_path / "pulseguard.toml"
    cfg.write_text('[engine]\ntimezone = "Asia/Tokyo"\n')
    show = run_cli(db, "incident", "show", key, "--config", str(cfg), check=True, **amsterdam).stdout
    assert "2026-03-02 19:32 JST" in show and "CET" not in show
    no_raw_iso(show, "incident show with engine.timezone")
    doc = run_cli(db, "postmortem", key, "--config", str(cfg), check=True, **amsterdam).stdout
    assert "2026-03-02 19:32:00 JST" in doc
    no_raw_iso(doc, "post-mortem")

    # Machine output keeps ISO 8601 with its offset.
    data = json.loads(run_cli(db, "incident", "show", key, "--json", "--config", str(cfg), check=True, **amsterdam).stdout)
    assert datetime.fromisoformat(data["created_at"]) == T0 and data["created_at"].endswith("+00:00")


async def test_email_and_status_page_follow_the_configured_zone(db, restore_zone):
    from engine.escalation.wiring import Wiring

    sink = SmtpSink()
    try:
        cfg = config(TOKYO.replace("{port}", str(sink.port)))
        timefmt.configure(cfg)  # as `pulseguard engine` does when it loads this configuration
        wiring = Wiring.for_config(cfg)
        wiring.start()
        # Recent, so the status page still lists it among its resolved incidents.
        t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
        try:
            key = await incident(t0)
        finally:
            wiring.stop()
        dispatcher = Dispatcher(settings_from_config(cfg))
        try:
            await Deliverer(dispatcher).run_once()
        finally:
            await dispatcher.aclose()
        async with running_api(cfg) as api:
            async with api.client() as anon:
                html = (await anon.get("/status")).text
                page = (await anon.get(f"/status/incidents/{key}")).text
    finally:
        sink.close()
    bodies = [m.message.get_content() for m in sink.mails if "oncall@example.com" in m.rcpt_tos]
    opened = next(b for b in bodies if "Opened:" in b)
    tokyo = lambda t: t.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M") + " JST"  # noqa: E731
    assert f"Opened: {tokyo(t0)}" in opened
    for body in bodies:
        no_raw_iso(body, "e-mail")
    assert tokyo(t0 + timedelta(minutes=5)) in page  # the public update
    no_raw_iso(re.sub(r"<[^>]+>", " ", html + page), "status page")


async def test_console_detail_follows_the_viewers_zone(sqlite_database, migrated_template, monkeypatch, restore_zone):
    from support.console_app import make_app
    from support.pilot import main, until

    from engine.storage.db import close_database, open_database
    from pulseguard_tui.widgets.detail import comment_prompt, evidence_text, resolution_text, timeline_text, updates_text

    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    try:
        migrated_template.copy_sqlite(sqlite_database.path)
        await open_database(sqlite_database)
        try:
            key = await incident()
            app = make_app(sqlite_database, clock=lambda: T0 + timedelta(hours=1))
            async with app.run_test(size=(120, 40)) as pilot:
                screen = main(app)
                await until(pilot, lambda: screen.table.loaded, what="first load")
                await pilot.press("x")  # show resolved incidents
                await until(pilot, lambda: screen.detail.detail is not None and screen.detail.detail["key"] == key, what=key)
                d = screen.detail.detail
                texts = {
                    "timeline": str(timeline_text(d)),
                    "updates": str(updates_text(d)),
                    "evidence": str(evidence_text(d)),
                    "resolution": str(resolution_text(d)),
                    "comment": str(comment_prompt(d["comments"][0])),
                }
                await pilot.press("5")  # the Correlation tab names the start too
                await until(pilot, lambda: "incident start" in str(screen.query_one("#corr-summary").render()), what="correlation")
                texts["correlation"] = str(screen.query_one("#corr-summary").render())
        finally:
            await close_database()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "2026-03-02 11:32 CET" in texts["timeline"]
    assert "2026-03-02 11:37 CET" in texts["updates"]
    assert "2026-03-02 11:27 CET → 11:33 CET" in texts["evidence"]
    assert "Resolved 2026-03-02 12:12 CET" in texts["resolution"]
    assert "2026-03-02 11:35 CET" in texts["comment"]
    assert "incident start 2026-03-02 11:30 CET" in texts["correlation"]
    for where, text in texts.items():
        no_raw_iso(text, where)
