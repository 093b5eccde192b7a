"""Feed the pure correlation functions from the database: the metric series of an incident's
target, services and host around its start, and the incidents overlapping it.

Needs an open database (engine.storage.db.open_database). Nothing heavy is imported.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from engine.detection.correlation import SeriesChange, correlate, related_incidents

UTC = UTC


def targets_of(config: Any, services: list[str]) -> set[str]:
    """Names of the configured targets that belong to any of `services`."""
    wanted = set(services)
    return {t.name for t in (getattr(config, "targets", None) or []) if getattr(t, "service", None) in wanted}


async def incident_series(incident: Any, config: Any, window: timedelta) -> dict[str, tuple[list[str], list[float]]]:
    """Every metric series of the incident's target, its services' targets and the host, as
    {"target/key": (timestamps, values)} over [start - window, start + window / 2]."""
    from engine.monitor.metrics import query_series
    from engine.storage.monitor_models import MetricSeries

    start = incident.detected_at or incident.created_at
    since, until = start - window, start + window / 2
    targets = targets_of(config, list(incident.services or []))
    if incident.target:
        targets.add(incident.target)
    rows = await MetricSeries.filter(target__in=sorted(targets)).values("target", "key") if targets else []
    rows += await MetricSeries.filter(source="host").values("target", "key")
    out: dict[str, tuple[list[str], list[float]]] = {}
    for row in rows:
        name = f"{row['target']}/{row['key']}" if row["target"] else row["key"]
        if name in out:
            continue
        points = await query_series(row["key"], since=since, until=until, target=row["target"] or None, resolution="raw")
        out[name] = ([p["at"] for p in points], [float(p["value"]) for p in points if p.get("value") is not None])
        if len(out[name][0]) != len(out[name][1]):  # rows without a value: keep pairs aligned
            pairs = [(p["at"], float(p["value"])) for p in points if p.get("value") is not None]
            out[name] = ([a for a, _ in pairs], [v for _, v in pairs])
    return out


# Worked out on request, over at most this much history on each side of the start (the API and
# the CLI refuse a longer window alike).
LONGEST_WINDOW = timedelta(days=1)


async def correlate_incident(key: str, config: Any = None, window: timedelta = timedelta(hours=1), limit: int = 20) -> dict[str, Any]:
    """Correlation analysis of one incident: ranked series changes and related incidents."""
    from engine.core.domain import NotFound, parse_incident_key
    from engine.storage.models import Incident

    number = parse_incident_key(key)
    incident = await Incident.get_or_none(number=number)
    if incident is None:
        raise NotFound(f"no incident {key}")
    start = incident.detected_at or incident.created_at
    series = await incident_series(incident, config, window)
    changes: list[SeriesChange] = correlate(series, start, window)
    nearby = await Incident.filter(created_at__gte=start - timedelta(days=2), created_at__lte=start + window).values(
        "number", "title", "services", "tags", "detected_at", "created_at", "resolved_at"
    )
    others = [{**r, "key": f"INC-{r['number']}"} for r in nearby]
    mine = {
        "key": incident.key,
        "services": incident.services,
        "tags": incident.tags,
        "detected_at": start,
        "resolved_at": incident.resolved_at,
    }
    return {
        "incident": incident.key,
        "start": start.astimezone(UTC).isoformat(),
        "window_seconds": window.total_seconds(),
        "series": [c.to_dict() for c in changes[:limit]],
        "related_incidents": related_incidents(mine, others),
    }
