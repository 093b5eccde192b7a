"""Retention: old raw results, samples, rollups and heartbeat rows deleted in chunks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tortoise.functions import Max

from engine.storage.monitor_models import EngineHeartbeat, HeartbeatPing, MetricRollup, MetricSample, ProbeResult


async def apply_retention(
    raw_seconds: float, rollup_seconds: float, *, chunk: int = 5000, now: datetime | None = None, halt: asyncio.Event | None = None
) -> dict[str, int]:
    """Delete raw results and samples older than `raw_seconds` and rollups (and heartbeat
    rows) older than `rollup_seconds`, in chunks so no transaction stays open for long."""
    now = now or datetime.now(UTC)
    deleted: dict[str, int] = {}
    plan = [
        (ProbeResult, "at", now - timedelta(seconds=raw_seconds)),
        (MetricSample, "at", now - timedelta(seconds=raw_seconds)),
        (MetricRollup, "minute", now - timedelta(seconds=rollup_seconds)),
        (EngineHeartbeat, "beat_at", now - timedelta(seconds=rollup_seconds)),
    ]
    for model, column, cutoff in plan:
        total = 0
        while True:
            ids = await model.filter(**{f"{column}__lt": cutoff}).limit(chunk).values_list("id", flat=True)
            if not ids:
                break
            total += await model.filter(id__in=list(ids)).delete()
            if len(ids) < chunk or (halt is not None and halt.is_set()):
                break
            await asyncio.sleep(0)
        deleted[model._meta.db_table] = total
    # Heartbeat pings age like raw results, except each target's newest: a monthly job's last
    # ping must outlive a 7-day retention, or a restarted engine would forget it.
    newest = await HeartbeatPing.annotate(newest=Max("id")).group_by("target").values_list("newest", flat=True)
    deleted["heartbeat_ping"] = (
        await HeartbeatPing.filter(at__lt=now - timedelta(seconds=raw_seconds)).exclude(id__in=list(newest)).delete()
    )
    return deleted
