import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0003_escalation")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ApiToken",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("name", fields.CharField(db_index=True, max_length=64)),
                ("role", fields.CharField(max_length=16)),
                ("token_hash", fields.CharField(unique=True, max_length=64)),
                ("prefix", fields.CharField(max_length=16)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("created_by", fields.CharField(max_length=64)),
                ("last_used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "api_token",
                "app": "models",
                "pk_attr": "id",
                "table_description": "An API token. Only its SHA-256 is stored, the token itself is shown once at creation.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Subscriber",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("email", fields.CharField(unique=True, max_length=320)),
                ("services", fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                (
                    "requested_services",
                    fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("token", fields.CharField(unique=True, max_length=64)),
                ("confirmed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("confirm_sent_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "status_subscriber",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A status-page e-mail subscriber. Updates are sent only after the address is confirmed.",
            },
            bases=["Model"],
        ),
    ]
