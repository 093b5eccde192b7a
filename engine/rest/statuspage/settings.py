"""The status page's settings and vocabulary: component states, impacts, indicators."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.core.domain import OPEN_STATUSES

COMPONENT_STATES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")
STATE_LABELS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
    "no_data": "No data",
}
STATE_RANK = {"operational": 0, "degraded_performance": 1, "partial_outage": 2, "major_outage": 3}
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
    # Each configured target's service: a maintenance window may name targets only.
    target_services: dict[str, str | None] | None = None

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
            target_services={t.name: t.service for t in config.targets},
        )

    def label(self, status: str) -> str:
        status = public_status(status)
        return (self.labels or {}).get(status) or status.capitalize()

    @property
    def page_id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "status"
