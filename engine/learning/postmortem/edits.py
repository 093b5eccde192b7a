"""Editing a post-mortem: its text and impact, and publishing it.

Writes follow the service layer's rule (engine/incidents/services.py): each change is one
transaction that locks the incident, writes its rows and appends an Event to the incident's
timeline. Once a post-mortem is stored, its timeline entries are rows a person can edit (see
engine.learning.postmortem.entries), and new incident events keep being added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.domain import IllegalTransition, InvalidInput, Status
from engine.incidents.services import append_event, lock_incident, valid_actor, valid_text, valid_time
from engine.learning.postmortem.given import CheckedEntry, GivenEntry, check_entries, placed, zone
from engine.learning.postmortem.rules import DRAFT, MAX_DOWNTIME, MAX_ITEM, MAX_ITEMS, MAX_USERS, PUBLISHED, UNSET
from engine.learning.postmortem.timeline import detection_entry, entry_from_event
from engine.storage.models import Event, Incident
from engine.storage.postmortem_models import Postmortem, PostmortemEntry


async def postmortem_for_change(
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


@dataclass(frozen=True)
class PostmortemEdit:
    """What an edit did: the post-mortem, the timeline entries it added, and how many of the
    given lines an entry already had (left as they were)."""

    postmortem: Postmortem
    added: list[PostmortemEntry] = field(default_factory=list)
    already_there: int = 0


async def update_postmortem(key: str | int, actor: str, **fields: Any) -> Postmortem:
    """Edit the post-mortem's text and impact assessment in one change: `edit_postmortem`'s
    keyword arguments, returning only the post-mortem."""
    return (await edit_postmortem(key, actor, **fields)).postmortem


async def edit_postmortem(
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
    timeline: Sequence[GivenEntry] = (),
    tz: str = "UTC",
    at: datetime | None = None,
) -> PostmortemEdit:
    """Edit the post-mortem's text, impact assessment and timeline in one change: all of it, or
    (on any refusal) none of it.

    List fields given whole replace the list; `add_*` append. `downtime_minutes=None` drops a
    manual override, so the downtime is computed from the timeline again. `timeline` lines
    become entries (engine.learning.postmortem.given; a bare HH:MM is read in `tz`), except
    those whose time and text an entry already has.
    """
    actor = valid_actor(actor)
    now = valid_time(at)
    lines = check_entries(timeline)
    local = zone(tz) if lines else None
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
    if not changes and not impact and not lines:
        raise InvalidInput("post-mortem", "nothing to change")
    added: list[PostmortemEntry] = []
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await postmortem_for_change(conn, incident, actor, now)
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
        if lines and local is not None:
            added = await _add_lines(conn, pm, lines, incident, actor, local)
        incident.updated_at = now
        await incident.save(using_db=conn)
        fields = sorted({n.lstrip("+") for n in changes} | set(impact) | ({"timeline"} if lines else set()))
        kept = len(lines) - len(added)
        told = f" ({len(added)} timeline entries added" + (f", {kept} already there)" if kept else ")") if lines else ""
        await append_event(
            conn,
            incident,
            "postmortem_edited",
            actor,
            "post-mortem edited: " + ", ".join(fields) + told,
            {"postmortem_id": pm.id, "fields": fields, "impact": impact or None, "entries_added": [e.id for e in added] or None},
            now,
        )
    return PostmortemEdit(pm, added, kept)


async def _add_lines(
    conn: BaseDBAsyncClient, pm: Postmortem, lines: Sequence[CheckedEntry], incident: Incident, actor: str, tz: ZoneInfo
) -> list[PostmortemEntry]:
    """The lines as entries, skipping those whose time and text an entry (or an earlier line) has."""
    opened = _utc(incident.created_at)
    have = {(_utc(a), t) for a, t in await PostmortemEntry.filter(postmortem_id=pm.id).using_db(conn).values_list("at", "text")}
    added: list[PostmortemEntry] = []
    for line in lines:
        when = placed(line, opened, tz)
        if (_utc(when), line.text) in have:
            continue
        have.add((_utc(when), line.text))
        added.append(
            await PostmortemEntry.create(
                postmortem=pm,
                event_id=None,
                at=when,
                kind="note",
                text=line.text,
                annotation=line.annotation,
                created_by=actor,
                using_db=conn,
            )
        )
    return added


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def publish(key: str | int, actor: str, *, at: datetime | None = None) -> Postmortem:
    """Publish: the incident must be resolved and the post-mortem must have a summary."""
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await postmortem_for_change(conn, incident, actor, now)
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
