import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    initial = False

    operations = [
        ops.CreateModel(
            name="EngineHeartbeat",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("holder", fields.CharField(max_length=200)),
                ("started_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("beat_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("stopped_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "engine_heartbeat",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One row per stretch of time an engine ran its loops (the gaps between them are no data).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="EngineLease",
            fields=[
                ("name", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("holder", fields.CharField(max_length=200)),
                ("holder_info", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("acquired_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("renewed_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("generation", fields.BigIntField(default=0, db_default=0)),
            ],
            options={
                "table": "engine_lease",
                "app": "models",
                "pk_attr": "name",
                "table_description": "Who runs the engine loops for a database, taken over once `expires_at` has passed.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MetricRollup",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("series_id", fields.IntField()),
                ("minute", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("count", fields.IntField()),
                ("min", fields.FloatField()),
                ("max", fields.FloatField()),
                ("mean", fields.FloatField()),
                ("p95", fields.FloatField()),
            ],
            options={
                "table": "metric_rollup",
                "app": "models",
                "unique_together": (("series_id", "minute"),),
                "indexes": [Index(fields=["minute"])],
                "pk_attr": "id",
                "table_description": "Per-minute aggregate of one series, kept at least `historical_analysis_days`.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MetricSample",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("series_id", fields.IntField()),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("value", fields.FloatField()),
            ],
            options={
                "table": "metric_sample",
                "app": "models",
                "indexes": [Index(fields=["series_id", "at"]), Index(fields=["at"])],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MetricSeries",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("target", fields.CharField(default="", db_default="", max_length=64)),
                ("key", fields.CharField(max_length=500)),
                ("name", fields.CharField(db_index=True, max_length=200)),
                ("labels", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("source", fields.CharField(max_length=16)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "metric_series",
                "app": "models",
                "unique_together": (("target", "key"),),
                "pk_attr": "id",
                "table_description": "A named series with labels: `target` is the target that produced it (empty when pushed).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MonitorState",
            fields=[
                ("name", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("value", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "monitor_state",
                "app": "models",
                "pk_attr": "name",
                "table_description": "Small named values the engine keeps between runs (the rollup cursor, …).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MonitorTarget",
            fields=[
                ("name", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("kind", fields.CharField(max_length=16)),
                ("address", fields.CharField(default="", db_default="", max_length=500)),
                ("service", fields.CharField(null=True, max_length=64)),
                ("interval", fields.FloatField()),
                ("timeout", fields.FloatField()),
                ("active", fields.BooleanField(default=True, db_default=True)),
                ("state", fields.CharField(default="unknown", db_default="unknown", max_length=16)),
                ("last_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("last_ok", fields.BooleanField(null=True)),
                ("last_latency_ms", fields.FloatField(null=True)),
                ("last_status_code", fields.IntField(null=True)),
                ("last_error", fields.CharField(null=True, max_length=300)),
                ("last_ok_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("last_change_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("cert_days_left", fields.FloatField(null=True)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "monitor_target",
                "app": "models",
                "pk_attr": "name",
                "table_description": "A probed target as configured, plus its latest state (written by the engine in batches).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ProbeResult",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("target", fields.CharField(max_length=64)),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("ok", fields.BooleanField()),
                ("latency_ms", fields.FloatField(null=True)),
                ("status_code", fields.IntField(null=True)),
                ("error", fields.CharField(null=True, max_length=300)),
                ("cert_days_left", fields.FloatField(null=True)),
            ],
            options={
                "table": "probe_result",
                "app": "models",
                "indexes": [Index(fields=["target", "at"]), Index(fields=["at"])],
                "pk_attr": "id",
                "table_description": "One probe of one target: raw history, kept for `engine.raw_retention`.",
            },
            bases=["Model"],
        ),
    ]
