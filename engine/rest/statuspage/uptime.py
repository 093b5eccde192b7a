"""Daily uptime per component, weighted as Statuspage does, with days of no data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from engine.rest.statuspage.settings import PARTIAL_WEIGHT, SEVERITY_STATE


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


async def heartbeats(since: datetime) -> tuple[datetime | None, list[tuple[datetime, datetime]] | None]:
    from engine.storage.monitor_models import EngineHeartbeat

    # Tortoise types a flat values_list as tuples
    first = cast("datetime | None", await EngineHeartbeat.all().order_by("started_at").first().values_list("started_at", flat=True))
    if first is None:
        return None, None
    rows = await EngineHeartbeat.filter(beat_at__gte=since).values_list("started_at", "beat_at")
    return first, [(a, b) for a, b in rows]
