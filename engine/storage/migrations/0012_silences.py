import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0011_audit_log")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Silence",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("matchers", fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("starts_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("ends_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("comment", fields.TextField(default="", db_default="", unique=False)),
                ("created_by", fields.CharField(max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("expired_by", fields.CharField(null=True, max_length=64)),
                ("silenced", fields.IntField(default=0, db_default=0)),
                ("last_silenced_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "silence",
                "app": "models",
                "pk_attr": "id",
                "table_description": "Alertmanager-style silence: while active, a firing whose labels all its matchers match opens nothing and pages nobody (it is counted here and recorded on the feed), and pages for open incidents it matches are held until it ends. Expiring early sets ends_at to the moment, so state is always a matter of time.",
            },
            bases=["Model"],
        ),
    ]
