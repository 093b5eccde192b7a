"""The page: every public fact the HTML page, its JSON, its feed and the static build show."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from engine.core.clock import utcnow
from engine.core.textclean import public_text
from engine.notify.render import public_name
from engine.rest.statuspage.components import components, state_of
from engine.rest.statuspage.settings import IMPACT_RANK, INDICATOR_TEXT, OPEN, SEVERITY_IMPACT, Settings, public_status
from engine.rest.statuspage.uptime import daily_uptime, heartbeats, overall_uptime
from engine.rest.statuspage.visibility import incident_visible, private_services, window_visible
from engine.storage.models import Incident, MaintenanceWindow, StatusUpdate

INCIDENT_FIELDS = (
    "id",
    "number",
    "title",
    "severity",
    "status",
    "services",
    "false_positive",
    "created_at",
    "detected_at",
    "updated_at",
    "resolved_at",
    "merged_into",
)


def _clean(value: Any) -> Any:
    """Every string in a page part with the characters XML forbids (and controls) removed, so
    the HTML, the feed, the JSON and the static build all show the same clean text."""
    if isinstance(value, str):
        return public_text(value)
    if isinstance(value, dict):
        # "components" are the page's own (already clean) objects, shared so their state shows.
        return {k: v if k == "components" else _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _clean_settings(s: Settings) -> Settings:
    return replace(
        s,
        title=public_text(s.title),
        description=public_text(s.description) if s.description else s.description,
        labels={k: public_text(v) for k, v in (s.labels or {}).items()} or s.labels,
    )


def _incident(inc: dict[str, Any], updates: list[dict[str, Any]], settings: Settings, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    status = public_status(inc["status"])
    entries = [
        {
            "id": f"{inc['number']}-u{u['id']}",
            "status": public_status(u["status"]),
            "label": settings.label(u["status"]),
            "body": u["message"],
            "created_at": u["created_at"],
        }
        for u in updates
    ]
    if status == "resolved" and inc.get("resolved_at"):
        entries.append(
            {
                "id": f"{inc['number']}-resolved",
                "status": "resolved",
                "label": settings.label("resolved"),
                "body": "This incident has been resolved.",
                "created_at": inc["resolved_at"],
            }
        )
    if not entries:
        entries.append(
            {
                "id": f"{inc['number']}-opened",
                "status": "investigating",
                "label": settings.label("investigating"),
                "body": "We are investigating this issue.",
                "created_at": inc["created_at"],
            }
        )
    entries.sort(key=lambda e: e["created_at"], reverse=True)
    monitoring = [e["created_at"] for e in entries if e["status"] == "monitoring"]
    comps = [known[n] for n in (inc.get("services") or []) if n in known]
    return {
        "id": f"INC-{inc['number']}",
        # Never the incident's own title: that is written for responders.
        "name": public_name(status, [c["name"] for c in comps]),
        "status": status,
        "label": settings.label(status),
        "impact": SEVERITY_IMPACT.get(inc["severity"], "minor"),
        "created_at": inc["created_at"],
        "started_at": inc.get("detected_at") or inc["created_at"],
        "updated_at": max(e["created_at"] for e in entries),
        "monitoring_at": min(monitoring) if monitoring else None,
        "resolved_at": inc.get("resolved_at"),
        "components": comps,
        "updates": entries,
    }


def _maintenance(w: dict[str, Any], now: datetime, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ended = w["ended_at"] or (w["ends_at"] if w["ends_at"] <= now else None)
    status = "completed" if ended else "in_progress" if w["starts_at"] <= now else "scheduled"
    body = w["description"] or ("Emergency maintenance." if w["kind"] == "emergency" else "Scheduled maintenance.")
    return {
        "id": f"MW-{w['id']}",
        "name": w["title"],
        "kind": w["kind"],
        "status": status,
        "scheduled_for": w["starts_at"],
        "scheduled_until": w["ends_at"],
        "ended_at": ended,
        "created_at": w["created_at"],
        "updated_at": ended or w["created_at"],
        "components": [known[n] for n in (w["services"] or []) if n in known],
        "body": body,
    }


async def build_page(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Every public fact the page, its JSON, its feed and the static build show."""
    now = now or utcnow()
    settings = _clean_settings(settings)
    history_start = now - timedelta(days=settings.history_days)
    private = private_services(settings)
    comps = _clean(await components(settings))
    known = {c["id"]: c for c in comps}

    rows = await Incident.filter(status__in=OPEN).values(*INCIDENT_FIELDS)
    rows += await Incident.filter(status="resolved", resolved_at__gte=history_start).values(*INCIDENT_FIELDS)
    ids = [r["id"] for r in rows]
    updates: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for u in (
            await StatusUpdate.filter(incident_id__in=ids, public=True)
            .order_by("created_at")
            .values("id", "incident_id", "status", "message", "created_at")
        ):
            updates.setdefault(u["incident_id"], []).append(u)
    visible = [r for r in rows if incident_visible(r, len(updates.get(r["id"], [])), settings, private)]
    public = [_clean(_incident(r, updates.get(r["id"], []), settings, known)) for r in visible]
    active = sorted((i for i in public if i["status"] != "resolved"), key=lambda i: i["created_at"], reverse=True)
    resolved = sorted((i for i in public if i["status"] == "resolved"), key=lambda i: i["resolved_at"], reverse=True)

    windows = (
        await MaintenanceWindow.filter(ends_at__gte=history_start)
        .order_by("starts_at")
        .values("id", "title", "kind", "services", "targets", "starts_at", "ends_at", "ended_at", "description", "created_at")
    )
    windows = [
        w
        for w in windows
        if (settings.show_emergency if w["kind"] == "emergency" else settings.show_scheduled) and window_visible(w, settings, private)
    ]
    maintenance = [_clean(_maintenance(w, now, known)) for w in windows]
    active_windows = [w for w, m in zip(windows, maintenance) if m["status"] == "in_progress"]

    # Component state and uptime come from every real incident on the service (visible or
    # not: a hidden incident still took the service down), never from its text.
    outage_rows = await Incident.filter(false_positive=False, status__in=OPEN).values("severity", "status", "services")
    first_beat, coverage = await heartbeats(history_start)
    history = (
        await Incident.filter(false_positive=False, created_at__lte=now)
        .filter(Q(resolved_at=None) | Q(resolved_at__gte=history_start))
        .values("severity", "services", "created_at", "detected_at", "resolved_at")
    )
    # Since when anything is known of a service: its row, the first engine heartbeat, or its
    # first incident in the window (older ones end before the window or are still open in it).
    earliest: dict[str, datetime] = {}
    for inc in history:
        for name in inc["services"] or []:
            if name not in earliest or inc["created_at"] < earliest[name]:
                earliest[name] = inc["created_at"]
    for c in comps:
        name = c["id"]
        c["status"] = state_of(name, outage_rows, active_windows)
        starts = [t for t in (c.get("created_at"), first_beat, earliest.get(name)) if t is not None]
        on_service = [i for i in history if name in (i["services"] or [])]
        c["uptime_days"] = daily_uptime(
            on_service, settings.history_days, now, settings.timezone, min(starts) if starts else None, coverage
        )
        c["uptime"] = overall_uptime(c["uptime_days"])

    impact = max((i["impact"] for i in active), key=lambda x: IMPACT_RANK[x], default="none")
    indicator = impact
    if impact == "none" and any(m["status"] == "in_progress" for m in maintenance):
        indicator = "maintenance"
    updated = [i["updated_at"] for i in public] + [m["updated_at"] for m in maintenance]
    return {
        "settings": settings,
        "now": now,
        "updated_at": max(updated) if updated else now,
        "indicator": indicator,
        "description": INDICATOR_TEXT[indicator],
        "components": comps,
        "active": active,
        "resolved": resolved,
        "maintenance": maintenance,
    }
