"""The timeline and the change plumbing every service function shares: the incident lock, the
event append (with the change hooks that run inside the same transaction) and `change`, the one
lock → check → set → save → event sequence of every incident transition. The hooks are those
subscribed to engine.incidents.hooks.change_hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.domain import IllegalTransition, NotFound, Status, parse_incident_key
from engine.incidents import audit
from engine.incidents.hooks import change_hooks
from engine.incidents.services.validation import valid_actor, valid_text, valid_time
from engine.storage import rows
from engine.storage.changes import notify_sql
from engine.storage.models import AuditEntry, Event, Incident
from engine.storage.sqlite import inline_writes

# Serialises event inserts on PostgreSQL so ids commit in ascending order and a follower
# reading "id > cursor" can never skip a row committed late.
FEED_LOCK_ID = 0x50_47_46  # "PGF"
# An event's id on PostgreSQL: drawn once the feed's lock is held (and the followers woken at commit).
FEED_EVENT_ID = f"(SELECT nextval(pg_get_serial_sequence('event', 'id')) FROM ({notify_sql(FEED_LOCK_ID)}) AS feed)"


async def append_event(
    conn: BaseDBAsyncClient,
    incident: Incident | None,
    kind: str,
    actor: str,
    summary: str,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
    changes: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> Event:
    """Append one timeline event in `conn`'s transaction, with its audit entry (`changes`: the
    incident's stored columns before and after, when the caller knows them) and the hooks.

    On PostgreSQL the feed's lock, the event and the audit entry are one statement: the lock
    is held from there to commit, so the fewer round trips after it, the more writers a second."""
    at = at or utcnow()
    entry = None
    if audit.SOURCE.get() is not None and actor not in audit.ENGINE_ACTORS:  # made through an interface by a person or token
        if changes is not None:
            before, after = changes
        else:
            before, after = field_changes(incident) if incident is not None else ({}, {})
        if data:
            after = {**after, "event": data}
        subject = incident.key if incident is not None else "system"
        area = "incident" if incident is not None else "system"  # maintenance windows and the like
        entry = audit.entry_values(actor, f"{area}.{kind}", subject, summary=summary, before=before, after=after, at=at)
    event = await rows.insert(
        conn,
        Event,
        {
            "incident_id": incident.id if incident is not None else None,
            "kind": kind,
            "actor": actor,
            "at": at,
            "summary": summary,
            "data": data or {},
        },
        {"incident": incident} if incident is not None else None,
        pk_sql=FEED_EVENT_ID,
        also=[(AuditEntry, entry)] if entry is not None else None,
    )
    for hook in change_hooks:
        await hook(incident, event, conn)
    return event


# The actor the engine writes its own timeline entries as (escalation, delivery, on-call).
SYSTEM_ACTOR = "pulseguard"


async def append_system_event(
    conn: BaseDBAsyncClient, incident: Incident | None, kind: str, summary: str, data: dict[str, Any], at: datetime
) -> Event:
    """A timeline entry the engine itself writes, inside the caller's transaction."""
    return await append_event(conn, incident, kind, SYSTEM_ACTOR, summary, data, at)


async def lock_incident(conn: BaseDBAsyncClient, key: str | int, now: datetime | None = None) -> Incident:
    """Fetch an incident for change, writing first so the transaction holds the lock.

    On SQLite the first write takes the database's write lock (transactions are BEGIN
    IMMEDIATE anyway); on PostgreSQL the UPDATE holds the row lock until commit, so two
    processes changing one incident serialise instead of losing an update. One statement
    bumps the version, stamps updated_at and returns the row.
    """
    number = parse_incident_key(key)
    stamp = Incident._meta.fields_map["updated_at"].to_db_value(now or utcnow(), Incident)
    if conn.capabilities.dialect == "postgres":
        sql = 'UPDATE "incident" SET "version" = "version" + 1, "updated_at" = $1 WHERE "number" = $2 RETURNING *'
    else:
        sql = 'UPDATE "incident" SET "version" = "version" + 1, "updated_at" = ? WHERE "number" = ? RETURNING *'
    rows = await conn.execute_query_dict(sql, [stamp, number])
    if not rows:
        raise NotFound(f"no incident INC-{number}")
    incident = Incident._init_from_db(**rows[0])
    incident._locked_row = rows[0]  # what is stored: Change.save writes only what differs
    return incident


# Columns lock_incident itself has written; the rest is compared with what it read.
_STAMPED = frozenset({"id", "version", "updated_at"})


def field_changes(incident: Incident, names: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The incident's columns that differ from the row lock_incident read: (before, after).

    Each value is encoded as it would be stored and compared with the stored form first; only a
    column whose forms differ is decoded (a list or dict changed in place still compares
    unequal, and a stored form written differently, PostgreSQL's jsonb, compares by value)."""
    row = getattr(incident, "_locked_row", None)
    if row is None:
        return {}, {}
    before, after = {}, {}
    meta = Incident._meta
    projection = meta.fields_db_projection
    for name in names if names is not None else projection:
        column = projection[name]
        if name in _STAMPED:
            continue
        field = meta.fields_map[name]
        current = getattr(incident, name)
        raw = row[column]
        if field.to_db_value(current, incident) == raw:
            continue
        stored = field.to_python_value(raw)
        if current != stored:
            before[name], after[name] = stored, current
    return before, after


def changed_fields(incident: Incident) -> list[str] | None:
    """The incident's columns whose values differ from the row lock_incident read, or None
    when it did not come from lock_incident (then the whole row is saved). The row is decoded
    afresh, so a list or dict changed in place still compares unequal."""
    if getattr(incident, "_locked_row", None) is None:
        return None
    return list(field_changes(incident)[1])


async def next_number(conn: BaseDBAsyncClient) -> int:
    await conn.execute_query("INSERT INTO key_counter (name, value) VALUES ('incident', 0) ON CONFLICT (name) DO NOTHING")
    rows = await conn.execute_query_dict("UPDATE key_counter SET value = value + 1 WHERE name = 'incident' RETURNING value")
    return int(rows[0]["value"])


def require_open(incident: Incident, doing: str) -> None:
    if incident.status == Status.RESOLVED.value:
        raise IllegalTransition(f"{incident.key} is resolved; reopen it before you {doing}")


class Change:
    """An incident locked for change inside its transaction, and the moment of the change."""

    def __init__(self, conn: BaseDBAsyncClient, incident: Incident, now: datetime) -> None:
        self.conn = conn
        self.incident = incident
        self.now = now
        # The stored columns this change has saved, before and after: its audit entry's values.
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}

    async def save(self, update_fields: list[str] | None = None) -> None:
        """Store the incident's new values: the columns that differ from the locked row, or
        only `update_fields`. lock_incident has already stamped updated_at and the version;
        rewriting the whole row would re-encode and re-index every column (the analysis
        data included) on each change."""
        if getattr(self.incident, "_locked_row", None) is None:
            if update_fields is None:
                self.incident.updated_at = self.now
            await self.incident.save(using_db=self.conn, update_fields=update_fields)
            return
        before, after = field_changes(self.incident, update_fields)
        for name, value in before.items():
            self.before.setdefault(name, value)
        self.after.update(after)
        fields = list(after) if update_fields is None else update_fields
        if fields:
            await rows.update(self.conn, self.incident, fields)

    async def record(self, kind: str, actor: str, summary: str, data: dict[str, Any] | None = None) -> Event:
        """Append the change's timeline event (and run the change hooks) in its transaction."""
        changes = (self.before, self.after) if getattr(self.incident, "_locked_row", None) is not None else None
        return await append_event(self.conn, self.incident, kind, actor, summary, data, self.now, changes)

    async def commit(
        self, kind: str, actor: str, summary: str, data: dict[str, Any] | None = None, *, update_fields: list[str] | None = None
    ) -> Event:
        """Save, then record: the usual end of a transition."""
        await self.save(update_fields)
        return await self.record(kind, actor, summary, data)


@asynccontextmanager
async def change(key: str | int, now: datetime, *, open_to: str | None = None) -> AsyncIterator[Change]:
    """Lock incident `key` in a new transaction for one change. With `open_to` ("acknowledge
    it"), a resolved incident is refused first. A DomainError raised inside rolls it all back."""
    with inline_writes():  # a few one-row statements: SQLite runs them without thread hops
        async with in_transaction() as conn:
            incident = await lock_incident(conn, key, now)
            if open_to is not None:
                require_open(incident, open_to)
            yield Change(conn, incident, now)


async def record_event(
    key: str | int,
    kind: str,
    summary: str,
    actor: str,
    *,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    """A timeline entry that changes nothing else (a repeated breach, a notification sent…)."""
    actor = valid_actor(actor)
    kind = valid_text(kind, "kind", limit=40)
    now = valid_time(at)
    async with change(key, now) as c:
        return await c.record(kind, actor, summary, data)


async def record_system_event(
    kind: str, summary: str, actor: str, *, data: dict[str, Any] | None = None, at: datetime | None = None
) -> Event:
    """A feed entry not tied to an incident (target down, maintenance started…)."""
    actor = valid_actor(actor)
    async with in_transaction() as conn:
        return await append_event(conn, None, valid_text(kind, "kind", limit=40), actor, summary, data, valid_time(at))
