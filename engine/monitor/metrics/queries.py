"""Reading metric history: series points (raw or per-minute), engine gaps and uptime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from engine.config.conditions import series_key
from engine.core.domain import InvalidInput
from engine.monitor.metrics.series import PROBE_SERIES, parse_series
from engine.storage.monitor_models import EngineHeartbeat, MetricRollup, MetricSample, MetricSeries, ProbeResult


async def find_series(series: str, target: str | None = None) -> list[MetricSeries]:
    """Series whose key matches `series` exactly (any target unless `target` is given)."""
    name, labels = parse_series(series)
    query = MetricSeries.filter(key=series_key(name, dict(labels)))
    if target is not None:
        query = query.filter(target=target)
    return await query.order_by("target", "id")


async def query_series(
    series: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    target: str | None = None,
    resolution: str = "auto",
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Points of a series, oldest first: raw points (`at`, `value`) when `resolution` is
    "raw", per-minute rollups (`at`, `count`, `min`, `max`, `mean`, `p95`, `value` = mean)
    when "minute"; "auto" picks raw for spans up to 6 hours."""
    now = datetime.now(UTC)
    until = until or now
    since = since or (until - timedelta(hours=1))
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("since", "must carry a time zone")
    if resolution not in ("auto", "raw", "minute"):
        raise InvalidInput("resolution", f"unknown resolution {resolution!r} (expected auto, raw or minute)")
    if resolution == "auto":
        resolution = "raw" if until - since <= timedelta(hours=6) else "minute"
    found = await find_series(series, target)
    name, _ = parse_series(series)
    if not found and name in PROBE_SERIES and target is not None:
        found = []  # a probe target not yet rolled up still has raw probe results
    out: list[dict[str, Any]] = []
    targets_done: set[str] = set()
    for row in found:
        targets_done.add(row.target)
        label = {"series": row.key, "target": row.target or None}
        if resolution == "minute":
            rollups = (
                await MetricRollup.filter(series_id=row.id, minute__gte=since, minute__lt=until)
                .order_by("minute")
                .limit(limit)
                .values("minute", "count", "min", "max", "mean", "p95")
            )
            out += [
                {**label, "at": r["minute"].isoformat(), "value": r["mean"], **{k: r[k] for k in ("count", "min", "max", "mean", "p95")}}
                for r in rollups
            ]
        elif row.source == "probe":
            out += await _probe_points(row.target, row.name, since, until, limit, label)
        else:
            points = (
                await MetricSample.filter(series_id=row.id, at__gte=since, at__lt=until)
                .order_by("at")
                .limit(limit)
                .values_list("at", "value")
            )
            out += [{**label, "at": at.isoformat(), "value": value} for at, value in points]
    if resolution == "raw" and name in PROBE_SERIES and target is not None and target not in targets_done:
        out += await _probe_points(target, name, since, until, limit, {"series": name, "target": target})
    return out


async def _probe_points(
    target: str, name: str, since: datetime, until: datetime, limit: int, label: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = (
        await ProbeResult.filter(target=target, at__gte=since, at__lt=until)
        .order_by("at")
        .limit(limit)
        .values_list("at", "ok", "latency_ms", "status_code", "error")
    )
    if name == "ok":
        return [{**label, "at": at.isoformat(), "value": 1.0 if ok else 0.0, "error": error} for at, ok, _, _, error in rows]
    # Response times of probes that got a response (a timeout's "latency" is the timeout).
    return [
        {**label, "at": at.isoformat(), "value": latency, "status_code": code, "ok": ok, "error": error}
        for at, ok, latency, code, error in rows
        if latency is not None and (ok or code is not None)
    ]


async def heartbeat_gaps(since: datetime, until: datetime | None = None, *, slack: float = 30.0) -> list[tuple[datetime, datetime]]:
    """Stretches in [since, until] when no engine was running: "no data", neither up nor down.
    A run counts until its last heartbeat plus `slack` seconds."""
    until = until or datetime.now(UTC)
    runs = (
        await EngineHeartbeat.filter(beat_at__gte=since - timedelta(seconds=slack), started_at__lte=until)
        .order_by("started_at")
        .values_list("started_at", "beat_at", "stopped_at")
    )
    gaps: list[tuple[datetime, datetime]] = []
    cursor = since
    for started, beat, stopped in runs:
        end = stopped or (beat + timedelta(seconds=slack))
        if started > cursor:
            gaps.append((cursor, min(started, until)))
        cursor = max(cursor, end)
        if cursor >= until:
            break
    if cursor < until:
        gaps.append((cursor, until))
    return [(a, b) for a, b in gaps if b > a]


async def uptime(target: str, since: datetime, until: datetime | None = None) -> dict[str, Any]:
    """Availability from the per-minute `ok` rollups: minutes without data are "no data" and
    count neither as up nor as down."""
    until = until or datetime.now(UTC)
    series = await MetricSeries.get_or_none(target=target, key="ok")
    total_minutes = max(0, int((until - since).total_seconds() // 60))
    if series is None:
        return {"target": target, "uptime_percent": None, "minutes_with_data": 0, "minutes_without_data": total_minutes}
    rows = cast(
        "list[float]", await MetricRollup.filter(series_id=series.id, minute__gte=since, minute__lt=until).values_list("mean", flat=True)
    )
    known = len(rows)
    percent = round(100.0 * sum(rows) / known, 3) if known else None
    return {"target": target, "uptime_percent": percent, "minutes_with_data": known, "minutes_without_data": max(0, total_minutes - known)}
