from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0012_silences")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Incident",
            name="firing_count",
            field=fields.IntField(default=1, db_default=1),
        ),
        ops.AddField(
            model_name="Incident",
            name="last_seen_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Incident",
            name="merged_into",
            field=fields.IntField(null=True, db_index=True),
        ),
    ]
