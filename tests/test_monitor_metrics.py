"""Metric history on a real database: batched writes, per-minute rollups, pushed samples,
queries, retention, uptime with "no data", heartbeat gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.core.domain import InvalidInput
from engine.monitor.metrics import (
    MetricsWriter,
    TargetStatus,
    apply_retention,
    heartbeat_gaps,
    minute_of,
    percentile,
    push_sample,
    query_series,
    uptime,
)
from engine.monitor.probes import Observation, SeriesValue
from engine.storage.monitor_models import EngineHeartbeat, MetricRollup, MetricSample, MetricSeries, MonitorTarget, ProbeResult

UTC = UTC


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(10, 210, 10)]  # 10 … 200
    assert percentile(values, 0.95) == 190.0
    assert percentile(values, 0.5) == 100.0
    assert percentile([7.0], 0.95) == 7.0


async def test_batches_rollups_queries_retention_uptime(db) -> None:  # type: ignore[no-untyped-def]
    minute = minute_of(datetime.now(UTC).timestamp()) - 600  # a completed minute, ten minutes ago
    statuses = {
        "api": TargetStatus("api", "http", "http://x", "shop", 5.0, 2.0),
        "node": TargetStatus("node", "prometheus", "http://x/metrics", None, 5.0, 2.0),
    }
    writer = MetricsWriter(statuses)
    for i in range(20):
        obs = Observation("api", minute + i, True, float(10 * (i + 1)), status_code=200)
        statuses["api"].update(obs)
        writer.add(obs)
    for i in range(2):
        writer.add(Observation("api", minute + 30 + i, False, 2000.0, responded=False, error="timeout after 2s"))
    writer.add(
        Observation(
            "node", minute + 5, True, 3.0, status_code=200, series=[SeriesValue("up", (("job", "x"),), 1.0), SeriesValue("load", (), 0.5)]
        )
    )
    writer.add(
        Observation(
            "node", minute + 35, True, 3.0, status_code=200, series=[SeriesValue("up", (("job", "x"),), 0.0), SeriesValue("load", (), 1.5)]
        )
    )
    await MonitorTarget.create(name="api", kind="http", interval=5, timeout=2, updated_at=datetime.now(UTC))
    await writer.flush()
    # One batch for everything, and every row stored.
    assert writer.batches == 1
    assert await ProbeResult.filter(target="api").count() == 22
    assert await MetricSample.all().count() == 4
    series = {(s.target, s.key): s for s in await MetricSeries.all()}
    assert {("api", "response_time"), ("api", "ok"), ("node", 'up{job="x"}'), ("node", "load"), ("node", "ok")} <= set(series)
    rollup = await MetricRollup.get(series_id=series[("api", "response_time")].id)
    assert (rollup.count, rollup.min, rollup.max, rollup.mean, rollup.p95) == (20, 10.0, 200.0, 105.0, 190.0)
    assert rollup.minute == datetime.fromtimestamp(minute, UTC)
    ok = await MetricRollup.get(series_id=series[("api", "ok")].id)
    assert ok.count == 22 and ok.mean == pytest.approx(20 / 22)
    load = await MetricRollup.get(series_id=series[("node", "load")].id)
    assert (load.count, load.mean) == (2, 1.0)
    row = await MonitorTarget.get(name="api")  # the target's latest state, written with the batch
    assert row.state == "up" and row.last_latency_ms == 200.0

    start = datetime.fromtimestamp(minute - 60, UTC)
    raw = await query_series("response_time", target="api", since=start, resolution="raw")
    assert [p["value"] for p in raw] == [float(10 * (i + 1)) for i in range(20)]  # responses only
    assert [p["value"] for p in await query_series("ok", target="api", since=start)].count(0.0) == 2
    rolled = await query_series("response_time", target="api", since=start, resolution="minute")
    assert len(rolled) == 1 and rolled[0]["count"] == 20 and rolled[0]["p95"] == 190.0
    assert [p["value"] for p in await query_series('up{job="x"}', since=start)] == [1.0, 0.0]
    with pytest.raises(InvalidInput):
        await query_series("not a series!", since=start)

    # Raw history goes after `raw_retention`; rollups stay for analysis and charts.
    deleted = await apply_retention(raw_seconds=300, rollup_seconds=30 * 86400)
    assert deleted["probe_result"] == 24 and deleted["metric_sample"] == 4 and deleted["metric_rollup"] == 0
    assert await query_series("response_time", target="api", since=start, resolution="raw") == []
    assert len(await query_series("response_time", target="api", since=start, resolution="minute")) == 1

    # Uptime counts only minutes with data; the rest of the hour is "no data", not up or down.
    report = await uptime("api", datetime.fromtimestamp(minute - 1800, UTC), datetime.fromtimestamp(minute + 1800, UTC))
    assert report["minutes_with_data"] == 1 and report["minutes_without_data"] == 59
    assert report["uptime_percent"] == pytest.approx(100 * 20 / 22, abs=0.001)


async def test_pushed_samples_and_bad_input(db) -> None:  # type: ignore[no-untyped-def]
    at = datetime.now(UTC).replace(second=10, microsecond=0) - timedelta(minutes=3)
    first = await push_sample('queue_depth{job="mail"}', 5, at)
    await push_sample('queue_depth{job="mail"}', 7, at + timedelta(seconds=20))
    assert first["series"] == 'queue_depth{job="mail"}'
    series = await MetricSeries.get(key='queue_depth{job="mail"}')
    assert series.target == "" and series.source == "push" and series.labels == {"job": "mail"}
    rollup = await MetricRollup.get(series_id=series.id)
    assert (rollup.count, rollup.mean, rollup.min, rollup.max) == (2, 6.0, 5.0, 7.0)
    points = await query_series('queue_depth{job="mail"}', since=at - timedelta(minutes=1))
    assert [p["value"] for p in points] == [5.0, 7.0]
    for series_text, value, when, field in [
        ("bad name!", 1, None, "series"),
        ("", 1, None, "series"),
        ("queue", float("nan"), None, "value"),
        ("queue", "abc", None, "value"),
        ("queue", 1, datetime.now(UTC) + timedelta(hours=1), "at"),
        ("queue", 1, datetime.now(), "at"),
    ]:
        with pytest.raises(InvalidInput) as info:
            await push_sample(series_text, value, when)  # type: ignore[arg-type]
        assert info.value.field == field
    assert await MetricSample.all().count() == 2  # refusals wrote nothing


async def test_heartbeat_gaps_are_no_data(db) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    await EngineHeartbeat.create(holder="a", started_at=t0, beat_at=t0 + timedelta(seconds=60))  # died: no stop
    await EngineHeartbeat.create(
        holder="b", started_at=t0 + timedelta(seconds=300), beat_at=t0 + timedelta(seconds=400), stopped_at=t0 + timedelta(seconds=400)
    )
    gaps = await heartbeat_gaps(t0 - timedelta(seconds=10), t0 + timedelta(seconds=500))
    assert gaps == [
        (t0 - timedelta(seconds=10), t0),
        (t0 + timedelta(seconds=90), t0 + timedelta(seconds=300)),  # last beat + 30 s slack
        (t0 + timedelta(seconds=400), t0 + timedelta(seconds=500)),
    ]
    assert await heartbeat_gaps(t0 + timedelta(seconds=310), t0 + timedelta(seconds=390)) == []
