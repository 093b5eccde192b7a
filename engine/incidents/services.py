"""The service layer: the one owner of every incident change.

Each public function is one transaction that writes its rows and appends an Event to the
incident's timeline (the change feed). Validation happens before anything is written, and a
refused change raises a DomainError with a message meant for the person who asked.

Other areas (escalation, detection) subscribe change hooks (engine.incidents.hooks) that run
inside the same transaction, so the rows they derive from a change (timers, outbox messages)
are stored atomically with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.analysis import SECTIONS, validate_analysis, validate_section
from engine.core.clock import utcnow
from engine.core.domain import (
    DEFAULT_ROOT_CAUSE_CATEGORIES,
    OPEN_STATUSES,
    SETTABLE_STATUSES,
    EvidenceKind,
    FollowUpGroup,
    IllegalTransition,
    InvalidInput,
    NotFound,
    Severity,
    Source,
    Status,
    parse_enum,
    parse_incident_key,
)
from engine.incidents.hooks import change_hooks
from engine.storage.models import (
    Comment,
    Event,
    Evidence,
    FollowUp,
    Incident,
    MaintenanceWindow,
    StatusUpdate,
)

# Serialises event inserts on PostgreSQL so ids commit in ascending order and a follower
# reading "id > cursor" can never skip a row committed late.
_FEED_LOCK_ID = 0x50_47_46  # "PGF"

NAME_RE = re.compile(r"^[A-Za-z0-9_.@:#/+-]{1,64}$")
MAX_TITLE = 300
MAX_TEXT = 20_000


# --- validation helpers -------------------------------------------------------------------


def valid_actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise InvalidInput("actor", "must not be empty")
    _storable(actor, "actor")
    if len(actor) > 64:
        raise InvalidInput("actor", "is longer than 64 characters")
    return actor


def valid_text(value: str | None, field: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = (value or "").strip()
    _storable(value, field)
    if required and not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > limit:
        raise InvalidInput(field, f"is {len(value)} characters long (at most {limit})")
    return value


def _storable(value: str, field: str) -> str:
    """PostgreSQL refuses NUL in text (SQLite would store it): refuse it on every backend."""
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    return value


def path_safe_name(name: str, field: str) -> str:
    """Names that REST paths address (/api/services/{name}, /api/tokens/{name}) cannot hold '/'."""
    if "/" in name:
        raise InvalidInput(field, f"{name!r} must not contain '/'")
    return name


def valid_names(values: Iterable[str] | None, field: str) -> list[str]:
    out: list[str] = []
    for raw in values or ():
        name = str(raw).strip()
        if not NAME_RE.match(name):
            raise InvalidInput(field, f"{raw!r} is not a valid name (letters, digits and _.-:@#/+, up to 64)")
        if name not in out:
            out.append(name)
    return out


def valid_name(value: str | None, field: str) -> str | None:
    if value is None or not str(value).strip():
        return None
    return valid_names([value], field)[0]


def valid_time(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise InvalidInput("at", "must carry a time zone")
    return at


# A stated time may run this far ahead of the server's clock (client clocks drift); later is refused.
CLOCK_SKEW = timedelta(minutes=2)


def _stated(value: datetime | None, now: datetime, field: str = "timestamp") -> datetime | None:
    """When the writer says something happened: never in the future (beyond clock skew)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput(field, "must carry a time zone (e.g. 2024-01-17T10:35:00Z)")
    if value > now + CLOCK_SKEW:
        raise InvalidInput(field, f"{value.isoformat()} is in the future (the server's time is {now.isoformat(timespec='seconds')})")
    return min(value, now)


def _display_name(value: str | None, field: str) -> str | None:
    """A free-text display name (an e-mail address, "Jan de Vries"): printable, at most 200."""
    if value is None or not str(value).strip():
        return None
    text = " ".join(str(value).split())
    if len(text) > 200:
        raise InvalidInput(field, f"is {len(text)} characters long (at most 200)")
    if not text.isprintable():
        raise InvalidInput(field, "must not contain control characters")
    return text


# --- transaction plumbing -----------------------------------------------------------------


async def append_event(
    conn: BaseDBAsyncClient,
    incident: Incident | None,
    kind: str,
    actor: str,
    summary: str,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query(f"SELECT pg_advisory_xact_lock({_FEED_LOCK_ID})")
    event = await Event.create(
        incident=incident, kind=kind, actor=actor, at=at or utcnow(), summary=summary, data=data or {}, using_db=conn
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
    return Incident._init_from_db(**rows[0])


async def _next_number(conn: BaseDBAsyncClient) -> int:
    await conn.execute_query("INSERT INTO key_counter (name, value) VALUES ('incident', 0) ON CONFLICT (name) DO NOTHING")
    rows = await conn.execute_query_dict("UPDATE key_counter SET value = value + 1 WHERE name = 'incident' RETURNING value")
    return int(rows[0]["value"])


def _require_open(incident: Incident, doing: str) -> None:
    if incident.status == Status.RESOLVED.value:
        raise IllegalTransition(f"{incident.key} is resolved; reopen it before you {doing}")


# --- incident changes ---------------------------------------------------------------------


async def check_services(names: Iterable[str] | None, configured: Iterable[str] = (), field: str = "services") -> None:
    """Refuse service names nobody declared, once any are declared (the configuration's
    [[services]] or services added over the API); a typo must not open an incident for a
    service that does not exist."""
    from engine.storage.models import Service

    wanted = valid_names(names, field)
    if not wanted:
        return
    stored = await Service.all().order_by("name").values_list("name", flat=True)
    known = list(dict.fromkeys([*configured, *(str(name) for name in stored)]))
    unknown = [n for n in wanted if n not in known]
    if known and unknown:
        shown = ", ".join(known[:20]) + (", …" if len(known) > 20 else "")
        raise InvalidInput(field, f"unknown service {unknown[0]!r} (known services: {shown})")


async def create_incident(
    *,
    title: str,
    severity: str,
    actor: str,
    description: str = "",
    services: Sequence[str] = (),
    tags: Sequence[str] = (),
    assignee: str | None = None,
    source: str = Source.MANUAL.value,
    dedup_key: str | None = None,
    detected_at: datetime | None = None,
    target: str | None = None,
    trigger: str | None = None,
    analysis: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Incident:
    """Open an incident (status triggered) and return it."""
    actor = valid_actor(actor)
    title = valid_text(title, "title", limit=MAX_TITLE)
    sev = parse_enum(Severity, severity, "severity").value
    src = parse_enum(Source, source, "source").value
    description = valid_text(description, "description", required=False)
    service_names = valid_names(services, "service")
    tag_names = valid_names(tags, "tag")
    assignee = valid_name(assignee, "assignee")
    analysis = validate_analysis(analysis)
    now = valid_time(at)
    if detected_at is not None and detected_at.tzinfo is None:
        raise InvalidInput("detected_at", "must carry a time zone")
    if detected_at is not None and detected_at > now:
        raise InvalidInput("detected_at", "is later than the incident's creation")
    async with in_transaction() as conn:
        number = await _next_number(conn)
        incident = await Incident.create(
            number=number,
            title=title,
            description=description,
            severity=sev,
            status=Status.TRIGGERED.value,
            source=src,
            services=service_names,
            tags=tag_names,
            assignee=assignee,
            dedup_key=dedup_key,
            target=target,
            trigger=trigger,
            detected_at=detected_at or now,
            created_at=now,
            created_by=actor,
            updated_at=now,
            analysis=analysis or {},
            using_db=conn,
        )
        await append_event(
            conn,
            incident,
            "created",
            actor,
            f"opened {incident.key} ({sev}): {title}",
            {"severity": sev, "source": src, "services": service_names, "tags": tag_names, "assignee": assignee},
            now,
        )
    return incident


async def acknowledge(key: str | int, actor: str, *, at: datetime | None = None) -> Incident:
    """Record who acknowledged; stops escalation. A triggered incident moves to investigating."""
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        _require_open(incident, "acknowledge it")
        if incident.acknowledged_at is not None:
            raise IllegalTransition(f"{incident.key} was already acknowledged by {incident.acknowledged_by}")
        incident.acknowledged_at = now
        incident.acknowledged_by = actor
        old = incident.status
        if old == Status.TRIGGERED.value:
            incident.status = Status.INVESTIGATING.value
        incident.updated_at = now
        await incident.save(using_db=conn)
        await append_event(conn, incident, "acknowledged", actor, "acknowledged", {"from": old, "to": incident.status}, now)
    return incident


async def change_status(
    key: str | int,
    status: str,
    actor: str,
    *,
    message: str | None = None,
    public: bool = False,
    acknowledges: bool = True,
    at: datetime | None = None,
) -> Incident:
    """Move an open incident to investigating, identified or monitoring.

    A person moving an incident out of `triggered` is on it, so that also records the
    acknowledgement; the engine's own moves (recovery to monitoring) pass
    `acknowledges=False` so they neither stop escalation nor count towards MTTA.
    """
    actor = valid_actor(actor)
    new = parse_enum(Status, status, "status")
    if new == Status.RESOLVED:
        raise IllegalTransition("use resolve to resolve an incident (it needs a root cause and solution)")
    if new not in SETTABLE_STATUSES:
        raise IllegalTransition(f"an incident cannot be moved back to {new.value}")
    text = valid_text(message, "message", required=public)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        _require_open(incident, "change its status")
        old = incident.status
        if old == new.value:
            raise IllegalTransition(f"{incident.key} is already {old}")
        incident.status = new.value
        implicit_ack = acknowledges and incident.acknowledged_at is None
        if implicit_ack:
            incident.acknowledged_at = now
            incident.acknowledged_by = actor
        incident.updated_at = now
        await incident.save(using_db=conn)
        if text:
            await StatusUpdate.create(
                incident=incident, status=new.value, message=text, public=public, author=actor, created_at=now, using_db=conn
            )
        summary = f"status {old} → {new.value}" + (f": {text}" if text else "")
        await append_event(
            conn,
            incident,
            "status_changed",
            actor,
            summary,
            {"from": old, "to": new.value, "message": text or None, "public": public, "acknowledged": implicit_ack},
            now,
        )
    return incident


async def change_severity(key: str | int, severity: str, actor: str, *, reason: str | None = None, at: datetime | None = None) -> Incident:
    actor = valid_actor(actor)
    new = parse_enum(Severity, severity, "severity").value
    reason = valid_text(reason, "reason", required=False)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        _require_open(incident, "change its severity")
        old = incident.severity
        if old == new:
            raise IllegalTransition(f"{incident.key} is already {new}")
        incident.severity = new
        incident.updated_at = now
        await incident.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "severity_changed",
            actor,
            f"severity {old} → {new}" + (f": {reason}" if reason else ""),
            {"from": old, "to": new, "reason": reason or None},
            now,
        )
    return incident


async def assign(key: str | int, assignee: str | None, actor: str, *, at: datetime | None = None) -> Incident:
    """Assign to someone, or unassign with None/empty."""
    actor = valid_actor(actor)
    who = valid_name(assignee, "assignee")
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        _require_open(incident, "assign it")
        old = incident.assignee
        if old == who:
            raise IllegalTransition(f"{incident.key} is already {'assigned to ' + who if who else 'unassigned'}")
        incident.assignee = who
        incident.updated_at = now
        await incident.save(using_db=conn)
        await append_event(conn, incident, "assigned", actor, f"assigned to {who}" if who else "unassigned", {"from": old, "to": who}, now)
    return incident


async def set_tags(
    key: str | int,
    actor: str,
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    at: datetime | None = None,
) -> Incident:
    actor = valid_actor(actor)
    to_add = valid_names(add, "tag")
    to_remove = valid_names(remove, "tag")
    if not to_add and not to_remove:
        raise InvalidInput("tags", "name at least one tag to add or remove")
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        old = list(incident.tags)
        new = [t for t in old if t not in to_remove] + [t for t in to_add if t not in old]
        if new == old:
            raise IllegalTransition(f"{incident.key}'s tags are already {', '.join(old) or 'empty'}")
        incident.tags = new
        incident.updated_at = now
        await incident.save(using_db=conn)
        parts = [f"+{t}" for t in to_add if t not in old] + [f"-{t}" for t in to_remove if t in old]
        await append_event(conn, incident, "tags_changed", actor, "tags " + " ".join(parts), {"from": old, "to": new}, now)
    return incident


async def comment(
    key: str | int,
    content: str,
    actor: str,
    *,
    internal_only: bool = False,
    at: datetime | None = None,
    stated_at: datetime | None = None,
    on_behalf_of: str | None = None,
) -> Comment:
    """A comment by `actor`. `stated_at` back-fills when it was said (created_at stays now);
    `on_behalf_of` names the person an integration writes for (shown as "NAME via ACTOR")."""
    actor = valid_actor(actor)
    content = valid_text(content, "comment")
    now = valid_time(at)
    stated = _stated(stated_at, now)
    behalf = _display_name(on_behalf_of, "author")
    if behalf is not None and behalf.lower() == actor.lower():
        behalf = None  # the actor naming itself
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        row = await Comment.create(
            incident=incident,
            author=actor,
            content=content,
            internal_only=internal_only,
            created_at=now,
            stated_at=stated,
            on_behalf_of=behalf,
            using_db=conn,
        )
        data: dict[str, Any] = {"comment_id": row.id, "internal_only": internal_only}
        if stated is not None:
            data["stated_at"] = stated.isoformat()
        if behalf is not None:
            data["on_behalf_of"] = behalf
        await append_event(
            conn,
            incident,
            "commented",
            actor,
            ("internal comment: " if internal_only else "comment: ") + (f"({behalf}) " if behalf else "") + content,
            data,
            now,
        )
    return row


async def post_update(
    key: str | int,
    message: str,
    actor: str,
    *,
    public: bool = True,
    status: str | None = None,
    at: datetime | None = None,
    stated_at: datetime | None = None,
) -> StatusUpdate:
    """A status update (public communication). With `status`, also moves the incident there.
    `stated_at` back-fills when it was posted; created_at and the status change stay now."""
    actor = valid_actor(actor)
    message = valid_text(message, "message")
    new = parse_enum(Status, status, "status").value if status else None
    if new is not None and new not in {s.value for s in SETTABLE_STATUSES}:
        raise IllegalTransition(f"a status update cannot move an incident to {new}")
    now = valid_time(at)
    stated = _stated(stated_at, now)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        _require_open(incident, "post an update")
        old = incident.status
        if new and new != old:
            incident.status = new
            if incident.acknowledged_at is None:
                incident.acknowledged_at = now
                incident.acknowledged_by = actor
        incident.updated_at = now
        await incident.save(using_db=conn)
        row = await StatusUpdate.create(
            incident=incident,
            status=incident.status,
            message=message,
            public=public,
            author=actor,
            created_at=now,
            stated_at=stated,
            using_db=conn,
        )
        data = {"update_id": row.id, "public": public, "from": old, "to": incident.status}
        if stated is not None:
            data["stated_at"] = stated.isoformat()
        await append_event(
            conn,
            incident,
            "status_update",
            actor,
            ("public update" if public else "internal update") + f" ({incident.status}): {message}",
            data,
            now,
        )
    return row


async def promote_comment(comment_id: int, actor: str, *, at: datetime | None = None) -> StatusUpdate:
    """Publish an internal comment's text as a public status update."""
    actor = valid_actor(actor)
    row = await Comment.get_or_none(id=comment_id).prefetch_related("incident")
    if row is None:
        raise NotFound(f"no comment {comment_id}")
    if not row.internal_only:
        raise IllegalTransition("only an internal comment can be promoted to a public update")
    return await post_update(row.incident.number, row.content, actor, public=True, at=at)


async def add_evidence(
    key: str | int,
    kind: str,
    actor: str,
    *,
    url: str | None = None,
    path: str | None = None,
    content: str | None = None,
    range_from: datetime | None = None,
    range_to: datetime | None = None,
    description: str = "",
    at: datetime | None = None,
) -> Evidence:
    actor = valid_actor(actor)
    ev_kind = parse_enum(EvidenceKind, kind, "kind").value
    description = valid_text(description, "description", required=False)
    url = (url or "").strip() or None
    if url is not None and not re.match(r"^[a-z][a-z0-9+.-]*://\S+$", url, re.I):
        raise InvalidInput("url", f"{url!r} is not a URL (expected scheme://…)")
    if not (url or path or content):
        raise InvalidInput("evidence", "give a URL, a file or content")
    if (range_from is None) != (range_to is None):
        raise InvalidInput("range", "give both the start and the end of the time range")
    if range_from and range_to and range_from > range_to:
        raise InvalidInput("range", "starts after it ends")
    if content is not None and len(content) > 1_000_000:
        raise InvalidInput("content", "is larger than 1 MB; attach the file by path instead")
    _storable(url or "", "url")
    _storable(path or "", "path")
    if content is not None and "\x00" in content:
        # A log or file excerpt keeps its text; the NUL bytes no database stores alike are
        # dropped, and the description says so.
        removed = content.count("\x00")
        content = content.replace("\x00", "")
        note = f"({removed} NUL byte{'s' if removed != 1 else ''} removed from the content)"
        description = f"{description} {note}".strip()
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        row = await Evidence.create(
            incident=incident,
            kind=ev_kind,
            url=url,
            path=path,
            content=content,
            range_from=range_from,
            range_to=range_to,
            description=description,
            added_by=actor,
            created_at=now,
            using_db=conn,
        )
        what = description or url or path or ev_kind
        await append_event(
            conn, incident, "evidence_added", actor, f"evidence ({ev_kind}): {what}", {"evidence_id": row.id, "kind": ev_kind}, now
        )
    return row


async def resolve(
    key: str | int,
    actor: str,
    *,
    root_cause: str,
    solution: str,
    category: str | None = None,
    verification_steps: Sequence[str] = (),
    categories: Sequence[str] = DEFAULT_ROOT_CAUSE_CATEGORIES,
    at: datetime | None = None,
) -> Incident:
    actor = valid_actor(actor)
    root_cause = valid_text(root_cause, "root_cause")
    solution = valid_text(solution, "solution")
    cat = (category or "unknown").strip().lower()
    if cat not in categories:
        raise InvalidInput("category", f"unknown root-cause category {category!r} (expected one of: {', '.join(categories)})")
    steps = [{"step": valid_text(s, "verification step", limit=1000), "done": False} for s in verification_steps]
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        if incident.status == Status.RESOLVED.value:
            raise IllegalTransition(f"{incident.key} is already resolved (by {incident.resolved_by})")
        old = incident.status
        incident.status = Status.RESOLVED.value
        incident.resolved_at = now
        incident.resolved_by = actor
        incident.root_cause = root_cause
        incident.root_cause_category = cat
        incident.solution = solution
        incident.verification_steps = steps
        incident.updated_at = now
        await incident.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "resolved",
            actor,
            f"resolved ({cat}): {root_cause}",
            {"from": old, "root_cause": root_cause, "category": cat, "solution": solution, "verification_steps": steps},
            now,
        )
    return incident


async def reopen(key: str | int, actor: str, *, reason: str | None = None, at: datetime | None = None) -> Incident:
    actor = valid_actor(actor)
    reason = valid_text(reason, "reason", required=False)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        if incident.status != Status.RESOLVED.value:
            raise IllegalTransition(f"{incident.key} is not resolved (it is {incident.status})")
        previous = {"resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None, "resolved_by": incident.resolved_by}
        incident.status = Status.INVESTIGATING.value
        incident.resolved_at = None
        incident.resolved_by = None
        incident.updated_at = now
        await incident.save(using_db=conn)
        await append_event(
            conn, incident, "reopened", actor, "reopened" + (f": {reason}" if reason else ""), {"reason": reason or None, **previous}, now
        )
    return incident


async def mark_false_positive(
    key: str | int, actor: str, *, value: bool = True, reason: str | None = None, at: datetime | None = None
) -> Incident:
    actor = valid_actor(actor)
    reason = valid_text(reason, "reason", required=False)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        if incident.false_positive == value:
            state = "already marked" if value else "not marked"
            raise IllegalTransition(f"{incident.key} is {state} as a false positive")
        incident.false_positive = value
        incident.updated_at = now
        await incident.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "false_positive",
            actor,
            ("marked as false positive" if value else "no longer a false positive") + (f": {reason}" if reason else ""),
            {"value": value, "reason": reason or None},
            now,
        )
    return incident


async def set_verification_step(key: str | int, index: int, actor: str, *, done: bool = True, at: datetime | None = None) -> Incident:
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        steps = [dict(s) for s in incident.verification_steps]
        if not 0 <= index < len(steps):
            raise InvalidInput("step", f"{incident.key} has {len(steps)} verification steps; there is no step {index + 1}")
        if steps[index]["done"] == done:
            raise IllegalTransition(f"step {index + 1} is already {'done' if done else 'open'}")
        steps[index]["done"] = done
        incident.verification_steps = steps
        incident.updated_at = now
        await incident.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "verification_step",
            actor,
            f"verification step {index + 1} {'done' if done else 'reopened'}: {steps[index]['step']}",
            {"index": index, "done": done},
            now,
        )
    return incident


async def add_followup(
    key: str | int,
    group: str,
    description: str,
    actor: str,
    *,
    owner: str | None = None,
    due_date: date | None = None,
    at: datetime | None = None,
) -> FollowUp:
    actor = valid_actor(actor)
    grp = parse_enum(FollowUpGroup, group, "group").value
    description = valid_text(description, "description", limit=5000)
    owner = valid_name(owner, "owner")
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        row = await FollowUp.create(
            incident=incident,
            group=grp,
            description=description,
            owner=owner,
            due_date=due_date,
            created_by=actor,
            created_at=now,
            using_db=conn,
        )
        await append_event(
            conn,
            incident,
            "followup_added",
            actor,
            f"follow-up ({grp}): {description}" + (f" — {owner}" if owner else ""),
            {"followup_id": row.id, "group": grp, "owner": owner, "due_date": due_date.isoformat() if due_date else None},
            now,
        )
    return row


async def complete_followup(followup_id: int, actor: str, *, done: bool = True, at: datetime | None = None) -> FollowUp:
    actor = valid_actor(actor)
    now = valid_time(at)
    row = await FollowUp.get_or_none(id=followup_id).prefetch_related("incident")
    if row is None:
        raise NotFound(f"no follow-up {followup_id}")
    async with in_transaction() as conn:
        incident = await lock_incident(conn, row.incident.number, now)
        row = await FollowUp.get(id=followup_id, using_db=conn)
        if row.done == done:
            raise IllegalTransition(f"follow-up {followup_id} is already {'done' if done else 'open'}")
        row.done = done
        row.done_at = now if done else None
        await row.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "followup_done" if done else "followup_reopened",
            actor,
            f"follow-up {'done' if done else 'reopened'}: {row.description}",
            {"followup_id": row.id, "done": done},
            now,
        )
    return row


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
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        return await append_event(conn, incident, kind, actor, summary, data, now)


ANALYSIS_SECTIONS = SECTIONS


async def set_analysis(key: str | int, section: str, data: dict[str, Any] | None, actor: str, *, at: datetime | None = None) -> Incident:
    """Store a detector's analysis (pattern recognition, correlation) on the incident, in the
    shape engine.core.analysis defines (InvalidInput naming the field when it does not fit)."""
    actor = valid_actor(actor)
    data = validate_section(section, data)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key, now)
        analysis = dict(incident.analysis or {})
        analysis[section] = data
        incident.analysis = analysis
        await incident.save(using_db=conn, update_fields=["analysis"])
        summary = _analysis_summary(section, data or {})
        await append_event(conn, incident, "analysis", actor, summary, {"section": section}, now)
    return incident


def _analysis_summary(section: str, data: dict[str, Any]) -> str:
    if section == "pattern":
        text = f"pattern: {data.get('label', 'unknown')} ({data.get('similar_count', 0)} similar in {data.get('period_days', '?')} days)"
        return text + (f"; {data['hint']}" if data.get("hint") else "")
    if section == "correlation":
        top = [f"{c['series']} {c['label']}" for c in (data.get("series") or [])[:2] if c.get("label") != "stable"]
        related = len(data.get("related_incidents") or [])
        return "correlation: " + (", ".join(top) or "no metric changed") + (f"; {related} related incident(s)" if related else "")
    return f"{section} analysis updated"


async def record_system_event(
    kind: str, summary: str, actor: str, *, data: dict[str, Any] | None = None, at: datetime | None = None
) -> Event:
    """A feed entry not tied to an incident (target down, maintenance started…)."""
    actor = valid_actor(actor)
    async with in_transaction() as conn:
        return await append_event(conn, None, valid_text(kind, "kind", limit=40), actor, summary, data, valid_time(at))


async def find_open_incident(dedup_key: str) -> Incident | None:
    return await Incident.filter(dedup_key=dedup_key, status__in=[s.value for s in OPEN_STATUSES]).order_by("-number").first()


# --- maintenance windows ------------------------------------------------------------------


async def create_maintenance(
    *,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    actor: str,
    kind: str = "scheduled",
    services: Sequence[str] = (),
    targets: Sequence[str] = (),
    description: str = "",
    known_services: Iterable[str] | None = None,
) -> MaintenanceWindow:
    """A maintenance window. With `known_services` (the configured ones), a service neither
    configured nor added (the service table) is refused."""
    actor = valid_actor(actor)
    title = valid_text(title, "title", limit=MAX_TITLE)
    if kind not in ("scheduled", "emergency"):
        raise InvalidInput("kind", f"unknown maintenance kind {kind!r} (expected scheduled or emergency)")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidInput("time", "start and end must carry a time zone")
    if ends_at <= starts_at:
        raise InvalidInput("ends", "must be after the start")
    service_names = valid_names(services, "service")
    target_names = valid_names(targets, "target")
    if not service_names and not target_names:
        raise InvalidInput("scope", "name at least one service or target the window covers")
    if service_names and known_services is not None:
        from engine.storage.models import Service

        known = set(known_services) | set(await Service.filter(name__in=service_names).values_list("name", flat=True))
        unknown = [n for n in service_names if n not in known]
        if unknown:
            raise InvalidInput("services", f"unknown service {unknown[0]!r} (configure it or add it first)")
    now = utcnow()
    async with in_transaction() as conn:
        window = await MaintenanceWindow.create(
            title=title,
            kind=kind,
            services=service_names,
            targets=target_names,
            starts_at=starts_at,
            ends_at=ends_at,
            description=valid_text(description, "description", required=False),
            created_by=actor,
            created_at=now,
            using_db=conn,
        )
        await append_event(
            conn,
            None,
            "maintenance_added",
            actor,
            f"{kind} maintenance #{window.id}: {title}",
            {
                "maintenance_id": window.id,
                "services": service_names,
                "targets": target_names,
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
            },
            now,
        )
    return window


async def end_maintenance(window_id: int, actor: str, *, at: datetime | None = None) -> MaintenanceWindow:
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        updated = await MaintenanceWindow.filter(id=window_id, ended_at=None).using_db(conn).update(ended_at=now)
        window = await MaintenanceWindow.get_or_none(id=window_id, using_db=conn)
        if window is None:
            raise NotFound(f"no maintenance window {window_id}")
        if not updated:
            raise IllegalTransition(f"maintenance window {window_id} has already ended")
        if window.ends_at > now:
            window.ends_at = now
            await window.save(using_db=conn)
        await append_event(
            conn, None, "maintenance_ended", actor, f"maintenance #{window.id} ended: {window.title}", {"maintenance_id": window.id}, now
        )
    return window


async def active_maintenance(at: datetime | None = None) -> list[MaintenanceWindow]:
    now = at or utcnow()
    return await MaintenanceWindow.filter(starts_at__lte=now, ends_at__gt=now, ended_at=None).order_by("starts_at")
