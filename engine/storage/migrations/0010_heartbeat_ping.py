from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0009_cluster")]

    initial = False

    operations = [
        ops.CreateModel(
            name="HeartbeatPing",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("target", fields.CharField(max_length=64)),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("source", fields.CharField(null=True, max_length=64)),
            ],
            options={
                "table": "heartbeat_ping",
                "app": "models",
                "indexes": [Index(fields=["target", "at"])],
                "pk_attr": "id",
                "table_description": "One ping of a heartbeat target (a job saying it ran), kept for `engine.raw_retention`.",
            },
            bases=["Model"],
        ),
    ]
