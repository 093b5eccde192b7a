"""Drop the outbox's single-column indexes on stream, state and next_attempt_at: the composite
(state, next_attempt_at) and (stream, state) indexes serve every query that used them, and every
index is written for each notification a change queues (without these three, a change's outbox
rows cost SQLite about a third less).

Tortoise's AlterField rebuilds a SQLite table without its other indexes, so the indexes are
dropped by name here; the model state still moves as AlterField says."""

from typing import Any

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Named as 0003 created them (Tortoise names an index after its table, columns and a hash).
INDEXES = {
    "stream": 'CREATE INDEX IF NOT EXISTS "idx_notificatio_stream_799c6d" ON "notification" ("stream")',
    "state": 'CREATE INDEX IF NOT EXISTS "idx_notificatio_state_8da97a" ON "notification" ("state")',
    "next_attempt_at": 'CREATE INDEX IF NOT EXISTS "idx_notificatio_next_at_84a463" ON "notification" ("next_attempt_at")',
}


class DropColumnIndex(ops.AlterField):
    """AlterField that only drops (backward: recreates) the column's own index."""

    async def database_forward(self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None) -> None:
        if state_editor is not None:
            name = INDEXES[self.name].split('"')[1]
            await state_editor.client.execute_script(f'DROP INDEX IF EXISTS "{name}";')

    async def database_backward(self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None) -> None:
        if state_editor is not None:
            await state_editor.client.execute_script(INDEXES[self.name] + ";")


class Migration(migrations.Migration):
    dependencies = [("models", "0015_audit_hardening")]

    initial = False

    operations = [
        DropColumnIndex(
            model_name="Notification",
            name="next_attempt_at",
            field=fields.DatetimeField(auto_now=False, auto_now_add=False),
        ),
        DropColumnIndex(
            model_name="Notification",
            name="state",
            field=fields.CharField(default="pending", max_length=12),
        ),
        DropColumnIndex(
            model_name="Notification",
            name="stream",
            field=fields.CharField(max_length=300),
        ),
    ]
