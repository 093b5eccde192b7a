"""Drop the outbox's single-column indexes on stream, state and next_attempt_at, and the
escalation timers' on state and due_at: the composite (state, next_attempt_at), (stream, state)
and (state, due_at) indexes serve every query that used them, and every index is written for
each notification a change queues and each timer it plans or cancels (without the outbox's
three, a change's outbox rows cost SQLite about a third less).

Tortoise's AlterField rebuilds a SQLite table without its other indexes, so the indexes are
dropped by name here; the model state still moves as AlterField says."""

from typing import Any

from tortoise import fields, migrations
from tortoise.fields.base import Field
from tortoise.migrations import operations as ops

# (model, column): (table, the index as 0003 named it, the field as the models now declare it).
INDEXES: dict[tuple[str, str], tuple[str, str, Field[Any]]] = {
    ("Notification", "next_attempt_at"): (
        "notification",
        "idx_notificatio_next_at_84a463",
        fields.DatetimeField(auto_now=False, auto_now_add=False),
    ),
    ("Notification", "state"): ("notification", "idx_notificatio_state_8da97a", fields.CharField(default="pending", max_length=12)),
    ("Notification", "stream"): ("notification", "idx_notificatio_stream_799c6d", fields.CharField(max_length=300)),
    ("Timer", "due_at"): ("escalation_timer", "idx_escalation__due_at_b726e7", fields.DatetimeField(auto_now=False, auto_now_add=False)),
    ("Timer", "state"): ("escalation_timer", "idx_escalation__state_f45864", fields.CharField(default="pending", max_length=12)),
}


class DropColumnIndex(ops.AlterField):
    """AlterField that only drops (backward: recreates) the column's own index."""

    async def database_forward(self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None) -> None:
        if state_editor is not None:
            _, index, _ = INDEXES[self.model_name, self.name]
            await state_editor.client.execute_script(f'DROP INDEX IF EXISTS "{index}";')

    async def database_backward(self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None) -> None:
        if state_editor is not None:
            table, index, _ = INDEXES[self.model_name, self.name]
            await state_editor.client.execute_script(f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{self.name}");')


class Migration(migrations.Migration):
    dependencies = [("models", "0015_audit_hardening")]

    initial = False

    operations = [DropColumnIndex(model_name=model, name=name, field=field) for (model, name), (_, _, field) in INDEXES.items()]
