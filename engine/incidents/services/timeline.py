"""The timeline and the change plumbing every service function shares: the incident lock, the
event append (with the change hooks that run inside the same transaction) and `change`, the one
lock → check → set → save → event sequence of every incident transition. The hooks are those
subscribed to engine.incidents.hooks.change_hooks."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.models import Model
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.domain import IllegalTransition, NotFound, Status, parse_incident_key
from engine.incidents import audit
from engine.incidents.hooks import change_hooks, change_rows
from engine.incidents.services.validation import valid_actor, valid_text, valid_time
from engine.storage import rows
from engine.storage.changes import notify_sql
from engine.storage.db import one_connection
from engine.storage.models import AuditEntry, Event, Incident
from engine.storage.outcome import refused
from engine.storage.sqlite import change_transaction, inline_writes

M = TypeVar("M", bound=Model)
T = TypeVar("T")

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
    made: tuple[Model, ...] = (),
) -> Event:
    """Append one timeline event in `conn`'s transaction, with its audit entry (`changes`: the
    incident's stored columns before and after, when the caller knows them) and the hooks
    (`made`: the rows the change inserted, handed to them as hooks.change_rows).

    On PostgreSQL the feed's lock, the event and the audit entry are one statement: the lock
    is held from there to commit, so the fewer round trips after it, the more writers a second."""
    values, entry = event_values(incident, kind, actor, summary, data, at or utcnow(), changes)
    hooks = change_hooks.for_kind(kind)
    for hook in hooks:
        ahead = getattr(hook, "ahead", None)
        if ahead is not None:  # its reads and cancels before the event: not under the feed's lock
            await ahead(incident, kind, data or {}, conn)
    event = await rows.insert(
        conn,
        Event,
        values,
        {"incident": incident} if incident is not None else None,
        pk_sql=FEED_EVENT_ID,
        also=[(AuditEntry, entry)] if entry is not None else None,
        may_defer=not hooks,  # an entry a hook writes (escalation stopped…): nothing reads its id
    )
    if hooks:
        token = change_rows.set(made)
        try:
            for hook in hooks:
                await hook(incident, event, conn)
        finally:
            change_rows.reset(token)
    return event


def event_values(
    incident: Incident | None,
    kind: str,
    actor: str,
    summary: str,
    data: dict[str, Any] | None,
    at: datetime,
    changes: tuple[dict[str, Any], dict[str, Any]] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The event's columns, and its audit entry's when an interface made the change."""
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
    values = {
        "incident_id": incident.id if incident is not None else None,
        "kind": kind,
        "actor": actor,
        "at": at,
        "summary": summary,
        "data": data or {},
    }
    return values, entry


# The actor the engine writes its own timeline entries as (escalation, delivery, on-call).
SYSTEM_ACTOR = "pulseguard"


async def append_system_event(
    conn: BaseDBAsyncClient, incident: Incident | None, kind: str, summary: str, data: dict[str, Any], at: datetime
) -> Event:
    """A timeline entry the engine itself writes, inside the caller's transaction."""
    return await append_event(conn, incident, kind, SYSTEM_ACTOR, summary, data, at)


def projection(columns: tuple[str, ...] | None) -> str:
    """The SELECT list of an incident read: every column, or only `columns` (and the key, and
    whether it was merged away: every change checks that, `require_unmerged`)."""
    if columns is None:
        return "*"
    names = Incident._meta.fields_db_projection
    return ", ".join(f'"{names[name]}"' for name in dict.fromkeys(("id", "number", "merged_into", *columns)))


async def lock_incident(
    conn: BaseDBAsyncClient,
    key: str | int,
    now: datetime | None = None,
    columns: tuple[str, ...] | None = None,
    *,
    merged: bool = False,
) -> Incident:
    """Fetch an incident for change, writing first so the transaction holds the lock.

    On SQLite the first write takes the database's write lock (transactions are BEGIN
    IMMEDIATE anyway); on PostgreSQL the UPDATE holds the row lock until commit, so two
    processes changing one incident serialise instead of losing an update. One statement
    bumps the version, stamps updated_at and returns the row: all of it, or only `columns` (a
    change that reads a few columns need not decode the incident's JSON ones).

    An incident merged into another is refused (`require_unmerged`; the refusal rolls the
    stamp back with the rest) unless `merged` (the merge, which says why itself).
    """
    number = parse_incident_key(key)
    stamp = Incident._meta.fields_map["updated_at"].to_db_value(now or utcnow(), Incident)
    back = projection(columns)
    a, b = rows.marks(conn.capabilities.dialect, 2)
    sql = f'UPDATE "incident" SET "version" = "version" + 1, "updated_at" = {a} WHERE "number" = {b} RETURNING {back}'
    found = await conn.execute_query_dict(sql, [stamp, number])
    if not found:
        raise NotFound(f"no incident INC-{number}")
    incident = locked(found[0])
    if not merged:
        require_unmerged(incident)
    return incident


def locked(row: dict[str, Any]) -> Incident:
    """The incident read from `row` for a change, keeping what was read: the stored row (a
    save writes only what differs from it) and the decoded values (an immutable value still
    the very object read needs no re-encoding to know it is unchanged)."""
    incident = Incident._init_from_db(**row)
    incident._locked_row = row
    incident._locked_values = dict(vars(incident))
    return incident


# Columns lock_incident itself has written; the rest is compared with what it read.
_STAMPED = frozenset({"id", "version", "updated_at"})
# Values that cannot change in place: one still the very object read is unchanged. Lists and
# dicts (the JSON columns) can, so those are always compared in their stored form.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), datetime, date, Decimal, UUID})
_UNREAD = object()


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
    read = getattr(incident, "_locked_values", None) or {}
    for name in names if names is not None else projection:
        column = projection[name]
        if name in _STAMPED:
            continue
        if column not in row:  # a change that read only some columns
            if name in vars(incident):
                raise ValueError(f"incident.{name} was changed but not read")
            continue
        current = getattr(incident, name)
        if current is read.get(name, _UNREAD) and type(current) in _IMMUTABLE:
            continue
        field = meta.fields_map[name]
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


def require_unmerged(incident: Incident) -> None:
    """Refuse any change to an incident merged into another: it is resolved and all of it
    (timeline, comments, updates, evidence, follow-ups) lives on the survivor now, where a
    change is seen; one here would sit apart from it and off the status page."""
    if incident.merged_into is not None:
        survivor = f"INC-{incident.merged_into}"
        raise IllegalTransition(f"{incident.key} was merged into {survivor}; change {survivor} instead")


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
        self.made: list[Model] = []

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
        after = self.note(update_fields)
        fields = list(after) if update_fields is None else update_fields
        if fields:
            await rows.update(self.conn, self.incident, fields)

    def note(self, update_fields: list[str] | None = None) -> dict[str, Any]:
        """Compare the incident with the locked row and keep each changed column's first
        before and last after (the audit entry's values); returns this save's after."""
        before, after = field_changes(self.incident, update_fields)
        for name, value in before.items():
            self.before.setdefault(name, value)
        self.after.update(after)
        return after

    async def insert(self, model: type[M], values: dict[str, Any]) -> M:
        """Insert a row belonging to the incident (a comment, an update) in the change."""
        row = await rows.insert(self.conn, model, values, {"incident": self.incident})
        self.made.append(row)
        return row

    async def record(self, kind: str, actor: str, summary: str, data: dict[str, Any] | None = None) -> Event:
        """Append the change's timeline event (and run the change hooks) in its transaction."""
        changes = (self.before, self.after) if getattr(self.incident, "_locked_row", None) is not None else None
        return await append_event(self.conn, self.incident, kind, actor, summary, data, self.now, changes, tuple(self.made))

    async def commit(
        self, kind: str, actor: str, summary: str, data: dict[str, Any] | None = None, *, update_fields: list[str] | None = None
    ) -> Event:
        """Save, then record: the usual end of a transition."""
        await self.save(update_fields)
        return await self.record(kind, actor, summary, data)


@asynccontextmanager
async def change(
    key: str | int, now: datetime, *, open_to: str | None = None, columns: tuple[str, ...] | None = None
) -> AsyncIterator[Change]:
    """Lock incident `key` in a new transaction for one change. An incident merged away is
    refused (`lock_incident`); with `open_to` ("acknowledge it"), so is a resolved one. With `columns`, only those are read (the
    incident is partial: the others cannot be read or changed). A DomainError raised inside
    rolls it all back."""
    if open_to is not None and columns is not None and "status" not in columns:
        columns = (*columns, "status")
    # A few one-row statements: SQLite runs them without thread hops, and commits the changes
    # that arrive together once.
    with inline_writes():
        async with change_transaction() as conn:
            incident = await lock_incident(conn, key, now, columns)
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


# Entries of one `record_events` call stored per transaction: the incident's lock (and on
# PostgreSQL the feed's) is held for one chunk, so other changes of it interleave with a long one.
RECORD_CHUNK = 250


async def record_events(
    key: str | int,
    entries: Sequence[tuple[str, str, dict[str, Any] | None]],
    actor: str,
    *,
    at: datetime | None = None,
) -> int:
    """Timeline entries (kind, summary, data) that change nothing else, in order, a chunk of
    them per transaction: an alert group of thousands is stored in seconds, not minutes, and
    is all of it or a prefix of it if the process stops. Returns how many were stored."""
    actor = valid_actor(actor)
    checked = [(valid_text(kind, "kind", limit=40), summary, data) for kind, summary, data in entries]
    now = valid_time(at)
    for start in range(0, len(checked), RECORD_CHUNK):
        async with change(key, now) as c:
            for kind, summary, data in checked[start : start + RECORD_CHUNK]:
                await c.record(kind, actor, summary, data)
    return len(checked)


async def record_system_event(
    kind: str, summary: str, actor: str, *, data: dict[str, Any] | None = None, at: datetime | None = None
) -> Event:
    """A feed entry not tied to an incident (target down, maintenance started…)."""
    actor = valid_actor(actor)
    async with in_transaction() as conn:
        return await append_event(conn, None, valid_text(kind, "kind", limit=40), actor, summary, data, valid_time(at))


# --- changes as one statement ---------------------------------------------------------------


class Quick:
    """How a change may run as one statement on PostgreSQL (see `run_change`): the event kind
    it records, the incident columns its checks read (`guard`), and the models of the rows it
    inserts (their keys are drawn with the read)."""

    def __init__(
        self, kind: str, guard: tuple[str, ...] = (), inserts: tuple[type[Model], ...] = (), columns: tuple[str, ...] | None = None
    ) -> None:
        self.kind = kind
        self.guard = guard
        self.inserts = inserts
        # The incident columns the change reads (None: all); the guard's are read too.
        self.columns = None if columns is None else (*columns, *(g for g in guard if g not in columns))

    @property
    def blind(self) -> bool:
        """Whether the change reads nothing of the incident but its key (a comment): then,
        its id known, it need not read the row at all (see `_plan_blind`)."""
        return self.columns == () and not self.guard

    @functools.cached_property
    def draw_sql(self) -> str:
        """PostgreSQL: a key for each row the change inserts, one line per change (`KeyDraws`)."""
        keys = ", ".join(f"nextval(pg_get_serial_sequence('{m._meta.db_table}', '{m._meta.db_pk_column}'))" for m in self.inserts)
        return f"SELECT {keys or 'NULL'} FROM generate_series(1, $1::int)"

    @functools.cached_property
    def read_sql(self) -> str:
        """PostgreSQL: the incident's columns, and a key drawn for each row it will insert."""
        keys = "".join(
            f", nextval(pg_get_serial_sequence('{m._meta.db_table}', '{m._meta.db_pk_column}')) AS \"pulseguard_key_{i}\""
            for i, m in enumerate(self.inserts)
        )
        return f'SELECT {projection(self.columns)}{keys} FROM "incident" WHERE "number" = $1'


class Stale(Exception):
    """A quick change's guard failed: another writer changed what it read. Run it locked."""


class QuickChange(Change):
    """A change whose writes wait until the end and go as one guarded statement, with no
    transaction held open across the round trips in between (`run_change`)."""

    def __init__(
        self, conn: BaseDBAsyncClient, incident: Incident, now: datetime, quick: Quick, keys: list[Any], guard: tuple[str, ...]
    ) -> None:
        super().__init__(conn, incident, now)
        self.quick = quick
        self.guard = guard
        self.keys = {model: key for model, key in zip(quick.inserts, keys, strict=True)}
        self.rows: list[Model] = []
        self.event: tuple[Event, AuditEntry | None] | None = None

    async def save(self, update_fields: list[str] | None = None) -> None:
        self.note(update_fields)  # sent with the rest at the end

    async def insert(self, model: type[M], values: dict[str, Any]) -> M:
        if model not in self.keys:
            raise Stale(f"{model.__name__} has no key drawn")
        instance = rows.row(model, values, {"incident": self.incident})
        object.__setattr__(instance, model._meta.pk_attr, self.keys.pop(model))
        self.rows.append(instance)
        return instance

    async def record(self, kind: str, actor: str, summary: str, data: dict[str, Any] | None = None) -> Event:
        if kind != self.quick.kind or self.event is not None:
            raise Stale(f"a {kind} event in a change planned for one {self.quick.kind}")
        values, entry = event_values(self.incident, kind, actor, summary, data, self.now, (self.before, self.after))
        event = rows.row(Event, values, {"incident": self.incident})
        self.event = (event, rows.row(AuditEntry, entry) if entry is not None else None)
        return event

    def guard_values(self) -> dict[str, Any]:
        row = self.incident._locked_row  # type: ignore[attr-defined]
        return {name: row[Incident._meta.fields_db_projection[name]] for name in self.guard}

    def inserts(self) -> list[tuple[Model, str | None]]:
        """The change's rows, then its event (keyed by the feed) and its audit entry."""
        if self.event is None:
            raise Stale("a change that records no event")
        event, entry = self.event
        inserts: list[tuple[Model, str | None]] = [(r, None) for r in self.rows]
        inserts.append((event, FEED_EVENT_ID))
        if entry is not None:
            inserts.append((entry, rows.DEFAULT_KEY))
        return inserts


async def _write(changes: list[QuickChange]) -> None:
    """Send quick changes of one incident, all read under the same guard, as one statement:
    each bumps the version once, in order, and draws its event's key from the feed."""
    first = changes[0]
    incident = first.incident
    if len(changes) > 1:
        incident.updated_at = max(c.now for c in changes)
    found = await rows.guarded_write(
        first.conn,
        incident,
        ["updated_at", *first.after],
        first.guard_values(),
        raw_set=f'"version" = "version" + {len(changes)}',
        returning=("version",),
        inserts=[row for c in changes for row in c.inserts()],
    )
    if found is None:
        raise Stale(f"{incident.key} changed meanwhile")
    for i, c in enumerate(changes):
        c.incident.version = found["version"] - (len(changes) - 1 - i)
        object.__setattr__(c.event[0], "id", found[f"key_{i}"])  # type: ignore[index]


class Batches:
    """Quick writes to one incident that arrive while others are being sent wait for them, then
    go together as one statement: on a busy incident the row lock, the feed lock and the commit
    are paid once per batch instead of once per write. Two statements per incident may be on
    their way at once, so the next batch is queued at the server when the last one commits.
    Each write still waits until its own batch is committed. Writes that change the incident's
    columns, or run inside a caller's transaction, go alone."""

    def __init__(self) -> None:
        self._queues: dict[int, list[tuple[QuickChange, asyncio.Future[None]]]] = {}
        self._sending: dict[int, int] = {}
        self._senders: set[asyncio.Task[None]] = set()

    async def write(self, c: QuickChange) -> None:
        if c.after or isinstance(c.conn, TransactionalDBClient):
            await _write([c])
            return
        key = c.incident.id
        if key not in self._sending:  # nothing on its way: send it now, from this task
            self._sending[key] = 1
            try:
                await _write([c])
            finally:
                self._sent(key)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((c, future))
        if self._sending[key] < IN_FLIGHT:
            self._start(key)
        await future

    def _start(self, key: int) -> None:
        self._sending[key] = self._sending.get(key, 0) + 1
        task = asyncio.get_running_loop().create_task(self._send(key), name="pulseguard-batch")
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    def _sent(self, key: int) -> None:
        """One statement of `key`'s is done: start the next batch, or forget the incident."""
        self._sending[key] -= 1
        if self._queues.get(key):
            if self._sending[key] < IN_FLIGHT:
                self._start(key)
        elif not self._sending[key]:
            del self._sending[key]
            self._queues.pop(key, None)

    async def _send(self, key: int) -> None:
        batch: list[tuple[QuickChange, asyncio.Future[None]]] = []
        sent: set[int] = set()  # the futures whose statement is on its way
        try:
            pending = [(c, f) for c, f in self._queues.get(key, []) if not f.done()]
            batch, self._queues[key] = pending[:BATCH_MAX], pending[BATCH_MAX:]
            groups: dict[tuple[Any, ...], list[tuple[QuickChange, asyncio.Future[None]]]] = {}
            for c, f in batch:
                groups.setdefault(tuple(c.guard_values().items()), []).append((c, f))
            for group in groups.values():
                futures = [f for _, f in group]
                sent.update(map(id, futures))
                # Once on its way, the statement's outcome is its members' whatever befalls this
                # task: it may commit after this task is cancelled.
                write = asyncio.ensure_future(_write([c for c, _ in group]))
                write.add_done_callback(functools.partial(_settle, futures))
                with contextlib.suppress(Exception):  # _settle tells the members
                    await asyncio.shield(write)
        finally:
            for _, f in batch:
                if not f.done() and id(f) not in sent:  # never sent: nothing of it is stored
                    f.set_exception(Stale("the batch was not sent"))
            self._sent(key)


def _settle(futures: list[asyncio.Future[None]], write: asyncio.Future[None]) -> None:
    """Tell a batch's members how its statement ended. Only one known not to have applied (its
    guard failed, or the server refused it and so rolled it back) lets each run again, alone and
    locked, to meet its own error there. An outcome the connection lost may have been committed:
    that error is theirs to report, never a reason to write the change again."""
    exc = None if write.cancelled() else write.exception()
    for f in futures:
        if f.done():
            continue
        if write.cancelled():
            f.cancel()
        elif exc is None:
            f.set_result(None)
        elif _not_applied(exc):
            f.set_exception(Stale(str(exc)))
        else:
            f.set_exception(exc)


def _not_applied(exc: BaseException) -> bool:
    return isinstance(exc, Stale) or refused(exc)


batches = Batches()
# Writes in one statement at most (each adds three rows and some 25 parameters).
BATCH_MAX = 64
# Statements per incident on their way at once.
IN_FLIGHT = 2


async def run_change(
    key: str | int,
    now: datetime,
    body: Callable[[Change], Awaitable[T]],
    *,
    quick: Quick | None = None,
    open_to: str | None = None,
) -> T:
    """Run `body` as one change of incident `key` (see `change`).

    With `quick`, on PostgreSQL and when no change hook acts on its event kind, the incident is
    read without a lock, `body` runs against that row and its writes go as one statement (the
    stamp, the columns it changed, its rows, the event and the audit entry) that applies only
    while the `quick.guard` columns (and `merged_into`, and the status with `open_to`) still
    hold what was read. No lock is held across the round trips, so writers to one incident, or
    to many, do not queue behind each other's commits. If the guard fails, `body` runs again, locked. Either
    way only `quick.columns` of the incident are read when no hook will see it."""
    columns = None  # a hook may read any column of the incident
    if quick is not None and not change_hooks.wants(quick.kind):
        columns = quick.columns
        conn = connections.get("default")
        if conn.capabilities.dialect == "postgres":
            try:
                return await _run_quick(conn, key, now, body, quick, open_to)
            except Stale:
                pass
    async with change(key, now, open_to=open_to, columns=columns) as c:
        return await body(c)


async def _run_quick(
    conn: BaseDBAsyncClient, key: str | int, now: datetime, body: Callable[[Change], Awaitable[T]], quick: Quick, open_to: str | None
) -> T:
    if isinstance(conn, TransactionalDBClient):  # a caller's transaction: all of it in there
        c, result = await _plan_quick(conn, key, now, body, quick, open_to)
        await _write([c])
        return result
    number = parse_incident_key(key)
    blind = quick.blind and open_to is None
    known = _incident_ids.get(conn) if blind else None  # only blind changes look (a weak reference per look)
    if known is not None and number in known:
        c, result = await _plan_blind(conn, known[number], number, now, body, quick)
        try:
            await batches.write(c)
        except Stale:
            known.pop(number, None)  # gone, or another incident's: read it again
            raise
        return result
    async with one_connection(conn) as held:
        c, result = await _plan_quick(held, number, now, body, quick, open_to)  # parsed once
        if c.after:  # a change to the incident's columns goes alone: on the connection it read with
            await _write([c])
            return result
    if blind:  # its next changes need not read it
        known = _incident_ids.setdefault(conn, {})
        if len(known) >= _IDS_KEPT:
            known.clear()
        known[number] = c.incident.id
    c.conn = conn  # the others may join a batch, sent on another connection
    await batches.write(c)
    return result


async def _plan_quick(
    conn: BaseDBAsyncClient, key: str | int, now: datetime, body: Callable[[Change], Awaitable[T]], quick: Quick, open_to: str | None
) -> tuple[QuickChange, T]:
    """Read the incident (and the new rows' keys) and run `body` on it; its writes are kept."""
    number = parse_incident_key(key)
    found = await conn.execute_query_dict(quick.read_sql, [number])
    if not found:
        raise NotFound(f"no incident INC-{number}")
    row = found[0]
    keys = [row.pop(f"pulseguard_key_{i}") for i in range(len(quick.inserts))]
    incident = locked(row)
    incident.updated_at = now
    require_unmerged(incident)
    # A merge between this read and the write makes the write apply nothing (Stale: run locked).
    guard = quick.guard if "merged_into" in quick.guard else (*quick.guard, "merged_into")
    if open_to is not None:
        require_open(incident, open_to)
        if "status" not in guard:
            guard = (*guard, "status")
    c = QuickChange(conn, incident, now, quick, keys, guard)
    return c, await body(c)


# Per database client, incident number -> id, as blind quick changes read them. The write
# guards the number too, so a kept id whose row is gone, or holds another number, applies
# nothing (Stale: the change reads it again, locked).
_incident_ids: weakref.WeakKeyDictionary[BaseDBAsyncClient, dict[int, int]] = weakref.WeakKeyDictionary()
_IDS_KEPT = 50_000


async def _plan_blind(
    conn: BaseDBAsyncClient, id: int, number: int, now: datetime, body: Callable[[Change], Awaitable[T]], quick: Quick
) -> tuple[QuickChange, T]:
    """`_plan_quick` for a change that reads nothing of the incident (`Quick.blind`) and whose
    incident's id is known: no read, only its rows' keys, drawn with those of the others
    waiting at the same moment (on a busy incident, one round trip for a few dozen comments)."""
    keys = await key_draws.draw(conn, quick)
    # Unread, it applies only while the incident is not merged away (else it runs locked, refused).
    incident = locked({"id": id, "number": number, "merged_into": None})
    incident.updated_at = now
    c = QuickChange(conn, incident, now, quick, keys, ("number", "merged_into"))
    return c, await body(c)


class KeyDraws:
    """Keys for the new rows of quick changes, drawn from their sequences for every change
    waiting at the moment in one statement; one statement per kind of change on its way at a
    time. A key is drawn when its change asks, as a read would draw it: none is kept for later
    (a key drawn ahead would order one engine's rows after another's written since)."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[BaseDBAsyncClient, Quick], list[asyncio.Future[list[Any]]]] = {}
        self._drawers: set[asyncio.Task[None]] = set()

    async def draw(self, conn: BaseDBAsyncClient, quick: Quick) -> list[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        slot = (conn, quick)
        waiting = self._waiting.get(slot)
        if waiting is None:  # none on its way: this one draws, and takes those who come meanwhile
            waiting = self._waiting[slot] = [future]
            task = loop.create_task(self._draw(slot), name="pulseguard-keys")
            self._drawers.add(task)
            task.add_done_callback(self._drawers.discard)
        else:
            waiting.append(future)
        return await future

    async def _draw(self, slot: tuple[BaseDBAsyncClient, Quick]) -> None:
        conn, quick = slot
        try:
            while True:
                batch = [f for f in self._waiting[slot] if not f.done()]
                self._waiting[slot] = []
                if not batch:
                    return
                try:
                    drawn = list((await conn.execute_query(quick.draw_sql, [len(batch)]))[1])
                    if len(drawn) != len(batch):
                        raise Stale(f"{len(drawn)} keys drawn for {len(batch)} changes")
                except BaseException as exc:  # each waiting change fails as its own read would have
                    for f in batch:
                        if not f.done():
                            f.set_exception(exc if isinstance(exc, Exception) else Stale("no key was drawn"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for f, row in zip(batch, drawn, strict=True):
                    if not f.done():
                        f.set_result(list(row.values())[: len(quick.inserts)])
        finally:
            for f in self._waiting.pop(slot, []):
                if not f.done():
                    f.set_exception(Stale("no key was drawn"))


key_draws = KeyDraws()
