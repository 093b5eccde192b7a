"""The incident an anomaly alert opens: one per series episode (dedup key
`anomaly:<series>`), source `anomaly`, with the anomalous window as evidence, its score, the
expected band, the shape to remember if a person marks it a false positive, pattern recognition
and the correlation of the other series the detector watches."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.detection.worker import Alert

log = logging.getLogger("pulseguard.detection")

ACTOR = "anomaly-detector"


async def open_incident(alert: Alert, *, engine: Any, section: Any, settings: Any, patterns: Any, window: float) -> str | None:
    """Open the incident for an alert (unless its series has one open, or the section turns
    incident creation off); returns its key."""
    from engine.incidents import services

    dedup = f"anomaly:{alert.series}"[:200]
    if await services.find_open_incident(dedup) is not None:
        return None  # one open incident per series episode
    if not getattr(section, "auto_create_incident", True):
        return None
    at = datetime.fromtimestamp(alert.at, UTC)
    now = datetime.now(UTC)
    band = alert.band
    direction = "above" if band and alert.value > band[1] else "below" if band and alert.value < band[0] else "unusual"
    expected = f"expected {num(band[0])}–{num(band[1])}" if band else "no expected band yet"
    title = f"Anomaly on {alert.series}: {num(alert.value)} {direction} normal ({expected})"
    services_of = getattr(getattr(engine, "monitor", None), "services_by_target", None) or {}
    service = services_of.get(alert.target) if alert.target else None
    incident_like = {
        "title": title,
        "target": alert.target,
        "trigger": "anomaly",
        "services": [service] if service else [],
        "detected_at": min(at, now),
        "source": "anomaly",
    }
    analysis: dict[str, Any] = {
        "anomaly": {
            "series": alert.series,
            "score": round(alert.score, 4),
            "value": alert.value,
            "at": at.isoformat(),
            "expected_band": list(band) if band else None,
            "sensitivity": settings.sensitivity,
            "signature": [round(v, 6) for v in alert.signature],
        },
        # The same shape the enricher stores for other incidents (engine.core.analysis.Correlation).
        "correlation": {
            "incident": None,
            "start": at.isoformat(),
            "window_seconds": window,
            "series": alert.correlation,
            "related_incidents": [],
        },
    }
    analysis["pattern"] = await new_incident_patterns(incident_like, patterns)
    description = (
        f"The anomaly detector flagged {alert.series} at {at.strftime('%Y-%m-%d %H:%M:%S')} UTC: value {num(alert.value)}, "
        f"score {alert.score:.2f} ({settings.sensitivity} sensitivity), {expected}."
    )
    hint = (analysis["pattern"] or {}).get("hint")
    if hint:
        description += f"\n{hint}"
    severity = getattr(getattr(section, "severity", None), "value", None) or str(getattr(section, "severity", "medium") or "medium")
    try:
        incident = await services.create_incident(
            title=title[:200],
            severity=severity,
            actor=ACTOR,
            description=description,
            services=[service] if service else [],
            tags=["anomaly"],
            source="anomaly",
            dedup_key=dedup,
            detected_at=min(at, now),
            target=alert.target,
            trigger="anomaly",
            analysis=analysis,
        )
    except services.Silenced:
        return None  # recorded on the feed and counted on the silence
    first, last = alert.window[0][0], alert.window[-1][0]
    await services.add_evidence(
        incident.key,
        "samples",
        ACTOR,
        content=json.dumps(
            {
                "series": alert.series,
                "expected_band": list(band) if band else None,
                "score": alert.score,
                "samples": [[datetime.fromtimestamp(t, UTC).isoformat(), v] for t, v in alert.window],
            }
        ),
        range_from=datetime.fromtimestamp(first, UTC),
        range_to=datetime.fromtimestamp(last, UTC),
        description=f"anomalous window of {alert.series}: score {alert.score:.2f}, {expected}",
    )
    return incident.key


async def new_incident_patterns(incident: dict[str, Any], patterns: Any) -> dict[str, Any] | None:
    """Pattern recognition for an incident about to be opened, None when it is off or fails."""
    if patterns is not None and not getattr(patterns, "enabled", True):
        return None
    from engine.detection.patterns import PAST_FIELDS, analyze
    from engine.storage.models import Incident

    days = int(getattr(patterns, "historical_analysis_days", 30) or 30)
    since = datetime.now(UTC) - timedelta(days=days)
    try:
        rows = await Incident.filter(created_at__gte=since).values(*PAST_FIELDS)
    except Exception:
        log.exception("pattern recognition could not read past incidents")
        return None
    past = [{**r, "key": f"INC-{r['number']}"} for r in rows]
    result: dict[str, Any] = jsonable(analyze(incident, past, days=days))
    return result


def num(value: float) -> str:
    """A value as incident titles and descriptions show it (four significant digits)."""
    return f"{value:.4g}"


def jsonable(data: Any) -> Any:
    """`data` as it reads back from a JSON column (datetimes as strings): an analysis as stored."""
    return json.loads(json.dumps(data, default=str))
