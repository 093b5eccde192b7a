"""On PostgreSQL the change feed's followers are woken by LISTEN/NOTIFY: a commit in another
process wakes a follower that would otherwise not look for a minute, and a dropped listening
connection costs latency, never events. Real PostgreSQL, the CLI as the other process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.db import PG_URL, run_cli
from support.rest import eventually

from engine.incidents import feed
from engine.storage import changes
from engine.storage.models import Event

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_db(db: Any) -> Any:
    if db.kind != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    return db


async def _follow(into: list[dict[str, Any]]) -> None:
    async for batch in feed.follow(await feed.latest_cursor(), interval=60):
        into.extend(batch)


async def test_a_commit_in_another_process_wakes_a_follower_that_is_not_polling(pg_db, monkeypatch):
    monkeypatch.setattr(changes, "SAFETY_SECONDS", 60.0)  # only a notification can wake it now
    reads = 0
    real_events_since = feed.events_since

    async def counted(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        nonlocal reads
        reads += 1
        return await real_events_since(*args, **kwargs)

    monkeypatch.setattr(feed, "events_since", counted)
    seen: list[dict[str, Any]] = []
    follower = asyncio.create_task(_follow(seen))
    try:
        await eventually(lambda: changes.change_signal().listening, timeout=10)
        await asyncio.sleep(0.5)
        idle_reads = reads
        await asyncio.sleep(1.5)
        assert reads == idle_reads  # idle: no polling at all

        proc = await asyncio.to_thread(run_cli, pg_db, "incident", "create", "--title", "Checkout errors", "--severity", "high")
        assert proc.returncode == 0, proc.stderr
        await eventually(lambda: any(e["kind"] == "created" for e in seen), timeout=10)
        assert [e["incident"] for e in seen if e["kind"] == "created"] == ["INC-1"]
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def test_a_dropped_listener_costs_latency_not_events(pg_db):
    import asyncpg

    seen: list[dict[str, Any]] = []
    follower = asyncio.create_task(_follow(seen))
    admin = await asyncpg.connect(PG_URL.split("?", 1)[0])
    try:
        await eventually(lambda: changes.change_signal().listening, timeout=10)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
            changes.listener_name(pg_db.schema),  # this test's listener only, not other tests' listeners
        )
        assert killed >= 1
        for title in ("Queue backlog", "Disk 85% on db-2"):  # written while nobody listens
            proc = await asyncio.to_thread(run_cli, pg_db, "incident", "create", "--title", title, "--severity", "low")
            assert proc.returncode == 0, proc.stderr
        await eventually(lambda: len([e for e in seen if e["kind"] == "created"]) == 2, timeout=20)
        stored = [e.id for e in await Event.all().order_by("id")]
        assert [e["id"] for e in seen] == stored  # every event, once, in order
        await eventually(lambda: changes.change_signal().listening, timeout=15)  # and it listens again
    finally:
        await admin.close()
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
