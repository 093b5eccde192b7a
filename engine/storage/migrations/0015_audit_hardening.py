from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

REFUSAL = "the audit log cannot be changed"


async def close_gaps(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    """The row triggers of 0011 miss two ways round them: SQLite's INSERT OR REPLACE deletes the
    old row without firing delete triggers, and PostgreSQL's TRUNCATE fires no row triggers."""
    conn = schema_editor.client
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();"
        )
    else:
        await conn.execute_script(
            "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log"
            " WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)"
            f" BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END;"
        )


async def reopen_gaps(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    conn = schema_editor.client
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;")
    else:
        await conn.execute_script("DROP TRIGGER IF EXISTS audit_log_no_replace;")


class Migration(migrations.Migration):
    dependencies = [("models", "0014_page_actions")]

    initial = False

    operations = [ops.RunPython(close_gaps, reopen_gaps)]
