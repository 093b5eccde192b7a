from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps


async def drop_duplicate_samples(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    """Keep the first of samples stored twice for one series and instant (retried pushes did
    that), so the unique constraint can be added."""
    await schema_editor.client.execute_script(
        "DELETE FROM metric_sample WHERE id NOT IN (SELECT MIN(id) FROM metric_sample GROUP BY series_id, at)"
    )


class Migration(migrations.Migration):
    dependencies = [("models", "0006_stated_times_analysis")]

    initial = False

    operations = [
        ops.RunPython(drop_duplicate_samples, ops.RunPython.noop),
        ops.RemoveIndex(
            model_name="MetricSample",
            name=None,
            fields=["series_id", "at"],
        ),
        ops.AddConstraint(
            model_name="MetricSample",
            constraint=UniqueConstraint(fields=("series_id", "at"), name=None),
        ),
    ]
