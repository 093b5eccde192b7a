"""The service catalogue: each service with its owner, the policy its incidents follow, who it
pages first and who is on call for it now (`pulseguard services`, the API, the console's
on-call screen). Configured services first, then those added through the API (`POST
/api/services`), which the status page shows as well: they have no owner, schedule or runbook
of their own, and follow the policies as any service does."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from engine.escalation.policy import SEVERITIES, home_schedule, policy_for, policy_set


async def service_catalogue(config: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    from engine.oncall.overview import load_oncall_overview
    from engine.storage.models import Service

    overview = await load_oncall_overview(config, now, days=1)
    schedules = {entry["name"]: entry for entry in overview["schedules"]}
    rows = []
    configured = {s.name for s in config.services}
    added = [SimpleNamespace(name=name, display_name=None, owner=None, schedule=None, runbook=None, public=True)
             for name in await Service.all().order_by("name").values_list("name", flat=True) if name not in configured]  # fmt: skip
    for service in [*config.services, *added]:
        set_name, _ = policy_set(config, [service.name])
        first: dict[str, list[str]] = {}
        for severity in SEVERITIES:
            policy = policy_for(config, severity, [service.name])
            first[severity] = list(policy.levels[0].notify) if policy is not None and policy.levels else []
        # Whose shift covers the service: its own schedule, else the first schedule its policy
        # pages first (critical before the others), else the file's first schedule.
        paged = [t.split(":", 1)[1] for sev in SEVERITIES for t in first[sev] if t.startswith("schedule:")]
        schedule = service.schedule or (paged[0] if paged else None) or home_schedule(config, [service.name])
        entry = schedules.get(schedule) if schedule else None
        shift = (entry or {}).get("on_call") or {}
        person = shift.get("person") or {}
        rows.append(
            {
                "name": service.name,
                "display_name": service.display_name or service.name,
                "owner": service.owner,
                "escalation_policy": set_name,
                "pages_first": first,
                "schedule": schedule,
                "on_call": person.get("id"),
                "on_call_name": person.get("name"),
                "on_call_until": shift.get("end"),
                "on_call_source": (entry or {}).get("source"),
                "runbook": service.runbook,
                "public": service.public,
            }
        )
    return rows
