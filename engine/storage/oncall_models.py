"""On-call overrides made at run time ("carol covers alice from … to …")."""

from __future__ import annotations

from tortoise import fields

from engine.storage.base import Model


class OncallOverride(Model):
    id = fields.IntField(primary_key=True)
    schedule = fields.CharField(max_length=64, db_index=True)
    user = fields.CharField(max_length=64)
    covers = fields.CharField(max_length=64, null=True)
    starts_at = fields.DatetimeField(db_index=True)
    ends_at = fields.DatetimeField(db_index=True)
    reason = fields.TextField(default="", db_default="")
    created_by = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    cancelled_at = fields.DatetimeField(null=True)
    cancelled_by = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "oncall_override"
