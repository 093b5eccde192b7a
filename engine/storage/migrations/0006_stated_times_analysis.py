from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps


async def repair_analysis(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    """Rewrite every incident's `analysis` into the one shape engine.core.analysis defines (earlier
    releases stored an anomaly incident's correlation as a bare list, which readers choke on)."""
    from engine.core.analysis import repair_analysis as repair

    conn = schema_editor.client
    pg = conn.capabilities.dialect == "postgres"
    rows = await conn.execute_query_dict("SELECT id, analysis FROM incident")
    update = "UPDATE incident SET analysis = $1::jsonb WHERE id = $2" if pg else "UPDATE incident SET analysis = ? WHERE id = ?"
    for row in rows:
        raw = row["analysis"]
        try:
            stored = loads(raw) if isinstance(raw, (str, bytes)) else raw
        except ValueError:
            stored = {}
        fixed = repair(stored)
        if fixed != stored:
            await conn.execute_query(update, [dumps(fixed, separators=(",", ":")), row["id"]])


class Migration(migrations.Migration):
    dependencies = [("models", "0005_postmortem")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Comment",
            name="stated_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Comment",
            name="on_behalf_of",
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name="StatusUpdate",
            name="stated_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunPython(repair_analysis, ops.RunPython.noop),
    ]
