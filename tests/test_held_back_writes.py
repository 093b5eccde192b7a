"""Writes held back and sent as one statement (storage.rows.deferring): what escalation's hook
stores for an acknowledgement or a status update is what it stores sending each write alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support.escalation import wire
from tortoise import connections
from tortoise.transactions import in_transaction

from engine.config.loading import load_config
from engine.escalation import changes
from engine.incidents import services
from engine.storage import rows
from engine.storage.escalation_models import Notification, Timer
from engine.storage.models import Event, Incident

EXAMPLE = Path(__file__).resolve().parent.parent / "engine" / "config" / "example.toml"


async def what_escalation_stored(number: int) -> dict[str, Any]:
    incident = await Incident.get(number=number)
    # What differs between two incidents by time alone (their moments, how long an ack took).
    state = {k: v for k, v in incident.escalation.items() if not k.endswith("_at") and k not in ("seen", "time_to_ack_seconds")}
    return {
        "version": incident.version,
        "state": state,
        "seen is the last event": incident.escalation["seen"]
        == max(e for e in await Event.filter(incident_id=incident.id, kind__in=changes.RELEVANT).values_list("id", flat=True)),
        "events": [
            (kind, actor, re.sub(r"INC-\d+|after [\d.]+ \w+|\d\d:\d\d:\d\d", "…", summary))
            for kind, actor, summary in await Event.filter(incident_id=incident.id).order_by("id").values_list("kind", "actor", "summary")
        ],
        "outbox": sorted(
            (n["kind"], n["destination"], n["dedup_key"].split(":")[-1], n["payload"].get("message"))
            for n in await Notification.filter(incident_id=incident.id).values("kind", "destination", "dedup_key", "payload")
        ),
        "timers": sorted(await Timer.filter(incident_id=incident.id).values_list("kind", "state")),
    }


async def a_busy_minute() -> int:
    inc = await services.create_incident(title="checkout slow", severity="critical", actor="probe", services=["api"])
    await services.post_update(inc.key, "looking at the pool", "alice", public=False)
    await services.acknowledge(inc.key, "alice")
    await services.post_update(inc.key, "pool resized", "alice", public=True)
    await services.change_status(inc.key, "monitoring", "alice", message="watching it")
    return inc.number


async def test_escalation_stores_the_same_with_its_writes_held_back(esc_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    wire(load_config(EXAMPLE))
    held = await what_escalation_stored(await a_busy_minute())
    monkeypatch.setattr(changes, "_HELD_BACK", frozenset())
    alone = await what_escalation_stored(await a_busy_minute())
    for what in held:
        assert held[what] == alone[what], what
    assert held["seen is the last event"]
    assert ("escalation_stopped", "pulseguard") in [(kind, actor) for kind, actor, _ in held["events"]]
    assert {state for kind, state in held["timers"] if kind == "escalate"} == {"cancelled"}
    assert {kind for kind, *_ in held["outbox"]} >= {"triggered", "acknowledged", "status_update"}


@pytest.mark.postgres
async def test_held_back_writes_go_as_one_statement_in_order_and_a_keyed_one_replaces_its_earlier(esc_db: Any) -> None:
    if esc_db.kind != "postgres":
        pytest.skip("SQLite sends each write at once")
    inc = await services.create_incident(title="checkout slow", severity="low", actor="probe")
    other = await services.create_incident(title="search slow", severity="low", actor="probe")
    sent: list[str] = []
    async with in_transaction() as conn:
        original = conn.execute_query

        async def counting(query: str, values: Any = None) -> Any:
            sent.append(query)
            return await original(query, values)

        conn.execute_query = counting  # type: ignore[method-assign]
        async with rows.deferring(conn):
            for title in ("first", "second", "third"):
                await rows.write(conn, 'UPDATE "incident" SET "title" = $1 WHERE "id" = $2', [title, inc.id], key="title")
            await rows.write(conn, 'UPDATE "incident" SET "description" = $1 WHERE "id" = $2', ["held back", other.id])
            assert sent == []  # nothing went yet
    assert len(sent) == 1 and sent[0].startswith('WITH "w0" AS (UPDATE')
    assert (await Incident.get(id=inc.id)).title == "third"
    assert (await Incident.get(id=other.id)).description == "held back"


async def test_a_write_outside_the_block_or_on_another_connection_goes_at_once(esc_db: Any) -> None:
    inc = await services.create_incident(title="checkout slow", severity="low", actor="probe")
    pool = connections.get("default")
    a, b = rows.marks(pool.capabilities.dialect, 2)
    async with in_transaction() as conn:
        async with rows.deferring(pool):
            await rows.write(conn, f'UPDATE "incident" SET "title" = {a} WHERE "id" = {b}', ["now", inc.id])
            assert rows.deferred(conn) is None
        stored = await conn.execute_query_dict(f'SELECT "title" FROM "incident" WHERE "id" = {a}', [inc.id])
        assert stored[0]["title"] == "now"
    async with in_transaction() as conn:
        async with rows.deferring(conn):
            pass
        await rows.write(conn, f'UPDATE "incident" SET "title" = {a} WHERE "id" = {b}', ["after the block", inc.id])
        assert rows.deferred(conn) is None
    assert (await Incident.get(id=inc.id)).title == "after the block"


@pytest.mark.postgres
async def test_an_acknowledgement_holds_the_feed_lock_for_one_statement(esc_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the change's event takes the change feed's lock until commit. What
    escalation reads for an acknowledgement (missed changes, who was paged) and the steps it
    cancels go before the event (the hook's `ahead`), so after it only the held-back writes go,
    as one statement."""
    if esc_db.kind != "postgres":
        pytest.skip("the feed's lock is PostgreSQL's")
    import asyncpg

    wire(load_config(EXAMPLE))
    inc = await services.create_incident(title="checkout slow", severity="critical", actor="probe", services=["api"])
    assert await Timer.filter(incident_id=inc.id, kind="escalate", state="pending").exists()
    # A change escalation does not act on (as a delivery's timeline entry) moves the version on:
    # the acknowledgement looks for missed changes, ahead of its event, and finds none.
    await services.comment(inc.key, "looking", "bob")
    sent: list[str] = []
    original = asyncpg.connection.Connection._execute

    async def tracing(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "_execute", tracing)
    await services.acknowledge(inc.key, "alice")
    monkeypatch.undo()
    locked_at = next(i for i, query in enumerate(sent) if "pg_advisory_xact_lock" in query)
    after = sent[locked_at + 1 :]
    assert len(after) == 1 and after[0].startswith("WITH"), after
    assert set(await Timer.filter(incident_id=inc.id, kind="escalate").values_list("state", flat=True)) == {"cancelled"}
    kinds = await Event.filter(incident_id=inc.id).order_by("id").values_list("kind", flat=True)
    assert kinds[-2:] == ["acknowledged", "escalation_stopped"]
    assert await Notification.filter(incident_id=inc.id, kind="acknowledged").exists()

    # Updates of the acknowledged incident: anything left pending is cancelled with the held-back
    # writes (how many is not needed once the escalation stopped), not in a round trip of its own.
    sent.clear()
    monkeypatch.setattr(asyncpg.connection.Connection, "_execute", tracing)
    await services.post_update(inc.key, "pool resized", "alice", public=False)
    monkeypatch.undo()
    assert [query.split(" (")[0] for query in sent] == [
        'UPDATE "incident" SET "version" = "version" + 1, "updated_at" = $1 WHERE "number" = $2 RETURNING *',
        'INSERT INTO "status_update"',
        'WITH "row0" AS',
        'WITH "w0" AS',
    ], sent
    assert 'UPDATE "escalation_timer"' in sent[-1]
