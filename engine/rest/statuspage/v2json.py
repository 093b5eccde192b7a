"""The page as Statuspage v2 JSON documents (summary, status, components, incidents…)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from engine.rest.statuspage.settings import STATE_RANK, Settings


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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
            if c["status"] == "under_maintenance" or STATE_RANK.get(c["status"], 0) > STATE_RANK.get(groups[group_id]["status"], 0):
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
