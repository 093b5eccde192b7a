from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0007_sample_unique")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Comment",
            index=Index(fields=["incident_id", "id"]),
        ),
        ops.AddIndex(
            model_name="Event",
            index=Index(fields=["incident_id", "id"]),
        ),
        ops.AddIndex(
            model_name="Evidence",
            index=Index(fields=["incident_id", "id"]),
        ),
        ops.AddIndex(
            model_name="FollowUp",
            index=Index(fields=["incident_id", "id"]),
        ),
        ops.AddIndex(
            model_name="StatusUpdate",
            index=Index(fields=["incident_id", "id"]),
        ),
    ]
