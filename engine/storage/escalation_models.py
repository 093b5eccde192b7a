"""Durable timers and the notification outbox: rows, so nothing waits in memory.

A Timer is a step due at a time (an escalation level, a digest, a shift notice); the engine's
loop claims due rows and fires each once. A Notification is an outbox row written in the same
transaction as the change that caused it; the deliverer sends it and records the outcome.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields

from engine.storage.base import Model


class TimerState:
    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


class Timer(Model):
    id = fields.BigIntField(primary_key=True)
    # Unique per step ("esc:12:g1:l2:r1", "digest:slack:#ops:…"), so planning twice plans once.
    key = fields.CharField(max_length=255, unique=True)
    kind = fields.CharField(max_length=24)  # escalate | digest | shift_notice
    incident_id = fields.IntField(null=True, db_index=True)
    due_at = fields.DatetimeField()
    state = fields.CharField(max_length=12, default=TimerState.PENDING)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    fired_at = fields.DatetimeField(null=True)

    class Meta:
        table = "escalation_timer"
        indexes = (("state", "due_at"),)


class NotificationState:
    PENDING = "pending"  # waiting for (re)delivery at next_attempt_at
    HELD = "held"  # waiting for its channel's digest
    DELIVERED = "delivered"
    DEAD = "dead"  # refused for good, or too old
    DIGESTED = "digested"  # carried by a digest message
    CANCELLED = "cancelled"


class Notification(Model):
    id = fields.BigIntField(primary_key=True)
    dedup_key = fields.CharField(max_length=255, unique=True)
    # Delivery order holds within a stream (one incident, one destination).
    stream = fields.CharField(max_length=300)
    incident_id = fields.IntField(null=True, db_index=True)
    destination = fields.CharField(max_length=255)
    kind = fields.CharField(max_length=24)
    audience = fields.CharField(max_length=12, default="internal")
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    state = fields.CharField(max_length=12, default=NotificationState.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    claimed_by = fields.CharField(max_length=64, null=True)
    claimed_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(db_index=True)
    delivered_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    result: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    digest_id = fields.BigIntField(null=True)

    class Meta:
        table = "notification"
        indexes = (("state", "next_attempt_at"), ("stream", "state"))
