"""Series names and keys, minute arithmetic, rollup statistics and the series registry."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from engine.config.conditions import ConditionError, Series, Truthy, parse_condition, series_key
from engine.core.domain import InvalidInput
from engine.storage.monitor_models import MetricSeries

PROBE_SERIES = ("response_time", "ok")


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def minute_of(ts: float) -> int:
    return int(ts // 60) * 60


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def rollup_of(values: Sequence[float]) -> tuple[int, float, float, float, float]:
    ordered = sorted(values)
    return len(ordered), ordered[0], ordered[-1], sum(ordered) / len(ordered), percentile(ordered, 0.95)


def parse_series(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`name` or `name{label="value",…}` (the condition language's spelling) → name, labels."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidInput("series", "must not be empty")
    try:
        condition = parse_condition(raw)
    except ConditionError as exc:
        raise InvalidInput("series", f"{raw!r} is not a series name ({exc})") from None
    root = condition.root
    if not isinstance(root, Truthy) or not isinstance(root.operand, Series):
        raise InvalidInput("series", f'{raw!r} is not a series name (expected name or name{{label="value"}})')
    return root.operand.name, root.operand.labels


def split_target(text: str) -> tuple[str | None, str]:
    """`target/series` (how correlation and anomaly detection name a target's series, e.g.
    `checkout-api/response_time`) → ("checkout-api", "response_time"); anything else → (None, text).
    Target names cannot contain `/`, so the first one before any label block separates them."""
    raw = (text or "").strip()
    head = raw.split("{", 1)[0]
    if "/" not in head:
        return None, raw
    target, series = raw.split("/", 1)
    if not target.strip() or not series.strip():
        raise InvalidInput("series", f'{raw!r} is not a series name (expected name, name{{label="value"}} or target/name)')
    return target.strip(), series.strip()


# ---------------------------------------------------------------------------------------------
# Series registry


class SeriesRegistry:
    """(target, key) → series id, creating rows on first sight (idempotent across processes)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], int] = {}

    def get(self, target: str, key: str) -> int | None:
        return self._ids.get((target, key))

    async def ensure(self, items: Iterable[tuple[str, str, tuple[tuple[str, str], ...], str]]) -> None:
        """Make sure series exist for (target, name, labels, source) items."""
        missing: dict[tuple[str, str], tuple[str, tuple[tuple[str, str], ...], str]] = {}
        for target, name, labels, source in items:
            key = series_key(name, dict(labels))
            if (target, key) not in self._ids:
                missing[(target, key)] = (name, labels, source)
        if not missing:
            return
        now = datetime.now(UTC)
        rows = [
            MetricSeries(target=t, key=k, name=name, labels=dict(labels), source=source, created_at=now)
            for (t, k), (name, labels, source) in missing.items()
        ]
        await MetricSeries.bulk_create(rows, batch_size=500, ignore_conflicts=True)
        by_target: dict[str, list[str]] = defaultdict(list)
        for t, k in missing:
            by_target[t].append(k)
        for t, keys in by_target.items():
            for i in range(0, len(keys), 500):
                found = await MetricSeries.filter(target=t, key__in=keys[i : i + 500]).values_list("id", "key")
                for series_id, key in found:
                    self._ids[(t, key)] = series_id
