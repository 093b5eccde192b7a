"""Writes sent with an `Idempotency-Key` header, kept a day so a retry gets the first answer."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0017_list_order_index")]

    initial = False

    operations = [
        ops.CreateModel(
            name="IdempotentRequest",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("token_id", fields.IntField()),
                ("key", fields.CharField(max_length=255)),
                ("fingerprint", fields.CharField(max_length=64)),
                ("method", fields.CharField(max_length=8)),
                ("path", fields.CharField(max_length=255)),
                ("created_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("status", fields.IntField(null=True)),
                ("content_type", fields.CharField(null=True, max_length=100)),
                ("body", fields.TextField(null=True, unique=False)),
            ],
            options={
                "table": "idempotent_request",
                "app": "models",
                "unique_together": (("token_id", "key"),),
                "pk_attr": "id",
                "table_description": "A write sent with an Idempotency-Key header, and its answer once served.",
            },
            bases=["Model"],
        ),
    ]
