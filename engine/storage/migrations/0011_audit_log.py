import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

REFUSAL = "the audit log cannot be changed"


async def forbid_changes(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    """The database itself refuses UPDATE and DELETE on audit_log, whoever asks."""
    conn = schema_editor.client
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script(
            f"""
            CREATE OR REPLACE FUNCTION audit_log_refuse() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{REFUSAL}'; END; $$ LANGUAGE plpgsql;
            CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
                FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
            """
        )
    else:
        for op in ("UPDATE", "DELETE"):
            await conn.execute_script(
                f"CREATE TRIGGER audit_log_no_{op.lower()} BEFORE {op} ON audit_log BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END;"
            )


async def allow_changes(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    conn = schema_editor.client
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script("DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log; DROP FUNCTION IF EXISTS audit_log_refuse();")
    else:
        await conn.execute_script("DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;")


class Migration(migrations.Migration):
    dependencies = [("models", "0010_heartbeat_ping")]

    initial = False

    operations = [
        ops.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("actor", fields.CharField(db_index=True, max_length=64)),
                ("source", fields.CharField(max_length=16)),
                ("action", fields.CharField(max_length=64)),
                ("subject", fields.CharField(db_index=True, max_length=200)),
                ("summary", fields.TextField(default="", db_default="", unique=False)),
                ("before", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
                ("after", fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads)),
            ],
            options={
                "table": "audit_log",
                "app": "models",
                "pk_attr": "id",
                "table_description": "Who changed what, from where, and the values before and after: one row per change made",
            },
            bases=["Model"],
        ),
        ops.RunPython(forbid_changes, allow_changes),
    ]
