from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0013_grouping_merge")]

    initial = False

    operations = [
        ops.CreateModel(
            name="PageLinkUse",
            fields=[
                ("nonce", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("action", fields.CharField(max_length=16)),
                ("incident_number", fields.IntField()),
                ("actor", fields.CharField(max_length=64)),
                ("via", fields.CharField(max_length=16)),
                ("used_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "page_link_use",
                "app": "models",
                "pk_attr": "nonce",
                "table_description": "A page action that was carried out (an e-mail link, a webhook callback, a Slack button",
            },
            bases=["Model"],
        ),
    ]
