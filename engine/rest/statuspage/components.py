"""The page's components (public services) and each one's state right now."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from engine.core.clock import utcnow
from engine.rest.statuspage.settings import OPEN, SEVERITY_STATE, STATE_RANK, Settings
from engine.storage.models import Incident, MaintenanceWindow, Service


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


def worst(states: Iterable[str]) -> str:
    return max(states, key=lambda s: STATE_RANK.get(s, 0), default="operational")


def _maintenance_covers(window: dict[str, Any], name: str) -> bool:
    return name in (window.get("services") or [])


async def service_states(names: Sequence[str], now: datetime | None = None) -> dict[str, str]:
    """Each service's state from its open incidents (false positives aside) and active maintenance."""
    now = now or utcnow()
    incidents = await Incident.filter(status__in=OPEN, false_positive=False).values("severity", "status", "services")
    windows = await MaintenanceWindow.filter(starts_at__lte=now, ends_at__gt=now, ended_at=None).values("services")
    return {name: state_of(name, incidents, windows) for name in names}


def state_of(name: str, incidents: Iterable[dict[str, Any]], windows: Iterable[dict[str, Any]]) -> str:
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
