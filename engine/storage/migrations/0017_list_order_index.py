"""The incident list's order as an index: the severity's rank (worst first), then newest first.

Every list (REST, console, CLI) orders by `CASE "severity" … END, "created_at" DESC, "id" DESC`
(engine.incidents.queries.severity_rank). Without an index on that expression each page, the
first included, scanned and sorted the whole table: 100,000 incidents took 80–170 ms a page,
and a million would take seconds. The expression here must stay the one the queries use,
character for character apart from spacing (tests/test_list_index.py checks it)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

RANK = "CASE \"severity\" WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END"
INDEX = "incident_list_order"


async def create(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    await schema_editor.client.execute_script(
        f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "incident" (({RANK}), "created_at" DESC, "id" DESC);'
    )


async def drop(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    await schema_editor.client.execute_script(f'DROP INDEX IF EXISTS "{INDEX}";')


class Migration(migrations.Migration):
    dependencies = [("models", "0016_lean_outbox_indexes")]

    initial = False

    operations = [ops.RunPython(create, drop)]
