import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0004_rest")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Postmortem",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "incident",
                    fields.OneToOneField(
                        "models.Incident",
                        source_field="incident_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="postmortem",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("status", fields.CharField(default="draft", db_default="draft", max_length=16)),
                ("summary", fields.TextField(default="", db_default="", unique=False)),
                ("lessons_learned", fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("went_well", fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("went_badly", fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("created_by", fields.CharField(max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("published_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("published_by", fields.CharField(null=True, max_length=64)),
            ],
            options={
                "table": "postmortem",
                "app": "models",
                "pk_attr": "id",
                "table_description": "The after-incident review of one incident, draft until published.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="PostmortemEntry",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "postmortem",
                    fields.ForeignKeyField(
                        "models.Postmortem",
                        source_field="postmortem_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="entries",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("event_id", fields.BigIntField(null=True)),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("kind", fields.CharField(max_length=40)),
                ("text", fields.TextField(unique=False)),
                ("annotation", fields.TextField(default="", db_default="", unique=False)),
                ("hidden", fields.BooleanField(default=False, db_default=False)),
                ("edited", fields.BooleanField(default=False, db_default=False)),
                ("created_by", fields.CharField(max_length=64)),
            ],
            options={
                "table": "postmortem_entry",
                "app": "models",
                "unique_together": (("postmortem", "event_id"),),
                "pk_attr": "id",
                "table_description": "One line of a post-mortem timeline: copied from an incident event, or added by a person.",
            },
            bases=["Model"],
        ),
    ]
