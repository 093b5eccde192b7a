"""Pushed samples (CLI or API): checked, stored idempotently, their minutes' rollups recomputed
from the stored samples."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tortoise.transactions import in_transaction

from engine.config.conditions import series_key
from engine.core.domain import InvalidInput
from engine.monitor.metrics.series import SeriesRegistry, minute_of, parse_series, rollup_of, utc
from engine.monitor.metrics.sql import as_rows, insert_samples_sql, upsert_rollups, upsert_rollups_sql
from engine.storage.monitor_models import MetricSample


@dataclass(frozen=True)
class PushedSample:
    """A checked pushed sample: `key` is the series key, `at` is in UTC."""

    name: str
    labels: tuple[tuple[str, str], ...]
    key: str
    value: float
    at: datetime


def check_sample(
    series: str, value: Any, at: datetime | None, *, now: datetime | None = None, max_future: float = 300.0, where: str = ""
) -> PushedSample:
    """A pushed sample checked for storing; InvalidInput names the field (prefixed by `where`,
    such as `samples[3].`) for a bad series, value or time."""
    from engine.core.domain import check_time

    try:
        name, labels = parse_series(series)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}series", exc.message) from None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{where}value", f"{value!r} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise InvalidInput(f"{where}value", "must be a finite number")
    now = now or datetime.now(UTC)
    when = now if at is None else at
    if when.tzinfo is None:
        raise InvalidInput(f"{where}at", "must carry a time zone")
    when = check_time(when, f"{where}at").astimezone(UTC)
    if when > now + timedelta(seconds=max_future):
        raise InvalidInput(f"{where}at", f"{when.isoformat()} is in the future")
    key = series_key(name, dict(labels))
    if len(key) > 500:
        raise InvalidInput(f"{where}series", "is longer than 500 characters with its labels")
    return PushedSample(name, labels, key, number, when)


async def store_pushed(samples: Sequence[PushedSample]) -> dict[str, int]:
    """Store checked pushed samples at once: their samples and the rollups of the minutes they
    fall in, in one transaction. A sample whose series already has a value at that instant is
    not stored again, so a retried batch stores nothing twice."""
    if not samples:
        return {"stored": 0, "duplicates": 0, "series": 0}
    registry = SeriesRegistry()
    await registry.ensure({("", s.name, s.labels, "push") for s in samples})
    rows: dict[tuple[int, datetime], float] = {}
    for s in samples:
        series_id = registry.get("", s.key)
        assert series_id is not None
        rows.setdefault((series_id, s.at), s.value)  # the first of a batch's repeats counts
    minutes = {(series_id, minute_of(at.timestamp())) for series_id, at in rows}
    lo = datetime.fromtimestamp(min(m for _, m in minutes), UTC)
    hi = datetime.fromtimestamp(max(m for _, m in minutes) + 60, UTC)
    ids = sorted({series_id for series_id, _ in minutes})
    async with in_transaction() as conn:
        stored: dict[tuple[int, datetime], float] = {}
        for i in range(0, len(ids), 500):
            found = (
                await MetricSample.filter(series_id__in=ids[i : i + 500], at__gte=lo, at__lt=hi)
                .using_db(conn)
                .values_list("series_id", "at", "value")
            )
            for series_id, at, value in found:
                if (series_id, minute_of(at.timestamp())) in minutes:
                    stored[(series_id, at.astimezone(UTC))] = float(value)
        new = [(series_id, at, value) for (series_id, at), value in rows.items() if (series_id, at) not in stored]
        if new:
            await conn.execute_many(insert_samples_sql(conn), as_rows(new))
        by_minute: dict[tuple[int, int], list[float]] = defaultdict(list)
        for (series_id, at), value in [*stored.items(), *((k, v) for k, v in rows.items() if k not in stored)]:
            key = (series_id, minute_of(at.timestamp()))
            if key in minutes:
                by_minute[key].append(value)
        rollups = [(series_id, utc(minute), *rollup_of(values)) for (series_id, minute), values in sorted(by_minute.items())]
        await conn.execute_many(upsert_rollups_sql(conn), as_rows(rollups))
    return {"stored": len(new), "duplicates": len(samples) - len(new), "series": len(ids)}


async def push_sample(series: str, value: float, at: datetime | None = None, *, max_future: float = 300.0) -> dict[str, Any]:
    """Store one pushed sample (series `name` or `name{label="v"}`) and refresh its minute's
    rollup. Raises InvalidInput for a bad series, value or time."""
    sample = check_sample(series, value, at, max_future=max_future)
    result = await store_pushed([sample])
    return {"series": sample.key, "at": sample.at.isoformat(), "value": sample.value, "stored": bool(result["stored"])}


async def recompute_rollups(pairs: Iterable[tuple[int, int]]) -> int:
    """Rebuild the rollups of (series id, minute epoch) pairs from their stored samples (for
    pushed series, whose samples may arrive late or from other processes)."""
    rows = []
    for series_id, minute in sorted(set(pairs)):
        start = datetime.fromtimestamp(minute, UTC)
        values = cast(
            "list[float]",
            await MetricSample.filter(series_id=series_id, at__gte=start, at__lt=start + timedelta(minutes=1)).values_list(
                "value", flat=True
            ),
        )  # Tortoise types flat values_list as tuples
        if values:
            rows.append((series_id, start, *rollup_of([float(v) for v in values])))
    if rows:
        await upsert_rollups(rows)
    return len(rows)
