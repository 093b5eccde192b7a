"""Reading a post-mortem: the document every renderer (Markdown, console, REST) shows."""

from __future__ import annotations

from typing import Any

from engine.core.domain import NotFound, parse_incident_key
from engine.learning.postmortem.followups import engine_today
from engine.learning.postmortem.rules import DRAFT, iso
from engine.learning.postmortem.timeline import (
    assemble_timeline,
    computed_downtime,
    entry_from_event,
    seeded_entry_id,
    sort_entries,
    stored_origin,
)
from engine.storage.models import Event, FollowUp, Incident
from engine.storage.postmortem_models import Postmortem, PostmortemEntry

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
        rows = (
            await PostmortemEntry.filter(postmortem_id=pm.id)
            .order_by("id")
            .values("id", "event_id", "at", "kind", "text", "annotation", "hidden", "edited")
        )
        # The first alert is stored without an event, as a person's entry is: it is the seeded one.
        seeded = seeded_entry_id(inc, rows[0] if rows else None)
        stored = [{**r, "origin": stored_origin(r, seeded)} for r in rows]
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
    today = engine_today()
    updates = await Event.filter(incident_id=inc["id"], kind="status_update").count()
    return {
        "key": f"INC-{inc['number']}",
        "incident": {k: iso(v) for k, v in inc.items() if k not in ("impact", "satisfaction")},
        "postmortem": {
            "stored": pm is not None,
            "status": pm.status if pm else DRAFT,
            "summary": pm.summary if pm else "",
            "lessons_learned": list(pm.lessons_learned) if pm else [],
            "went_well": list(pm.went_well) if pm else [],
            "went_badly": list(pm.went_badly) if pm else [],
            "created_by": pm.created_by if pm else None,
            "created_at": iso(pm.created_at) if pm else None,
            "updated_at": iso(pm.updated_at) if pm else None,
            "published_at": iso(pm.published_at) if pm else None,
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
        "timeline": [{**e, "at": iso(e["at"])} for e in entries],
        "action_items": [
            {**{k: iso(v) for k, v in f.items()}, "overdue": (not f["done"]) and f["due_date"] is not None and f["due_date"] < today}
            for f in followups
        ],
        "status_updates": updates,
    }
