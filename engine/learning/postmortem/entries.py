"""The post-mortem's timeline entries a person adds, edits, annotates, hides or removes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.incidents.services import append_event, lock_incident, stated_time, valid_actor, valid_text, valid_time
from engine.learning.postmortem.edits import postmortem_for_change
from engine.learning.postmortem.rules import ENTRY_KIND_RE, MAX_ITEM, UNSET
from engine.learning.postmortem.timeline import seeded_entry_id
from engine.storage.models import Incident
from engine.storage.postmortem_models import Postmortem, PostmortemEntry


def _entry_kind(kind: str) -> str:
    kind = (kind or "").strip().lower()
    if not ENTRY_KIND_RE.match(kind):
        raise InvalidInput("kind", f"{kind!r} is not an entry kind (lowercase letters, digits and _, e.g. note, impact_start)")
    return kind


def _aware(value: datetime, field: str) -> datetime:
    """When something happened: with a zone, and not later than now (beyond clock skew)."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(field, "must be a time with a time zone")
    return stated_time(value, utcnow(), field) or value


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
        pm = await postmortem_for_change(conn, incident, actor, now)
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
        pm = await postmortem_for_change(conn, incident, actor, now)
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
    """Delete an entry a person added; entries assembled from the incident (its events, its first
    alert) can only be hidden."""
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        incident = await lock_incident(conn, key)
        pm = await postmortem_for_change(conn, incident, actor, now)
        row = await _entry_of(conn, pm, incident, entry_id)
        if row.event_id is not None or await _seeded_id(conn, pm, incident) == row.id:
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


async def _seeded_id(conn: BaseDBAsyncClient, pm: Postmortem, incident: Incident) -> int | None:
    """The entry the post-mortem assembled from the incident itself (its first alert), if any."""
    first = await PostmortemEntry.filter(postmortem_id=pm.id).using_db(conn).order_by("id").first().values("id", "event_id")
    return seeded_entry_id({"detected_at": incident.detected_at, "created_at": incident.created_at}, first)


async def _entry_of(conn: BaseDBAsyncClient, pm: Postmortem, incident: Incident, entry_id: int) -> PostmortemEntry:
    row = await PostmortemEntry.get_or_none(id=entry_id, postmortem_id=pm.id, using_db=conn)
    if row is None:
        raise NotFound(f"the post-mortem of {incident.key} has no timeline entry {entry_id}")
    return row
