"""Tortoise ORM models. Only engine.incidents.services writes the incident tables."""

from __future__ import annotations

from typing import Any

from tortoise import fields

from engine.storage.base import Model


class KeyCounter(Model):
    """Monotonic counters (incident numbers): a row, so a deleted incident's key is never reused."""

    name = fields.CharField(max_length=32, primary_key=True)
    value = fields.BigIntField(default=0, db_default=0)

    class Meta:
        table = "key_counter"


class User(Model):
    id = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=200, default="", db_default="")
    email = fields.CharField(max_length=320, null=True)
    slack = fields.CharField(max_length=100, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "user"


class Service(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    description = fields.TextField(default="", db_default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "service"


class Incident(Model):
    id = fields.IntField(primary_key=True)
    number = fields.IntField(unique=True)
    title = fields.CharField(max_length=300)
    description = fields.TextField(default="", db_default="")
    severity = fields.CharField(max_length=16, db_index=True)
    status = fields.CharField(max_length=16, db_index=True)
    source = fields.CharField(max_length=16, default="manual", db_default="manual")
    services: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    tags: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    assignee = fields.CharField(max_length=64, null=True)
    dedup_key = fields.CharField(max_length=200, null=True, db_index=True)
    target = fields.CharField(max_length=200, null=True)
    trigger = fields.CharField(max_length=200, null=True)
    detected_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(db_index=True)
    created_by = fields.CharField(max_length=64)
    updated_at = fields.DatetimeField()
    acknowledged_at = fields.DatetimeField(null=True)
    acknowledged_by = fields.CharField(max_length=64, null=True)
    resolved_at = fields.DatetimeField(null=True, db_index=True)
    resolved_by = fields.CharField(max_length=64, null=True)
    root_cause = fields.TextField(null=True)
    root_cause_category = fields.CharField(max_length=64, null=True)
    solution = fields.TextField(null=True)
    # [{"step": str, "done": bool}]
    verification_steps: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    false_positive = fields.BooleanField(default=False, db_default=False)
    # affected_users, downtime_minutes, financial_impact, reputational_impact
    impact: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # customer, team (1-5)
    satisfaction: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    related: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    external_refs: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # The escalation policy in force when the incident opened (copied so config edits never
    # strand a running escalation) and free-form analysis written by detectors.
    escalation: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    analysis: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    version = fields.IntField(default=0, db_default=0)
    # Grouping: how many firings of its fingerprint (dedup_key) joined this incident, and when
    # the last one came; a firing after `[grouping] window` past last_seen_at opens a new one.
    firing_count = fields.IntField(default=1, db_default=1)
    last_seen_at = fields.DatetimeField(null=True)
    # The incident this one was merged into (its number); set once, never cleared.
    merged_into = fields.IntField(null=True, db_index=True)

    class Meta:
        table = "incident"

    @property
    def key(self) -> str:
        return f"INC-{self.number}"


class Event(Model):
    """The timeline of every incident, and the change feed (followed by ascending id)."""

    id = fields.BigIntField(primary_key=True)
    incident: fields.ForeignKeyNullableRelation[Incident] = fields.ForeignKeyField("models.Incident", related_name="events", null=True)
    kind = fields.CharField(max_length=40)
    actor = fields.CharField(max_length=64)
    at = fields.DatetimeField()
    summary = fields.TextField(default="", db_default="")
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "event"
        # An incident's timeline and its newest entry (the detail's cache validator) by index.
        indexes = (("incident_id", "id"),)


class Comment(Model):
    id = fields.IntField(primary_key=True)
    incident: fields.ForeignKeyRelation[Incident] = fields.ForeignKeyField("models.Incident", related_name="comments")
    author = fields.CharField(max_length=64)
    content = fields.TextField()
    internal_only = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()
    # When the writer says it happened (back-filled notes); created_at stays the server's time.
    stated_at = fields.DatetimeField(null=True)
    # A display author named by an integration posting for someone; `author` stays the
    # authenticated actor, so the record never claims more than the token proved.
    on_behalf_of = fields.CharField(max_length=200, null=True)

    class Meta:
        table = "comment"
        indexes = (("incident_id", "id"),)


class StatusUpdate(Model):
    id = fields.IntField(primary_key=True)
    incident: fields.ForeignKeyRelation[Incident] = fields.ForeignKeyField("models.Incident", related_name="updates")
    status = fields.CharField(max_length=16)
    message = fields.TextField()
    public = fields.BooleanField(default=True)
    author = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    stated_at = fields.DatetimeField(null=True)  # when the writer says it happened (back-filling)

    class Meta:
        table = "status_update"
        indexes = (("incident_id", "id"),)


class Evidence(Model):
    id = fields.IntField(primary_key=True)
    incident: fields.ForeignKeyRelation[Incident] = fields.ForeignKeyField("models.Incident", related_name="evidence")
    kind = fields.CharField(max_length=16)
    url = fields.TextField(null=True)
    path = fields.TextField(null=True)
    content = fields.TextField(null=True)
    range_from = fields.DatetimeField(null=True)
    range_to = fields.DatetimeField(null=True)
    description = fields.TextField(default="", db_default="")
    added_by = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        table = "evidence"
        indexes = (("incident_id", "id"),)


class FollowUp(Model):
    id = fields.IntField(primary_key=True)
    incident: fields.ForeignKeyRelation[Incident] = fields.ForeignKeyField("models.Incident", related_name="followups")
    group = fields.CharField(max_length=40)
    description = fields.TextField()
    owner = fields.CharField(max_length=64, null=True)
    due_date = fields.DateField(null=True)
    done = fields.BooleanField(default=False)
    done_at = fields.DatetimeField(null=True)
    ticket_key = fields.CharField(max_length=64, null=True)
    created_by = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        table = "followup"
        indexes = (("incident_id", "id"),)


class MaintenanceWindow(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=300)
    kind = fields.CharField(max_length=16, default="scheduled")  # scheduled | emergency
    services: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    targets: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    starts_at = fields.DatetimeField(db_index=True)
    ends_at = fields.DatetimeField(db_index=True)
    ended_at = fields.DatetimeField(null=True)
    description = fields.TextField(default="", db_default="")
    created_by = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        table = "maintenance_window"


class AuditEntry(Model):
    """Who changed what, from where, and the values before and after: one row per change made
    through an interface (console, CLI, API, Slack, an e-mail link). The database refuses to
    update, delete, replace or truncate these rows (triggers created by migrations 0011 and
    0016)."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    actor = fields.CharField(max_length=64, db_index=True)
    source = fields.CharField(max_length=16)
    """console, cli, api, slack, pagerduty, webhook, e-mail link or webhook callback."""
    action = fields.CharField(max_length=64)
    subject = fields.CharField(max_length=200, db_index=True)
    summary = fields.TextField(default="", db_default="")
    before: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    after: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_log"


class Silence(Model):
    """Alertmanager-style silence: while active (starts_at <= now < ends_at), a firing whose
    labels all its matchers match opens nothing and pages nobody (it is counted here and
    recorded on the feed), and pages for open incidents it matches are held until it ends.
    Expiring early sets ends_at to the moment, so state is always a matter of time."""

    id = fields.IntField(primary_key=True)
    matchers: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    starts_at = fields.DatetimeField(db_index=True)
    ends_at = fields.DatetimeField(db_index=True)
    comment = fields.TextField(default="", db_default="")
    created_by = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    expired_by = fields.CharField(max_length=64, null=True)
    silenced = fields.IntField(default=0, db_default=0)
    """How many firings it has silenced."""
    last_silenced_at = fields.DatetimeField(null=True)

    class Meta:
        table = "silence"
        # As migration 0012 recorded it: taken from the docstring, it would read differently
        # and `makemigrations` would write a migration that changes nothing but this comment.
        table_description = (
            "Alertmanager-style silence: while active, a firing whose labels all its matchers match opens nothing and pages "
            "nobody (it is counted here and recorded on the feed), and pages for open incidents it matches are held until it "
            "ends. Expiring early sets ends_at to the moment, so state is always a matter of time."
        )


class PageLinkUse(Model):
    """A page action that was carried out (an e-mail link, a webhook callback, a Slack button
    press), by its nonce: stored in the change's own transaction, so the same link or request
    used again is refused and changes nothing."""

    nonce = fields.CharField(max_length=64, primary_key=True)
    action = fields.CharField(max_length=16)
    incident_number = fields.IntField()
    actor = fields.CharField(max_length=64)
    via = fields.CharField(max_length=16)
    used_at = fields.DatetimeField()

    class Meta:
        table = "page_link_use"
