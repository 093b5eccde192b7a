"""The monitor's read side for the console and the API: targets and metric series."""

from __future__ import annotations

from datetime import datetime
from typing import Any


class MonitorQueries:
    """Read side for the console and the API (set as LocalEngine.targets_provider)."""

    async def list_targets(self) -> list[dict[str, Any]]:
        from engine.monitor.metrics import list_targets

        return await list_targets()

    async def series_samples(self, series: str, since: datetime | None = None, target: str | None = None) -> list[dict[str, Any]]:
        """Points of `series`; `name{target="x"}` or `x/name` selects target x's own series."""
        from engine.config.conditions import series_key
        from engine.monitor.metrics import parse_series, query_series, split_target

        prefix, series = split_target(series)
        target = target or prefix
        name, labels = parse_series(series)
        label_map = dict(labels)
        if target is None and "target" in label_map:
            from engine.storage.monitor_models import MetricSeries

            if not await MetricSeries.exists(key=series_key(name, label_map)):
                target = label_map.pop("target")
                series = series_key(name, label_map)
        return await query_series(series, since=since, target=target)
