import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0002_monitor")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Notification",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("dedup_key", fields.CharField(unique=True, max_length=255)),
                ("stream", fields.CharField(db_index=True, max_length=300)),
                ("incident_id", fields.IntField(null=True, db_index=True)),
                ("destination", fields.CharField(max_length=255)),
                ("kind", fields.CharField(max_length=24)),
                ("audience", fields.CharField(default="internal", max_length=12)),
                ("payload", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("state", fields.CharField(default="pending", db_index=True, max_length=12)),
                ("attempts", fields.IntField(default=0)),
                ("next_attempt_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("claimed_by", fields.CharField(null=True, max_length=64)),
                ("claimed_until", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("delivered_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("last_error", fields.TextField(null=True, unique=False)),
                ("result", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("digest_id", fields.BigIntField(null=True)),
            ],
            options={
                "table": "notification",
                "app": "models",
                "indexes": [Index(fields=["state", "next_attempt_at"]), Index(fields=["stream", "state"])],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OncallOverride",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("schedule", fields.CharField(db_index=True, max_length=64)),
                ("user", fields.CharField(max_length=64)),
                ("covers", fields.CharField(null=True, max_length=64)),
                ("starts_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("ends_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("reason", fields.TextField(default="", db_default="", unique=False)),
                ("created_by", fields.CharField(max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("cancelled_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("cancelled_by", fields.CharField(null=True, max_length=64)),
            ],
            options={"table": "oncall_override", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Timer",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("key", fields.CharField(unique=True, max_length=255)),
                ("kind", fields.CharField(max_length=24)),
                ("incident_id", fields.IntField(null=True, db_index=True)),
                ("due_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("state", fields.CharField(default="pending", db_index=True, max_length=12)),
                ("data", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("attempts", fields.IntField(default=0)),
                ("last_error", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("fired_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={"table": "escalation_timer", "app": "models", "indexes": [Index(fields=["state", "due_at"])], "pk_attr": "id"},
            bases=["Model"],
        ),
    ]
