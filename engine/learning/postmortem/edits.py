"""After the incident: post-mortems, satisfaction ratings and follow-up tickets.

Writes follow the service layer's rule (engine/incidents/services.py): each change is one transaction that
locks the incident, writes its rows and appends an Event to the incident's timeline. Reads
assemble a post-mortem document as a plain dict; engine.learning.postmortem_render turns it into Markdown.

A post-mortem's timeline is assembled from the incident's events (first alert, declared,
acknowledged, escalated, identified, resolved…); once a post-mortem is stored, its entries are
rows a person can edit, annotate, hide and add to, and new incident events keep being added.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.domain import IllegalTransition, InvalidInput, NotFound, Status, parse_incident_key
from engine.incidents.services import append_event, lock_incident, valid_actor, valid_text, valid_time
from engine.storage.models import Event, FollowUp, Incident
from engine.storage.postmortem_models import Postmortem, PostmortemEntry

DRAFT, PUBLISHED = "draft", "published"
MAX_ITEMS = 100
MAX_ITEM = 2000
MAX_USERS = 10**12
MAX_DOWNTIME = 10**7
LIST_FIELDS = ("lessons_learned", "went_well", "went_badly")
IMPACT_TEXT_FIELDS = ("financial_impact", "reputational_impact")
# Entry kinds that bound the downtime a person may add by hand.
IMPACT_START, IMPACT_END = "impact_start", "impact_end"
ENTRY_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TICKET_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-\d+$")
MONITORING_SOURCES = ("threshold", "anomaly", "pattern", "alert")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks an argument that was not given (None can mean 'clear')."""


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (datetime, date)) else value


# --- timeline assembly --------------------------------------------------------------------


def _entry(at: datetime, kind: str, text: str, event_id: int | None) -> dict[str, Any]:
    return {
        "id": None,
        "event_id": event_id,
        "at": at,
        "kind": kind,
        "text": text,
        "annotation": "",
        "hidden": False,
        "edited": False,
        "origin": "event" if event_id is not None else "incident",
    }


def entry_from_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """The post-mortem line for one incident event, or None for events a review leaves out."""
    kind, data, actor, summary = event["kind"], event.get("data") or {}, event["actor"], event["summary"]
    at, eid = event["at"], event["id"]
    if "deploy" in kind:
        return _entry(at, "deployment", summary or "deployment", eid)
    if kind == "created":
        return _entry(at, "declared", f"incident declared ({data.get('severity', '?')}) by {actor}", eid)
    if kind == "acknowledged":
        return _entry(at, "acknowledged", f"acknowledged by {actor}", eid)
    if kind == "escalation":
        step = data.get("kind")
        if step == "triggered":
            return _entry(at, "paged", summary, eid)
        if step == "escalated":
            return _entry(at, "escalated", summary, eid)
        return None
    if kind == "status_changed":
        to = data.get("to")
        message = f": {data['message']}" if data.get("message") else ""
        public = " (posted publicly)" if data.get("public") and data.get("message") else ""
        return _entry(at, str(to), f"status {data.get('from')} → {to} by {actor}{message}{public}", eid)
    if kind == "status_update" and data.get("public"):
        if data.get("stated_at"):  # back-filled: the review places it when it was said to be posted
            at = datetime.fromisoformat(data["stated_at"])
        return _entry(at, "public_update", f"public update by {actor}: {summary.split(': ', 1)[-1]}", eid)
    if kind == "severity_changed":
        return _entry(at, "severity_changed", f"{summary} (by {actor})", eid)
    if kind == "resolved":
        return _entry(at, "resolved", f"resolved by {actor}: {data.get('root_cause') or summary}", eid)
    if kind == "reopened":
        return _entry(at, "reopened", f"reopened by {actor}" + (f": {data['reason']}" if data.get("reason") else ""), eid)
    if kind == "false_positive":
        return _entry(at, "false_positive", f"{summary} (by {actor})", eid)
    return None


def detection_entry(incident: dict[str, Any]) -> dict[str, Any] | None:
    """'First alert' when monitoring saw the problem before the incident was declared."""
    detected, created = incident.get("detected_at"), incident.get("created_at")
    if detected is None or created is None or detected >= created:
        return None
    what = incident.get("trigger") or incident.get("target") or incident.get("source")
    return _entry(detected, "first_alert", f"problem first detected ({what})", None)


def assemble_timeline(incident: dict[str, Any], events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    entries = [e for e in (entry_from_event(ev) for ev in events) if e is not None]
    first = detection_entry(incident)
    return sort_entries(([first] if first else []) + entries)


def sort_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (e["at"], e["event_id"] if e["event_id"] is not None else -1, e["id"] or 0))


def computed_downtime(entries: Sequence[dict[str, Any]]) -> float | None:
    """Minutes from the impact's start to its end, read off the visible timeline.

    Start: the earliest `impact_start` entry, else the first alert or the declaration.
    End: the latest `impact_end` entry, else the last resolution. None while unresolved.
    """
    visible = [e for e in entries if not e["hidden"]]
    starts = [e["at"] for e in visible if e["kind"] == IMPACT_START] or [
        e["at"] for e in visible if e["kind"] in ("first_alert", "declared")
    ]
    ends = [e["at"] for e in visible if e["kind"] == IMPACT_END] or [e["at"] for e in visible if e["kind"] == "resolved"]
    if not starts or not ends:
        return None
    start, end = min(starts), max(ends)
    if end < start:
        return None
    minutes: float = round((end - start).total_seconds() / 60, 1)
    return minutes


# --- reading ------------------------------------------------------------------------------

INCIDENT_FIELDS = (
    "id",
    "number",
    "title",
    "description",
    "severity",
    "status",
    "source",
    "services",
    "tags",
    "assignee",
    "target",
    "trigger",
    "detected_at",
    "created_at",
    "created_by",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "root_cause",
    "root_cause_category",
    "solution",
    "verification_steps",
    "false_positive",
    "impact",
    "satisfaction",
    "external_refs",
)


async def _incident_row(key: str | int) -> dict[str, Any]:
    number = parse_incident_key(key)
    rows = await Incident.filter(number=number).values(*INCIDENT_FIELDS)
    if not rows:
        raise NotFound(f"no incident INC-{number}")
    return rows[0]


async def _events(incident_id: int, after: int = 0) -> list[dict[str, Any]]:
    return await Event.filter(incident_id=incident_id, id__gt=after).order_by("id").values("id", "kind", "actor", "at", "summary", "data")


def _entry_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "origin": "event" if row["event_id"] is not None else "person"}


async def postmortem_document(key: str | int) -> dict[str, Any]:
    """Everything a post-mortem shows, as a dict (datetimes as ISO text).

    With no stored post-mortem yet, this is a preview assembled from the incident's events.
    Entries include hidden ones (flagged); renderers leave those out.
    """
    inc = await _incident_row(key)
    pm = await Postmortem.get_or_none(incident_id=inc["id"])
    if pm is None:
        entries = assemble_timeline(inc, await _events(inc["id"]))
    else:
        stored = [
            _entry_row(r)
            for r in await PostmortemEntry.filter(postmortem_id=pm.id).values(
                "id", "event_id", "at", "kind", "text", "annotation", "hidden", "edited"
            )
        ]
        linked = {e["event_id"] for e in stored if e["event_id"] is not None}
        newer = max(linked, default=0)
        # Events since the last edit are shown too (and stored by the next edit).
        fresh = [e for e in (entry_from_event(ev) for ev in await _events(inc["id"], newer)) if e and e["event_id"] not in linked]
        entries = sort_entries(stored + fresh)
    impact = dict(inc["impact"] or {})
    computed = computed_downtime(entries)
    manual = impact.get("downtime_minutes")
    followups = (
        await FollowUp.filter(incident_id=inc["id"])
        .order_by("id")
        .values("id", "group", "description", "owner", "due_date", "done", "done_at", "ticket_key")
    )
    today = datetime.now(UTC).date()
    updates = await Event.filter(incident_id=inc["id"], kind="status_update").count()
    return {
        "key": f"INC-{inc['number']}",
        "incident": {k: _iso(v) for k, v in inc.items() if k not in ("impact", "satisfaction")},
        "postmortem": {
            "stored": pm is not None,
            "status": pm.status if pm else DRAFT,
            "summary": pm.summary if pm else "",
            "lessons_learned": list(pm.lessons_learned) if pm else [],
            "went_well": list(pm.went_well) if pm else [],
            "went_badly": list(pm.went_badly) if pm else [],
            "created_by": pm.created_by if pm else None,
            "created_at": _iso(pm.created_at) if pm else None,
            "updated_at": _iso(pm.updated_at) if pm else None,
            "published_at": _iso(pm.published_at) if pm else None,
            "published_by": pm.published_by if pm else None,
        },
        "impact": {
            "affected_users": impact.get("affected_users"),
            "downtime_minutes": manual if manual is not None else computed,
            "downtime_minutes_computed": computed,
            "downtime_source": "manual" if manual is not None else ("timeline" if computed is not None else None),
            "financial_impact": impact.get("financial_impact") or "",
            "reputational_impact": impact.get("reputational_impact") or "",
        },
        "satisfaction": {k: (inc["satisfaction"] or {}).get(k) for k in ("customer", "team")},
        "timeline": [{**e, "at": _iso(e["at"])} for e in entries],
        "action_items": [
            {**{k: _iso(v) for k, v in f.items()}, "overdue": (not f["done"]) and f["due_date"] is not None and f["due_date"] < today}
            for f in followups
        ],
        "status_updates": updates,
    }


# --- writing ------------------------------------------------------------------------------


async def _postmortem_for_change(
    conn: BaseDBAsyncClient, incident: Incident, actor: str, now: datetime, *, editing: bool = True
) -> Postmortem:
    """The incident's post-mortem (created and seeded on first use), its timeline brought up to date.

    `editing` refuses a published post-mortem: it is final until someone unpublishes it.
    """
    pm = await Postmortem.get_or_none(incident_id=incident.id, using_db=conn)
    if pm is None:
        pm = await Postmortem.create(incident=incident, created_by=actor, created_at=now, updated_at=now, using_db=conn)
        first = detection_entry(
            {
                "detected_at": incident.detected_at,
                "created_at": incident.created_at,
                "trigger": incident.trigger,
                "target": incident.target,
                "source": incident.source,
            }
        )
        if first:
            await PostmortemEntry.create(
                postmortem=pm, event_id=None, at=first["at"], kind=first["kind"], text=first["text"], created_by=actor, using_db=conn
            )
        await append_event(conn, incident, "postmortem_started", actor, "post-mortem draft started", {"postmortem_id": pm.id}, now)
    elif editing and pm.status == PUBLISHED:
        raise IllegalTransition(f"the post-mortem of {incident.key} is published; unpublish it before you edit it")
    await _sync_entries(conn, pm, incident, actor)
    return pm


async def _sync_entries(conn: BaseDBAsyncClient, pm: Postmortem, incident: Incident, actor: str) -> None:
    linked = set(
        await PostmortemEntry.filter(postmortem_id=pm.id, event_id__not_isnull=True).using_db(conn).values_list("event_id", flat=True)
    )
    events = (
        await Event.filter(incident_id=incident.id, id__gt=max(linked, default=0))
        .using_db(conn)
        .order_by("id")
        .values("id", "kind", "actor", "at", "summary", "data")
    )
    new = [e for e in (entry_from_event(ev) for ev in events) if e and e["event_id"] not in linked]
    if new:
        await PostmortemEntry.bulk_create(
            [
                PostmortemEntry(postmortem_id=pm.id, event_id=e["event_id"], at=e["at"], kind=e["kind"], text=e["text"], created_by=actor)
                for e in new
            ],
            using_db=conn,
        )


def _items(values: Sequence[str], field: str) -> list[str]:
    if isinstance(values, str):
        raise InvalidInput(field, "expected a list of items")
    out = [" ".join(valid_text(v, field, limit=MAX_ITEM).split()) for v in values]
    if len(out) > MAX_ITEMS:
        raise InvalidInput(field, f"has {len(out)} items (at most {MAX_ITEMS})")
    return out


def _count(value: Any, field: str, limit: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(field, f"{value!r} is not a whole number")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(field, f"{value!r} is not a whole number") from None
    if not 0 <= number <= limit:
        raise InvalidInput(field, f"{number} is out of range (0 to {limit})")
    return number


def _minutes(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput("downtime_minutes", f"{value!r} is not a number of minutes")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InvalidInput("downtime_minutes", f"{value!r} is not a number of minutes (or 'auto')") from None
    if not 0 <= number <= MAX_DOWNTIME or number != number:
        raise InvalidInput("downtime_minutes", f"{value!r} is out of range (0 to {MAX_DOWNTIME})")
    return round(number, 1)


async def update_postmortem(
    key: str | int,
    actor: str,
    *,
    summary: Any = UNSET,
    lessons_learned: Any = UNSET,
    went_well: Any = UNSET,
    went_badly: Any = UNSET,
    add_lessons: Sequence[str] = (),
    add_went_well: Sequence[str] = (),
    add_went_badly: Sequence[str] = (),
    affected_users: Any = UNSET,
    downtime_minutes: Any = UNSET,
    financial_impact: Any = UNSET,
    reputational_impact: Any = UNSET,
    at: datetime | None = None,
) -> Postmortem:
    """Edit the post-mortem's text and impact assessment in one change.

    List fields given whole replace the list; `add_*` append. `downtime_minutes=None` drops a
    manual override, so the downtime is computed from the timeline again.
    """
    actor = valid_actor(actor)
    now = valid_time(at)
    changes: dict[str, Any] = {}
    if summary is not UNSET:
        changes["summary"] = valid_text(summary, "summary", required=False)
    for name, value, extra in (
        ("lessons_learned", lessons_learned, add_lessons),
        ("went_well", went_well, add_went_well),
        ("went_badly", went_badly, add_went_badly),
    ):
        if value is not UNSET:
            changes[name] = _items(value or [], name)
        if extra:
            changes[f"+{name}"] = _items(extra, name)
    impact: dict[str, Any] = {}
    if affected_users is not UNSET:
        impact["affected_users"] = _count(affected_users, "affected_users", MAX_USERS)
    if downtime_minutes is not UNSET:
        impact["downtime_minutes"] = _minutes(downtime_minutes)
    for name, value in (("financial_impact", financial_impact), ("reputational_impact", reputational_impact)):
        if value is not UNSET:
            impact[name] = valid_text(value, name, required=False, limit=MAX_ITEM)
    if not changes and not impact:
        raise InvalidInput("post-mortem", "nothing to change")
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await _postmortem_for_change(conn, incident, actor, now)
        for name, value in changes.items():
            if name.startswith("+"):
                merged = list(getattr(pm, name[1:])) + value
                if len(merged) > MAX_ITEMS:
                    raise InvalidInput(name[1:], f"would have {len(merged)} items (at most {MAX_ITEMS})")
                setattr(pm, name[1:], merged)
            else:
                setattr(pm, name, value)
        pm.updated_at = now
        await pm.save(using_db=conn)
        if impact:
            incident.impact = {**(incident.impact or {}), **impact}
        incident.updated_at = now
        await incident.save(using_db=conn)
        fields = sorted({n.lstrip("+") for n in changes} | set(impact))
        await append_event(
            conn,
            incident,
            "postmortem_edited",
            actor,
            "post-mortem edited: " + ", ".join(fields),
            {"postmortem_id": pm.id, "fields": fields, "impact": impact or None},
            now,
        )
    return pm


def _entry_kind(kind: str) -> str:
    kind = (kind or "").strip().lower()
    if not ENTRY_KIND_RE.match(kind):
        raise InvalidInput("kind", f"{kind!r} is not an entry kind (lowercase letters, digits and _, e.g. note, impact_start)")
    return kind


def _aware(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(field, "must be a time with a time zone")
    return value


async def add_entry(
    key: str | int,
    actor: str,
    *,
    at_time: datetime,
    text: str,
    kind: str = "note",
    annotation: str = "",
    at: datetime | None = None,
) -> PostmortemEntry:
    """A timeline entry a person adds (a deployment the events missed, the start of impact…)."""
    actor = valid_actor(actor)
    at_time = _aware(at_time, "time")
    text = valid_text(text, "text", limit=MAX_ITEM)
    kind = _entry_kind(kind)
    annotation = valid_text(annotation, "annotation", required=False, limit=MAX_ITEM)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await _postmortem_for_change(conn, incident, actor, now)
        row = await PostmortemEntry.create(
            postmortem=pm, event_id=None, at=at_time, kind=kind, text=text, annotation=annotation, created_by=actor, using_db=conn
        )
        pm.updated_at = now
        await pm.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "postmortem_entry",
            actor,
            f"post-mortem timeline: added {kind} entry",
            {"postmortem_id": pm.id, "entry_id": row.id, "action": "added"},
            now,
        )
    return row


async def edit_entry(
    key: str | int,
    entry_id: int,
    actor: str,
    *,
    at_time: Any = UNSET,
    text: Any = UNSET,
    kind: Any = UNSET,
    annotation: Any = UNSET,
    hidden: Any = UNSET,
    at: datetime | None = None,
) -> PostmortemEntry:
    """Change an entry's time, text, kind or annotation, or hide it from the document."""
    actor = valid_actor(actor)
    changes: dict[str, Any] = {}
    if at_time is not UNSET:
        changes["at"] = _aware(at_time, "time")
    if text is not UNSET:
        changes["text"] = valid_text(text, "text", limit=MAX_ITEM)
    if kind is not UNSET:
        changes["kind"] = _entry_kind(kind)
    if annotation is not UNSET:
        changes["annotation"] = valid_text(annotation, "annotation", required=False, limit=MAX_ITEM)
    if hidden is not UNSET:
        changes["hidden"] = bool(hidden)
    if not changes:
        raise InvalidInput("entry", "nothing to change")
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await _postmortem_for_change(conn, incident, actor, now)
        row = await _entry_of(conn, pm, incident, entry_id)
        for name, value in changes.items():
            setattr(row, name, value)
        if set(changes) & {"at", "text", "kind"}:
            row.edited = True
        await row.save(using_db=conn)
        pm.updated_at = now
        await pm.save(using_db=conn)
        what = (
            "hidden"
            if changes.get("hidden") is True
            else ("shown" if changes.get("hidden") is False else "annotated" if set(changes) == {"annotation"} else "edited")
        )
        await append_event(
            conn,
            incident,
            "postmortem_entry",
            actor,
            f"post-mortem timeline: entry {entry_id} {what}",
            {"postmortem_id": pm.id, "entry_id": entry_id, "action": what, "fields": sorted(changes)},
            now,
        )
    return row


async def remove_entry(key: str | int, entry_id: int, actor: str, *, at: datetime | None = None) -> None:
    """Delete an entry a person added; entries from incident events can only be hidden."""
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await _postmortem_for_change(conn, incident, actor, now)
        row = await _entry_of(conn, pm, incident, entry_id)
        if row.event_id is not None:
            raise IllegalTransition(f"entry {entry_id} comes from the incident's timeline; hide it instead")
        await row.delete(using_db=conn)
        pm.updated_at = now
        await pm.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "postmortem_entry",
            actor,
            f"post-mortem timeline: entry {entry_id} removed",
            {"postmortem_id": pm.id, "entry_id": entry_id, "action": "removed"},
            now,
        )


async def _entry_of(conn: BaseDBAsyncClient, pm: Postmortem, incident: Incident, entry_id: int) -> PostmortemEntry:
    row = await PostmortemEntry.get_or_none(id=entry_id, postmortem_id=pm.id, using_db=conn)
    if row is None:
        raise NotFound(f"the post-mortem of {incident.key} has no timeline entry {entry_id}")
    return row


async def publish(key: str | int, actor: str, *, at: datetime | None = None) -> Postmortem:
    """Publish: the incident must be resolved and the post-mortem must have a summary."""
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await _postmortem_for_change(conn, incident, actor, now)
        if incident.status != Status.RESOLVED.value:
            raise IllegalTransition(f"{incident.key} is {incident.status}; resolve it before you publish its post-mortem")
        if not pm.summary.strip():
            raise IllegalTransition(f"the post-mortem of {incident.key} has no summary yet")
        pm.status, pm.published_at, pm.published_by, pm.updated_at = PUBLISHED, now, actor, now
        await pm.save(using_db=conn)
        await append_event(conn, incident, "postmortem_published", actor, "post-mortem published", {"postmortem_id": pm.id}, now)
    return pm


async def unpublish(key: str | int, actor: str, *, at: datetime | None = None) -> Postmortem:
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await Postmortem.get_or_none(incident_id=incident.id, using_db=conn)
        if pm is None or pm.status != PUBLISHED:
            raise IllegalTransition(f"the post-mortem of {incident.key} is not published")
        pm.status, pm.published_at, pm.published_by, pm.updated_at = DRAFT, None, None, now
        await pm.save(using_db=conn)
        await append_event(conn, incident, "postmortem_unpublished", actor, "post-mortem back to draft", {"postmortem_id": pm.id}, now)
    return pm


# --- satisfaction and follow-up tickets ---------------------------------------------------


def _rating(value: Any, field: str) -> int | None:
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= 5:
        raise InvalidInput(field, f"{value!r} is not a rating from 1 to 5")
    return number


async def rate_satisfaction(key: str | int, actor: str, *, customer: Any = None, team: Any = None, at: datetime | None = None) -> Incident:
    """Record customer and/or team satisfaction (1–5) for an incident; a new rating replaces the old."""
    actor = valid_actor(actor)
    ratings = {k: v for k, v in (("customer", _rating(customer, "customer")), ("team", _rating(team, "team"))) if v is not None}
    if not ratings:
        raise InvalidInput("satisfaction", "give a customer or team rating (1 to 5)")
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        old = dict(incident.satisfaction or {})
        incident.satisfaction = {**old, **ratings}
        incident.updated_at = now
        await incident.save(using_db=conn)
        text = ", ".join(f"{k} {v}/5" for k, v in ratings.items())
        await append_event(
            conn,
            incident,
            "satisfaction_rated",
            actor,
            f"satisfaction rated: {text}",
            {"ratings": ratings, "previous": {k: old.get(k) for k in ratings}},
            now,
        )
    return incident


async def set_followup_ticket(followup_id: int, ticket_key: str | None, actor: str, *, at: datetime | None = None) -> FollowUp:
    """Link a follow-up action to its ticket (e.g. OPS-123), or unlink it with None."""
    actor = valid_actor(actor)
    ticket = (ticket_key or "").strip() or None
    if ticket is not None and (len(ticket) > 64 or not TICKET_RE.match(ticket)):
        raise InvalidInput("ticket", f"{ticket_key!r} is not a ticket key (expected PROJECT-123)")
    now = valid_time(at)
    row = await FollowUp.get_or_none(id=followup_id).prefetch_related("incident")
    if row is None:
        raise NotFound(f"no follow-up {followup_id}")
    async with in_transaction() as conn:
        incident = await lock_incident(conn, row.incident.number)
        row = await FollowUp.get(id=followup_id, using_db=conn)
        if row.ticket_key == ticket:
            raise IllegalTransition(f"follow-up {followup_id} is already {'linked to ' + ticket if ticket else 'without a ticket'}")
        old = row.ticket_key
        row.ticket_key = ticket
        await row.save(using_db=conn)
        await append_event(
            conn,
            incident,
            "followup_ticket",
            actor,
            f"follow-up {followup_id} " + (f"ticket {ticket}" if ticket else "ticket unlinked") + f": {row.description}",
            {"followup_id": followup_id, "ticket_key": ticket, "previous": old},
            now,
        )
    return row


async def open_followup_ticket(followup_id: int, actor: str, settings: Any, client: Any = None) -> FollowUp:
    """Open a Jira issue for a follow-up through the integration, then record its key.

    The HTTP call happens outside any transaction; `settings` is an engine.notify.jira.JiraSettings.
    """
    import httpx

    from engine.notify import base

    row = await FollowUp.get_or_none(id=followup_id).prefetch_related("incident")
    if row is None:
        raise NotFound(f"no follow-up {followup_id}")
    if row.ticket_key:
        raise IllegalTransition(f"follow-up {followup_id} already has ticket {row.ticket_key}")
    key = row.incident.key
    lines = [row.description, "", f"Follow-up ({row.group.replace('_', ' ')}) of {key}: {row.incident.title}"]
    if row.owner:
        lines.append(f"Owner: {row.owner}")
    body: dict[str, Any] = {
        "project": {"key": settings.project},
        "summary": f"{key} follow-up: {row.description}"[:255],
        "issuetype": {"name": settings.issue_type},
        "labels": ["pulseguard", f"pulseguard-{key.lower()}-followup-{row.id}"],
    }
    text = "\n".join(lines)
    body["description"] = (
        {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in lines if p]}
        if settings.api_version >= 3
        else text
    )
    if row.due_date:
        body["duedate"] = row.due_date.isoformat()
    own = client is None
    client = client or httpx.AsyncClient()
    try:
        outcome, response = await base.request(
            client,
            "POST",
            settings.url("issue"),
            json_body={"fields": body},
            headers=settings.headers(),
            auth=settings.auth(),
            timeout=settings.timeout,
        )
    finally:
        if own:
            await client.aclose()
    if not outcome.ok or response is None:
        raise IllegalTransition(f"Jira did not open a ticket: {outcome.reason or 'no answer'}")
    try:
        ticket = str(response.json()["key"])
    except (ValueError, KeyError, TypeError):
        raise IllegalTransition("Jira answered without an issue key") from None
    return await set_followup_ticket(followup_id, ticket, actor)


async def list_followups(*, open_only: bool = False, owner: str | None = None, today: date | None = None) -> list[dict[str, Any]]:
    """Follow-up actions across incidents: overdue first, then by due date (none last), then id."""
    query = FollowUp.all()
    if open_only:
        query = query.filter(done=False)
    if owner:
        query = query.filter(owner=owner.strip())
    rows = await query.values(
        "id",
        "group",
        "description",
        "owner",
        "due_date",
        "done",
        "done_at",
        "ticket_key",
        "created_at",
        "incident__number",
        "incident__title",
    )
    today = today or datetime.now(UTC).date()
    out = []
    for r in rows:
        number = r.pop("incident__number")
        title = r.pop("incident__title")
        overdue = (not r["done"]) and r["due_date"] is not None and r["due_date"] < today
        out.append(
            {
                **{k: _iso(v) for k, v in r.items()},
                "incident": f"INC-{number}",
                "incident_title": title,
                "overdue": overdue,
                "days_overdue": (today - r["due_date"]).days if overdue else 0,
            }
        )
    out.sort(key=lambda r: (not r["overdue"], r["done"], r["due_date"] or "9999-99-99", r["id"]))
    return out
