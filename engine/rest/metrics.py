"""Pushed metrics: anything the probes cannot see (queue depths, job durations) sent in by
HTTP, stored as samples of named series that triggers and detectors read like any other."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field, StrictFloat, StringConstraints

from engine.config.conditions import series_key
from engine.core.clock import utcnow
from engine.core.domain import InvalidInput
from engine.rest.common import Body, Responder, Text, Viewer, When, iso
from engine.storage.monitor_models import MetricSeries

router = APIRouter(prefix="/api/metrics", tags=["metrics"])

SERIES_PATTERN = r"^[A-Za-z_:][A-Za-z0-9_:]*$"
LABEL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SeriesName = Annotated[Text, StringConstraints(pattern=SERIES_PATTERN, max_length=200)]
LabelName = Annotated[Text, StringConstraints(pattern=LABEL_PATTERN, max_length=100)]
LabelValue = Annotated[Text, Field(max_length=200)]
# A sample may be late (a batch job reporting), not from the future.
MAX_SKEW = timedelta(minutes=5)


class SampleIn(Body):
    series: SeriesName = Field(description="metric name, Prometheus style: queue_depth")
    value: StrictFloat = Field(allow_inf_nan=False)
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=20)
    at: When | None = Field(None, description="when it was measured (default: now)")


class PushIn(Body):
    samples: list[SampleIn] = Field(min_length=1, max_length=10_000)


async def push_samples(samples: list[SampleIn]) -> dict[str, int]:
    """Store samples through the monitoring engine's writer: the whole batch is checked first
    (a bad sample stores nothing), then written in one transaction; samples already stored
    (same series and time: a retried batch) are not stored twice."""
    from engine.monitor.metrics import check_sample, store_pushed

    now = utcnow()
    checked = []
    for i, s in enumerate(samples):
        at = s.at or now
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        key = series_key(s.series, s.labels)
        if len(key) > 500:
            raise InvalidInput(f"samples[{i}].labels", "make the series key longer than 500 characters")
        checked.append(check_sample(key, s.value, at, now=now, max_future=MAX_SKEW.total_seconds(), where=f"samples[{i}]."))
    return await store_pushed(checked)


@router.post("", status_code=201, summary="Push metric samples")
async def push(body: PushIn, _: Responder) -> dict[str, int]:
    return await push_samples(body.samples)


@router.get("/series", summary="Known metric series")
async def list_series(
    _: Viewer, name: Annotated[Text | None, Query(max_length=200)] = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> list[dict[str, Any]]:
    query = MetricSeries.all()
    if name:
        query = query.filter(name=name)
    rows = await query.order_by("key").limit(limit).values("id", "target", "key", "name", "labels", "source", "created_at")
    return [{k: iso(v) for k, v in r.items()} for r in rows]


@router.get("/samples", summary='Points of one series (by its key, such as queue_depth or up{job="api"})')
async def samples(
    _: Viewer,
    series: Annotated[Text, Query(max_length=500)],
    since: When | None = None,
    until: When | None = None,
    target: Annotated[Text | None, Query(max_length=64)] = None,
    resolution: Literal["auto", "raw", "minute"] = "auto",
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> dict[str, Any]:
    from engine.monitor.metrics import parse_series, query_series, split_target

    prefix, key = split_target(series)  # target/name, as correlation names a target's series
    if prefix is not None:
        if target is not None and target != prefix:
            raise InvalidInput("target", f"names {target!r} but the series names {prefix!r}")
        series, target = key, prefix
    parse_series(series)  # InvalidInput (422) naming the problem
    since = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    until = until.replace(tzinfo=UTC) if until is not None and until.tzinfo is None else until
    if since is not None and until is not None and until <= since:
        raise InvalidInput("until", "must be after since")
    if target is None and until is None and resolution == "auto" and limit == 10_000:
        # The console's spelling: name{target="x"} selects target x's own series.
        from engine.runtime.engine import MonitorQueries

        points = await MonitorQueries().series_samples(series, since)
    else:
        points = await query_series(series, since=since, until=until, target=target, resolution=resolution, limit=limit)
    return {"series": series, "points": points}
