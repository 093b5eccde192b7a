"""A post-mortem's timeline, assembled from the incident's events.

First alert, declared, acknowledged, escalated, identified, resolved…: each incident event a
review keeps becomes one entry; the downtime is read off the visible entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.learning.postmortem.rules import IMPACT_END, IMPACT_START


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
        via = f" via {data['via']}" if data.get("via") else ""  # a page's e-mail link, Slack button, webhook callback
        return _entry(at, "acknowledged", f"acknowledged by {actor}{via}", eid)
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


def _detected_first(incident: dict[str, Any]) -> bool:
    detected, created = incident.get("detected_at"), incident.get("created_at")
    return detected is not None and created is not None and detected < created


def detection_entry(incident: dict[str, Any]) -> dict[str, Any] | None:
    """'First alert' when monitoring saw the problem before the incident was declared."""
    if not _detected_first(incident):
        return None
    detected = incident["detected_at"]
    what = incident.get("trigger") or incident.get("target") or incident.get("source")
    return _entry(detected, "first_alert", f"problem first detected ({what})", None)


def seeded_entry_id(incident: dict[str, Any], first_stored: dict[str, Any] | None) -> int | None:
    """The stored entry assembled from the incident itself rather than from one of its events
    (the first alert), or None: such an entry has no event to point at, as a person's has not.

    It is the one `detection_entry` seeded when the post-mortem was stored: its lowest entry id
    (created before the entries from events), without an event, and only for an incident whose
    monitoring saw the problem before it was declared. `first_stored` is that lowest-id entry
    (its `id` and `event_id`). An entry a person adds always comes later, so it is never this one.
    """
    if first_stored is None or first_stored["event_id"] is not None or not _detected_first(incident):
        return None
    seeded: int = first_stored["id"]
    return seeded


def stored_origin(row: dict[str, Any], seeded: int | None) -> str:
    """Where a stored entry came from, as `_entry` says of an assembled one: an incident event
    ("event"), the incident itself ("incident", the seeded first alert) or a person ("person")."""
    if row["event_id"] is not None:
        return "event"
    return "incident" if seeded is not None and row["id"] == seeded else "person"


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
