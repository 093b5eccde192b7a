"""Metric history: series, batched sample writes, per-minute rollups, retention and queries.

Writes are batched: the engine buffers probe results and samples and stores each batch with
`bulk_create` in one transaction (never one transaction per sample, never while a probe is on
the wire). Per-minute rollups (count, min, max, mean, p95) are accumulated in memory as
samples are buffered and written once a minute is complete; a pushed sample (CLI or API)
recomputes its own minute's rollup from the stored samples.

Probe targets own two derived series: `response_time` (milliseconds, responses only) and `ok`
(1 or 0, so the rollup mean is the availability). Their raw points are the probe results.

Modules: `series` (names, keys, minutes, rollup statistics, the series registry), `sql` (the
hot paths' plain SQL), `targets` (target status), `writer` (the batching `MetricsWriter`),
`pushed` (pushed samples), `retention` and `queries` (points, engine gaps, uptime).
"""

from engine.monitor.metrics.pushed import PushedSample, check_sample, push_sample, recompute_rollups, store_pushed
from engine.monitor.metrics.queries import find_series, heartbeat_gaps, query_series, uptime
from engine.monitor.metrics.retention import apply_retention
from engine.monitor.metrics.series import PROBE_SERIES, SeriesRegistry, minute_of, parse_series, percentile, rollup_of, split_target, utc
from engine.monitor.metrics.sql import RESULT_COLUMNS, ROLLUP_COLUMNS, SAMPLE_COLUMNS, STATE_COLUMNS, sql_placeholders, upsert_rollups
from engine.monitor.metrics.targets import TARGET_STATE_FIELDS, TargetStatus, list_targets, sync_targets, target_address
from engine.monitor.metrics.writer import MetricsWriter

__all__ = [
    "MetricsWriter",
    "PROBE_SERIES",
    "PushedSample",
    "RESULT_COLUMNS",
    "ROLLUP_COLUMNS",
    "SAMPLE_COLUMNS",
    "STATE_COLUMNS",
    "SeriesRegistry",
    "TARGET_STATE_FIELDS",
    "TargetStatus",
    "apply_retention",
    "check_sample",
    "find_series",
    "heartbeat_gaps",
    "list_targets",
    "minute_of",
    "parse_series",
    "percentile",
    "push_sample",
    "query_series",
    "recompute_rollups",
    "rollup_of",
    "split_target",
    "sql_placeholders",
    "store_pushed",
    "sync_targets",
    "target_address",
    "upsert_rollups",
    "uptime",
    "utc",
]
