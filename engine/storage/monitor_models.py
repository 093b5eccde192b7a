"""Tables of the monitoring engine: targets, probe results, metric series, samples, rollups,
the engine lease and heartbeats.

Only the monitoring engine writes these (samples in batches, never one transaction per sample);
the console and the CLI read them.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields

from engine.storage.base import Model


class MonitorTarget(Model):
    """A probed target as configured, plus its latest state (written by the engine in batches)."""

    name = fields.CharField(max_length=64, primary_key=True)
    kind = fields.CharField(max_length=16)
    address = fields.CharField(max_length=500, default="", db_default="")
    service = fields.CharField(max_length=64, null=True)
    interval = fields.FloatField()
    timeout = fields.FloatField()
    active = fields.BooleanField(default=True, db_default=True)
    # up | down | unknown (never probed, or no data)
    state = fields.CharField(max_length=16, default="unknown", db_default="unknown")
    last_at = fields.DatetimeField(null=True)
    last_ok = fields.BooleanField(null=True)
    last_latency_ms = fields.FloatField(null=True)
    last_status_code = fields.IntField(null=True)
    last_error = fields.CharField(max_length=300, null=True)
    last_ok_at = fields.DatetimeField(null=True)
    last_change_at = fields.DatetimeField(null=True)
    cert_days_left = fields.FloatField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "monitor_target"


class ProbeResult(Model):
    """One probe of one target: raw history, kept for `engine.raw_retention`."""

    id = fields.BigIntField(primary_key=True)
    target = fields.CharField(max_length=64)
    at = fields.DatetimeField()
    ok = fields.BooleanField()
    latency_ms = fields.FloatField(null=True)
    status_code = fields.IntField(null=True)
    error = fields.CharField(max_length=300, null=True)
    cert_days_left = fields.FloatField(null=True)

    class Meta:
        table = "probe_result"
        indexes = (("target", "at"), ("at",))


class MetricSeries(Model):
    """A named series with labels: `target` is the target that produced it (empty when pushed).

    `key` is `engine.config.conditions.series_key(name, labels)`, the spelling conditions use. Probe
    targets own two derived series, `response_time` and `ok`, whose rollups are computed from
    probe results.
    """

    id = fields.IntField(primary_key=True)
    target = fields.CharField(max_length=64, default="", db_default="")
    key = fields.CharField(max_length=500)
    name = fields.CharField(max_length=200, db_index=True)
    labels: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)
    # probe | prometheus | host | push
    source = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()

    class Meta:
        table = "metric_series"
        unique_together = (("target", "key"),)


class MetricSample(Model):
    id = fields.BigIntField(primary_key=True)
    series_id = fields.IntField()
    at = fields.DatetimeField()
    value = fields.FloatField()

    class Meta:
        table = "metric_sample"
        # One value per series and instant: a retried push stores nothing twice.
        unique_together = (("series_id", "at"),)
        indexes = (("at",),)


class MetricRollup(Model):
    """Per-minute aggregate of one series, kept at least `historical_analysis_days`."""

    id = fields.BigIntField(primary_key=True)
    series_id = fields.IntField()
    minute = fields.DatetimeField()
    count = fields.IntField()
    min = fields.FloatField()
    max = fields.FloatField()
    mean = fields.FloatField()
    p95 = fields.FloatField()

    class Meta:
        table = "metric_rollup"
        unique_together = (("series_id", "minute"),)
        indexes = (("minute",),)


class HeartbeatPing(Model):
    """One ping of a heartbeat target (a job saying it ran), kept for `engine.raw_retention`."""

    id = fields.BigIntField(primary_key=True)
    target = fields.CharField(max_length=64)
    at = fields.DatetimeField()
    source = fields.CharField(max_length=64, null=True)
    """The client address, or "cli"."""

    class Meta:
        table = "heartbeat_ping"
        indexes = (("target", "at"),)


class EngineLease(Model):
    """Who runs the engine loops for a database, taken over once `expires_at` has passed."""

    name = fields.CharField(max_length=64, primary_key=True)
    holder = fields.CharField(max_length=200)
    holder_info: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    acquired_at = fields.DatetimeField()
    renewed_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    generation = fields.BigIntField(default=0, db_default=0)
    # The PulseGuard version of the holder: in a cluster, an engine does not take a module over
    # from a newer release while an engine of that release is alive (rolling upgrades).
    version = fields.CharField(max_length=40, default="", db_default="")

    class Meta:
        table = "engine_lease"


class EngineMember(Model):
    """A running engine of a PostgreSQL cluster: gone once `expires_at` has passed."""

    holder = fields.CharField(max_length=200, primary_key=True)
    info: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    version = fields.CharField(max_length=40)
    started_at = fields.DatetimeField()
    beat_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "engine_member"


class EngineShard(Model):
    """One of the buckets targets hash into, and the engine that probes its targets."""

    bucket = fields.IntField(primary_key=True, generated=False)
    holder = fields.CharField(max_length=200, null=True)
    expires_at = fields.DatetimeField(null=True)
    claimed_at = fields.DatetimeField(null=True)
    generation = fields.BigIntField(default=0, db_default=0)

    class Meta:
        table = "engine_shard"


class EngineHeartbeat(Model):
    """One row per stretch of time an engine ran its loops (the gaps between them are no data)."""

    id = fields.BigIntField(primary_key=True)
    holder = fields.CharField(max_length=200)
    started_at = fields.DatetimeField(db_index=True)
    beat_at = fields.DatetimeField(db_index=True)
    stopped_at = fields.DatetimeField(null=True)

    class Meta:
        table = "engine_heartbeat"


class MonitorState(Model):
    """Small named values the engine keeps between runs (the rollup cursor, …)."""

    name = fields.CharField(max_length=64, primary_key=True)
    value: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "monitor_state"
