"""Read side: incidents and their details as plain dicts (for the CLI, API and console)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.core.domain import OPEN_STATUSES, SEVERITY_ORDER, NotFound, Severity, Status, parse_enum, parse_incident_key
from engine.incidents.feed import event_to_dict
from engine.storage.models import Comment, Event, Evidence, FollowUp, Incident, MaintenanceWindow, StatusUpdate
from engine.storage.rows import marks

LIST_FIELDS = (
    "id",
    "number",
    "title",
    "severity",
    "status",
    "source",
    "services",
    "tags",
    "assignee",
    "created_at",
    "updated_at",
    "detected_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "false_positive",
    "target",
    "trigger",
    "escalation",
    "firing_count",
    "last_seen_at",
    "merged_into",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def incident_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: _iso(v) for k, v in row.items()}
    out["key"] = f"INC-{row['number']}"
    return out


def _list_query(
    *,
    status: str | Sequence[str] | None = None,
    severity: str | None = None,
    include_resolved: bool = False,
    service: str | None = None,
    tag: str | None = None,
    since: datetime | None = None,
) -> Any:
    """The filters `list_incidents` and `count_incidents` share."""
    query = Incident.all()
    wanted = status_filter(status)
    if wanted:
        query = query.filter(status__in=wanted)
    elif not include_resolved:
        query = query.filter(status__in=[s.value for s in OPEN_STATUSES])
    if severity:
        query = query.filter(severity=parse_enum(Severity, severity, "severity").value)
    if since:
        query = query.filter(created_at__gte=since)
    if service:
        query = names_contain(query, "services", service, "_svc")
    if tag:
        query = names_contain(query, "tags", tag, "_tag")
    return query


def names_contain(query: Any, column: str, name: str, alias: str) -> Any:
    """`query` narrowed to rows whose JSON list `column` holds `name`. JSON filters are not
    available on SQLite: match the quoted name in the list's text form, which works on both
    backends (names cannot contain quotes)."""
    from tortoise.expressions import RawSQL

    return query.annotate(**{alias: RawSQL(f'CAST("{column}" AS TEXT)')}).filter(**{f"{alias}__contains": f'"{name}"'})


def severity_rank(*, indexed: bool = True) -> Any:
    """An SQL expression: an incident's place in SEVERITY_ORDER (worst first). As written it is
    the list's index's first column (migration 0017); `indexed=False` writes it so that no
    index matches it, and the database picks the rows by its other conditions first."""
    from tortoise.expressions import RawSQL

    return RawSQL(RANK_SQL if indexed else f"+({RANK_SQL})")


# Literal SQL (constants only): asyncpg cannot type a parametrised CASE ... THEN $n.
RANK_SQL = (
    'CASE "severity" ' + " ".join(f"WHEN '{s.value}' THEN {i}" for i, s in enumerate(SEVERITY_ORDER)) + f" ELSE {len(SEVERITY_ORDER)} END"
)


async def list_incidents(*, limit: int = 500, offset: int = 0, after: ListPosition | None = None, **filters: Any) -> list[dict[str, Any]]:
    """Incidents sorted by severity (worst first), then newest first; one window of them,
    ordered and cut in SQL. `after` (a row's `position`) starts the window just past that row,
    so following pages stays correct while incidents open. `filters` are `_list_query`'s:
    status, severity, include_resolved, service, tag, since."""
    rows: list[dict[str, Any]] = []
    for query in list_queries(limit=limit, offset=offset, after=after, **filters):
        rows += await query.limit(limit - len(rows)).values(*LIST_FIELDS)
        if len(rows) >= limit:
            break
    return [incident_row(r) for r in rows]


def list_queries(*, limit: int = 500, offset: int = 0, after: ListPosition | None = None, **filters: Any) -> list[Any]:
    """The ordered queries whose rows, in turn, make a window of the list (each still to be
    cut to what the window lacks). They read the list's index (incident_list_order: the
    severity's rank, then newest first) from where the window starts, so a page costs the same
    in a table of a thousand incidents or a million: one severity's rows newest first, or
    after a row its own severity's rest, then the lower severities'. A service or tag filter
    (a text match no index serves) leaves the database to start from the open incidents."""
    from tortoise.expressions import Q

    matched = bool(filters.get("service") or filters.get("tag"))
    # A severity is said as its rank (the index's first column), not as a column of its own.
    by_rank = {k: v for k, v in filters.items() if k != "severity"} if not matched and not offset else filters
    query = _list_query(**by_rank).annotate(rank=severity_rank(indexed=not matched))
    newest = ("-created_at", "-id")
    if matched or offset:
        if after is not None:
            rank, created, last_id = after
            query = query.filter(Q(rank__gt=rank) | Q(rank=rank, created_at__lt=created) | Q(rank=rank, created_at=created, id__lt=last_id))
        return [query.order_by("rank", *newest).offset(offset)]
    if filters.get("severity"):  # one rank: its rows newest first, straight off the index
        rank = _RANK[parse_enum(Severity, filters["severity"], "severity").value]
        query = query.filter(rank=rank)
        if after is None or after[0] < rank:  # (a row of a worse severity: this one's rows all follow it)
            return [query.order_by(*newest)]
        if after[0] > rank:
            return []  # a row of a lesser severity: none of this one's follow it
    if after is None:
        return [query.order_by("rank", *newest)]
    rank, created, last_id = after
    rest_of_rank = query.filter(rank=rank, created_at__lte=created).filter(Q(created_at__lt=created) | Q(id__lt=last_id))
    lower = [] if filters.get("severity") else [query.filter(rank__gt=rank).order_by("rank", *newest)]
    return [rest_of_rank.order_by(*newest), *lower]


ListPosition = tuple[int, datetime, int]


def position(row: dict[str, Any]) -> ListPosition:
    """Where a listed row sits in the list's order: (severity rank, created_at, id)."""
    created = row["created_at"]
    return (
        _RANK.get(row["severity"], len(SEVERITY_ORDER)),
        datetime.fromisoformat(created) if isinstance(created, str) else created,
        row["id"],
    )


_RANK = {s.value: i for i, s in enumerate(SEVERITY_ORDER)}


async def count_incidents(**filters: Any) -> int:
    """How many incidents `list_incidents` with the same filters would list in all."""
    return int(await _list_query(**filters).count())


def status_filter(status: str | Sequence[str] | None) -> list[str]:
    """The statuses a filter names: one status, `open` (every open status), or several as a
    list or comma-separated (`investigating,identified`)."""
    names = [status] if isinstance(status, str) else list(status or [])
    wanted: list[str] = []
    for part in (p.strip() for name in names for p in str(name).split(",")):
        if not part:
            continue
        values = [s.value for s in OPEN_STATUSES] if part.lower() == "open" else [parse_enum(Status, part, "status").value]
        wanted += [v for v in values if v not in wanted]
    return wanted


async def get_incident(key: str | int) -> Incident:
    number = parse_incident_key(key)
    incident = await Incident.get_or_none(number=number)
    if incident is None:
        raise NotFound(f"no incident INC-{number}")
    return incident


@functools.cache
def _incident_fields() -> tuple[str, ...]:
    db_fields = Incident._meta.db_fields
    return tuple(name for name in Incident._meta.fields_map if name in db_fields)


def incident_dict(incident: Incident) -> dict[str, Any]:
    data = {name: _iso(getattr(incident, name)) for name in _incident_fields()}
    data["key"] = incident.key
    return data


_CHILDREN = {
    "comments": (Comment, ("id", "author", "content", "internal_only", "created_at", "stated_at", "on_behalf_of")),
    "updates": (StatusUpdate, ("id", "status", "message", "public", "author", "created_at", "stated_at")),
    "evidence": (Evidence, ("id", "kind", "url", "path", "content", "range_from", "range_to", "description", "added_by", "created_at")),
    "followups": (FollowUp, ("id", "group", "description", "owner", "due_date", "done", "done_at", "ticket_key", "created_at")),
}


async def incident_detail(key: str | int) -> dict[str, Any]:
    """The incident with its timeline, comments, status updates, evidence and follow-ups."""
    import asyncio

    incident = await get_incident(key)
    data = incident_dict(incident)

    async def children(model: Any, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        rows = await model.filter(incident_id=incident.id).order_by("id").values(*fields)
        return [{k: _iso(v) for k, v in row.items()} for row in rows]

    # Independent reads: on PostgreSQL they run on separate pool connections at once.
    events, *lists = await asyncio.gather(
        Event.filter(incident_id=incident.id).order_by("id").values("id", "incident_id", "kind", "actor", "at", "summary", "data"),
        *(children(model, fields) for model, fields in _CHILDREN.values()),
    )
    data["timeline"] = [event_to_dict({**e, "incident__number": incident.number}) for e in events]
    data.update(zip(_CHILDREN, lists))
    return data


async def detail_version(key: str | int) -> tuple[int, int] | None:
    """What changes whenever incident `key`'s detail does: its row version (every write to the
    row bumps it) and its newest timeline event (every child row is written with one). One
    indexed query; None when there is no such incident."""
    number = parse_incident_key(key)
    conn = Incident._meta.db
    (mark,) = marks(conn.capabilities.dialect, 1)
    rows = await conn.execute_query_dict(
        'SELECT i."version" AS v, (SELECT MAX(e."id") FROM "event" e WHERE e."incident_id" = i."id") AS last '
        f'FROM "incident" i WHERE i."number" = {mark}',
        [number],
    )
    return (int(rows[0]["v"]), int(rows[0]["last"] or 0)) if rows else None


async def incident_counts() -> dict[str, int]:
    """Open incidents by severity (one grouped query, whatever the table's size)."""
    from tortoise.functions import Count

    rows = (
        await Incident.filter(status__in=[s.value for s in OPEN_STATUSES])
        .annotate(n=Count("id"))
        .group_by("severity")
        .values("severity", "n")
    )
    counts = {s.value: 0 for s in SEVERITY_ORDER}
    for row in rows:
        counts[row["severity"]] = row["n"]
    return counts


async def list_maintenance(include_ended: bool = False) -> list[dict[str, Any]]:
    query = MaintenanceWindow.all()
    if not include_ended:
        query = query.filter(ended_at=None)
    rows = await query.order_by("starts_at").values(
        "id", "title", "kind", "services", "targets", "starts_at", "ends_at", "ended_at", "description", "created_by"
    )
    return [{k: _iso(v) for k, v in r.items()} for r in rows]
