"""What the public status page shows, assembled from public data only.

Everything public goes through `build_page`: the HTML page, the Statuspage-shaped JSON, the
Atom feed and the static build all render its result, and it reads only public fields —
public status updates, public services, maintenance windows. Comments, internal
updates, descriptions, timelines, assignees and root causes are never even loaded here, so
they cannot leak into any of the four. Incident titles are internal too (a trigger's title is its
condition): the public name is a neutral "Investigating an issue with <component>".

Visibility: an incident appears unless it is a false positive or touches only private services;
with `status_page_integration.auto_update = false` it also needs at least one public update.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from tortoise.expressions import Q

from engine.core.clock import utcnow
from engine.core.domain import OPEN_STATUSES
from engine.core.textclean import public_text
from engine.notify.render import public_name
from engine.storage.models import Incident, MaintenanceWindow, Service, StatusUpdate

COMPONENT_STATES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")
STATE_LABELS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
    "no_data": "No data",
}
_RANK = {"operational": 0, "degraded_performance": 1, "partial_outage": 2, "major_outage": 3}
# Incident severity -> what it does to the services it touches, and its Statuspage impact.
SEVERITY_STATE = {"critical": "major_outage", "high": "partial_outage", "medium": "degraded_performance", "low": "degraded_performance"}
SEVERITY_IMPACT = {"critical": "critical", "high": "major", "medium": "minor", "low": "minor"}
IMPACT_RANK = {"none": 0, "minor": 1, "major": 2, "critical": 3}
INDICATOR_TEXT = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
    "maintenance": "Service Under Maintenance",
}
OPEN = [s.value for s in OPEN_STATUSES]
# Statuspage counts a partial outage as 30 % down when computing uptime.
PARTIAL_WEIGHT = 0.3
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
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def public_status(status: str) -> str:
    """Statuspage knows investigating, identified, monitoring, resolved: triggered reads as investigating."""
    return "investigating" if status == "triggered" else status


@dataclass
class Settings:
    """The status page's part of the configuration."""

    title: str = "Status"
    description: str | None = None
    public_url: str | None = None
    auto_update: bool = True
    subscriptions: bool = True
    history_days: int = 90
    labels: dict[str, str] | None = None
    show_scheduled: bool = True
    show_emergency: bool = True
    timezone: str = "UTC"
    email_configured: bool = False
    services: Sequence[Any] = ()

    @classmethod
    def from_config(cls, config: Any, base_url: str | None = None) -> Settings:
        spi = config.status_page_integration
        states = spi.incident_states
        return cls(
            title=spi.title,
            description=spi.description,
            public_url=(spi.public_url or base_url or "").rstrip("/") or None,
            auto_update=spi.auto_update,
            subscriptions=spi.subscriptions,
            history_days=spi.history_days,
            labels={
                "investigating": states.investigating,
                "identified": states.identified,
                "monitoring": states.monitoring,
                "resolved": states.resolved,
            },
            show_scheduled=spi.maintenance_mode.scheduled_maintenance,
            show_emergency=spi.maintenance_mode.emergency_maintenance,
            timezone=config.engine.timezone,
            email_configured=config.integrations.email is not None,
            services=list(config.services),
        )

    def label(self, status: str) -> str:
        status = public_status(status)
        return (self.labels or {}).get(status) or status.capitalize()

    @property
    def page_id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "status"


# --- components -------------------------------------------------------------------------------


async def components(settings: Settings) -> list[dict[str, Any]]:
    """Public services: configured ones (file order), then those added through the API."""
    stored = {s["name"]: s for s in await Service.all().order_by("name").values("name", "description", "created_at")}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for s in settings.services:
        seen.add(s.name)
        if not s.public:
            continue
        row = stored.get(s.name) or {}
        out.append(
            {
                "id": s.name,
                "name": s.display_name or s.name,
                "description": s.description or row.get("description") or "",
                "group": s.group,
                "created_at": row.get("created_at"),
            }
        )
    for name, row in stored.items():
        if name not in seen:
            out.append({"id": name, "name": name, "description": row["description"], "group": None, "created_at": row["created_at"]})
    return out


def private_services(settings: Settings) -> set[str]:
    return {s.name for s in settings.services if not s.public}


def worst(states: Iterable[str]) -> str:
    return max(states, key=lambda s: _RANK.get(s, 0), default="operational")


def _maintenance_covers(window: dict[str, Any], name: str) -> bool:
    return name in (window.get("services") or [])


async def service_states(names: Sequence[str], now: datetime | None = None) -> dict[str, str]:
    """Each service's state from its open incidents (false positives aside) and active maintenance."""
    now = now or utcnow()
    incidents = await Incident.filter(status__in=OPEN, false_positive=False).values("severity", "status", "services")
    windows = await MaintenanceWindow.filter(starts_at__lte=now, ends_at__gt=now, ended_at=None).values("services")
    return {name: _state_of(name, incidents, windows) for name in names}


def _state_of(name: str, incidents: Iterable[dict[str, Any]], windows: Iterable[dict[str, Any]]) -> str:
    if any(_maintenance_covers(w, name) for w in windows):
        return "under_maintenance"
    states = []
    for inc in incidents:
        if name in (inc.get("services") or []):
            state = SEVERITY_STATE.get(inc["severity"], "degraded_performance")
            if inc["status"] == "monitoring":  # a fix is in place and being watched
                state = "degraded_performance"
            states.append(state)
    return worst(states)


# --- uptime -----------------------------------------------------------------------------------


def _union(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _overlap(intervals: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    total = 0.0
    for a, b in intervals:
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            total += (hi - lo).total_seconds()
    return total


def daily_uptime(
    incidents: Sequence[dict[str, Any]],
    days: int,
    now: datetime,
    tz: str,
    known_since: datetime | None,
    coverage: list[tuple[datetime, datetime]] | None,
) -> list[dict[str, Any]]:
    """One entry per day, oldest first: uptime percent (None without data) and the day's worst state.

    A day before anything was known of the service, or (when engines record heartbeats) a day no
    engine ran at all, is "no data" rather than up.
    """
    zone = ZoneInfo(tz)
    spans: dict[str, list[tuple[datetime, datetime]]] = {"major": [], "any_outage": [], "degraded": []}
    for inc in incidents:
        start = inc.get("detected_at") or inc["created_at"]
        end = inc.get("resolved_at") or now
        state = SEVERITY_STATE.get(inc["severity"], "degraded_performance")
        if state == "major_outage":
            spans["major"].append((start, end))
        if state in ("major_outage", "partial_outage"):
            spans["any_outage"].append((start, end))
        spans["degraded"].append((start, end))
    major, outage, degraded = (_union(spans[k]) for k in ("major", "any_outage", "degraded"))
    cover = _union(coverage) if coverage else None
    today = now.astimezone(zone).date()
    out: list[dict[str, Any]] = []
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        end = min(start + timedelta(days=1), now)
        length = (end - start).total_seconds()
        no_data = length <= 0 or known_since is None or end <= known_since
        if not no_data and cover is not None and _overlap(cover, start, end) == 0:
            no_data = True
        if no_data:
            out.append({"date": day.isoformat(), "uptime": None, "state": "no_data"})
            continue
        down = _overlap(major, start, end)
        partial = _overlap(outage, start, end) - down
        uptime = max(0.0, 100.0 * (1 - (down + PARTIAL_WEIGHT * partial) / length))
        state = (
            "major_outage"
            if down
            else "partial_outage"
            if partial
            else "degraded_performance"
            if _overlap(degraded, start, end)
            else "operational"
        )
        out.append({"date": day.isoformat(), "uptime": round(uptime, 3), "state": state, "seconds": length})
    return out


def overall_uptime(days: list[dict[str, Any]]) -> float | None:
    known = [d for d in days if d["uptime"] is not None]
    total = sum(d["seconds"] for d in known)
    if not total:
        return None
    uptime: float = round(sum(d["uptime"] * d["seconds"] for d in known) / total, 3)
    return uptime


async def _heartbeats(since: datetime) -> tuple[datetime | None, list[tuple[datetime, datetime]] | None]:
    from engine.storage.monitor_models import EngineHeartbeat

    # Tortoise types a flat values_list as tuples
    first = cast("datetime | None", await EngineHeartbeat.all().order_by("started_at").first().values_list("started_at", flat=True))
    if first is None:
        return None, None
    rows = await EngineHeartbeat.filter(beat_at__gte=since).values_list("started_at", "beat_at")
    return first, [(a, b) for a, b in rows]


# --- the page ---------------------------------------------------------------------------------


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


def _visible(inc: dict[str, Any], public_updates: int, settings: Settings, private: set[str]) -> bool:
    if inc["false_positive"]:
        return False
    if not settings.auto_update and not public_updates:
        return False
    names = inc.get("services") or []
    return not names or not all(n in private for n in names)


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
    visible = [r for r in rows if _visible(r, len(updates.get(r["id"], [])), settings, private)]
    public = [_clean(_incident(r, updates.get(r["id"], []), settings, known)) for r in visible]
    active = sorted((i for i in public if i["status"] != "resolved"), key=lambda i: i["created_at"], reverse=True)
    resolved = sorted((i for i in public if i["status"] == "resolved"), key=lambda i: i["resolved_at"], reverse=True)

    windows = (
        await MaintenanceWindow.filter(ends_at__gte=history_start)
        .order_by("starts_at")
        .values("id", "title", "kind", "services", "starts_at", "ends_at", "ended_at", "description", "created_at")
    )
    windows = [w for w in windows if (settings.show_emergency if w["kind"] == "emergency" else settings.show_scheduled)]
    maintenance = [_clean(_maintenance(w, now, known)) for w in windows]
    active_windows = [w for w, m in zip(windows, maintenance) if m["status"] == "in_progress"]

    # Component state and uptime come from every real incident on the service (visible or
    # not: a hidden incident still took the service down), never from its text.
    outage_rows = await Incident.filter(false_positive=False, status__in=OPEN).values("severity", "status", "services")
    first_beat, coverage = await _heartbeats(history_start)
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
        c["status"] = _state_of(name, outage_rows, active_windows)
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


# --- Statuspage v2 JSON -------------------------------------------------------------------------


def _page_obj(page: dict[str, Any]) -> dict[str, Any]:
    s: Settings = page["settings"]
    return {"id": s.page_id, "name": s.title, "url": s.public_url or "", "time_zone": s.timezone, "updated_at": _iso(page["updated_at"])}


def _component_obj(c: dict[str, Any], page_id: str, position: int, group_id: str | None = None) -> dict[str, Any]:
    return {
        "id": c["id"],
        "name": c["name"],
        "status": c["status"],
        "created_at": _iso(c.get("created_at")),
        "updated_at": _iso(c.get("created_at")),
        "position": position,
        "description": c["description"] or None,
        "showcase": True,
        "start_date": c["created_at"].date().isoformat() if c.get("created_at") else None,
        "group_id": group_id,
        "page_id": page_id,
        "group": False,
        "only_show_if_degraded": False,
    }


def component_objs(page: dict[str, Any]) -> list[dict[str, Any]]:
    page_id = page["settings"].page_id
    out: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {}
    for _i, c in enumerate(page["components"], 1):
        group_id = None
        if c.get("group"):
            group_id = "group-" + re.sub(r"[^a-z0-9]+", "-", c["group"].lower()).strip("-")
            if group_id not in groups:
                groups[group_id] = {
                    "id": group_id,
                    "name": c["group"],
                    "status": "operational",
                    "created_at": None,
                    "updated_at": None,
                    "position": len(out) + 1,
                    "description": None,
                    "showcase": False,
                    "start_date": None,
                    "group_id": None,
                    "page_id": page_id,
                    "group": True,
                    "only_show_if_degraded": False,
                    "components": [],
                }
                out.append(groups[group_id])
            groups[group_id]["components"].append(c["id"])
            if c["status"] == "under_maintenance" or _RANK.get(c["status"], 0) > _RANK.get(groups[group_id]["status"], 0):
                groups[group_id]["status"] = c["status"]
        out.append(_component_obj(c, page_id, len(out) + 1, group_id))
    return out


def incident_obj(i: dict[str, Any], page_id: str, base: str | None) -> dict[str, Any]:
    comps = [_component_obj(c, page_id, n) for n, c in enumerate(i["components"], 1)]
    return {
        "id": i["id"],
        "name": i["name"],
        "status": i["status"],
        "created_at": _iso(i["created_at"]),
        "updated_at": _iso(i["updated_at"]),
        "monitoring_at": _iso(i["monitoring_at"]),
        "resolved_at": _iso(i["resolved_at"]),
        "impact": i["impact"],
        "shortlink": f"{base}/status/incidents/{i['id']}" if base else None,
        "started_at": _iso(i["started_at"]),
        "page_id": page_id,
        "incident_updates": [
            {
                "id": u["id"],
                "status": u["status"],
                "body": u["body"],
                "incident_id": i["id"],
                "created_at": _iso(u["created_at"]),
                "updated_at": _iso(u["created_at"]),
                "display_at": _iso(u["created_at"]),
                "affected_components": None,
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
            }
            for u in i["updates"]
        ],
        "components": comps,
    }


def maintenance_obj(m: dict[str, Any], page_id: str, base: str | None) -> dict[str, Any]:
    return {
        "id": m["id"],
        "name": m["name"],
        "status": m["status"],
        "created_at": _iso(m["created_at"]),
        "updated_at": _iso(m["updated_at"]),
        "monitoring_at": None,
        "resolved_at": _iso(m["ended_at"]),
        "impact": "maintenance",
        "shortlink": f"{base}/status" if base else None,
        "started_at": _iso(m["scheduled_for"]),
        "page_id": page_id,
        "scheduled_for": _iso(m["scheduled_for"]),
        "scheduled_until": _iso(m["scheduled_until"]),
        "incident_updates": [
            {
                "id": f"{m['id']}-u",
                "status": m["status"],
                "body": m["body"],
                "incident_id": m["id"],
                "created_at": _iso(m["created_at"]),
                "updated_at": _iso(m["updated_at"]),
                "display_at": _iso(m["created_at"]),
                "affected_components": None,
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
            }
        ],
        "components": [_component_obj(c, page_id, n) for n, c in enumerate(m["components"], 1)],
    }


def statuspage_json(page: dict[str, Any], name: str) -> dict[str, Any]:
    """One of the Statuspage v2 documents: summary, status, components, incidents,
    incidents/unresolved, scheduled-maintenances, scheduled-maintenances/upcoming|active."""
    s: Settings = page["settings"]
    base = s.public_url
    head = {"page": _page_obj(page)}
    status = {"indicator": page["indicator"], "description": page["description"]}
    incidents = [incident_obj(i, s.page_id, base) for i in page["active"] + page["resolved"]][:50]
    unresolved = [incident_obj(i, s.page_id, base) for i in page["active"]]
    maint = [maintenance_obj(m, s.page_id, base) for m in sorted(page["maintenance"], key=lambda m: m["scheduled_for"], reverse=True)][:50]
    if name == "summary":
        current = sorted((m for m in maint if m["status"] in ("scheduled", "in_progress")), key=lambda m: m["scheduled_for"])
        return {**head, "components": component_objs(page), "incidents": unresolved, "scheduled_maintenances": current, "status": status}
    if name == "status":
        return {**head, "status": status}
    if name == "components":
        return {**head, "components": component_objs(page)}
    if name == "incidents":
        return {**head, "incidents": incidents}
    if name == "incidents/unresolved":
        return {**head, "incidents": unresolved}
    if name == "scheduled-maintenances":
        return {**head, "scheduled_maintenances": maint}
    if name == "scheduled-maintenances/upcoming":
        return {**head, "scheduled_maintenances": [m for m in maint if m["status"] == "scheduled"]}
    if name == "scheduled-maintenances/active":
        return {**head, "scheduled_maintenances": [m for m in maint if m["status"] == "in_progress"]}
    raise KeyError(name)


JSON_DOCUMENTS = (
    "summary",
    "status",
    "components",
    "incidents",
    "incidents/unresolved",
    "scheduled-maintenances",
    "scheduled-maintenances/upcoming",
    "scheduled-maintenances/active",
)
