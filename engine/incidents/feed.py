"""The change feed: timeline events read by ascending id after a cursor.

Works the same across processes and machines on SQLite and PostgreSQL; a follower keeps the
last id it has seen and reads after it, woken by PostgreSQL's notifications or polling on
SQLite (see `follow` and engine.storage.changes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine.storage.changes import change_signal
from engine.storage.models import Event


def event_to_dict(event: dict[str, Any]) -> dict[str, Any]:
    at = event["at"]
    return {
        "id": event["id"],
        "incident_id": event.get("incident_id"),
        "incident": f"INC-{event['incident__number']}" if event.get("incident__number") is not None else None,
        "kind": event["kind"],
        "actor": event["actor"],
        "at": at.isoformat() if hasattr(at, "isoformat") else at,
        "summary": event["summary"],
        "data": event["data"],
    }


async def events_since(cursor: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """Events with id > cursor, oldest first, at most `limit`."""
    rows = (
        await Event.filter(id__gt=cursor)
        .order_by("id")
        .limit(limit)
        .values("id", "incident_id", "incident__number", "kind", "actor", "at", "summary", "data")
    )
    return [event_to_dict(r) for r in rows]


async def latest_cursor() -> int:
    """The newest event's id (0 when there is none): one primary-key lookup, plain SQL because
    pollers and caches ask for it on every request."""
    rows = await Event._meta.db.execute_query_dict('SELECT MAX("id") AS last FROM "event"')
    return int(rows[0]["last"] or 0)


async def follow(cursor: int = 0, interval: float = 0.25, limit: int = 500) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield batches of new events forever. When idle, wait for a commit anywhere to be
    signalled (PostgreSQL), or poll every `interval` seconds (SQLite, or while not listening)."""
    signal = change_signal()
    while True:
        seen = signal.generation  # before the read: a commit signalled after it wakes the wait
        batch = await events_since(cursor, limit)
        if batch:
            cursor = batch[-1]["id"]
            yield batch
            if len(batch) == limit:
                continue
        await signal.wait(seen, interval)
