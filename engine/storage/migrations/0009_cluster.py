import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0008_child_indexes")]

    initial = False

    operations = [
        ops.CreateModel(
            name="EngineMember",
            fields=[
                ("holder", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ("info", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("version", fields.CharField(max_length=40)),
                ("started_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("beat_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("expires_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "engine_member",
                "app": "models",
                "pk_attr": "holder",
                "table_description": "A running engine of a PostgreSQL cluster: gone once `expires_at` has passed.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="EngineShard",
            fields=[
                ("bucket", fields.IntField(primary_key=True, generated=False, unique=True, db_index=True)),
                ("holder", fields.CharField(null=True, max_length=200)),
                ("expires_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("claimed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("generation", fields.BigIntField(default=0, db_default=0)),
            ],
            options={
                "table": "engine_shard",
                "app": "models",
                "pk_attr": "bucket",
                "table_description": "One of the buckets targets hash into, and the engine that probes its targets.",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="EngineLease",
            name="version",
            field=fields.CharField(default="", db_default="", max_length=40),
        ),
    ]
