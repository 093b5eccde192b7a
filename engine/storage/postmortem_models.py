"""Post-mortem tables: one post-mortem per incident and its editable timeline entries.

Written only by engine.learning.postmortem, which follows the service layer's rule: one transaction per
change, with an event on the incident's timeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields

from engine.storage.base import Model

if TYPE_CHECKING:
    from engine.storage.models import Incident


class Postmortem(Model):
    """The after-incident review of one incident, draft until published."""

    id = fields.IntField(primary_key=True)
    incident: fields.OneToOneRelation[Incident] = fields.OneToOneField(
        "models.Incident", related_name="postmortem", on_delete=fields.CASCADE
    )
    status = fields.CharField(max_length=16, default="draft", db_default="draft")
    summary = fields.TextField(default="", db_default="")
    # Lists of short paragraphs, rendered as bullets.
    lessons_learned: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    went_well: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    went_badly: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    created_by = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    published_at = fields.DatetimeField(null=True)
    published_by = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "postmortem"


class PostmortemEntry(Model):
    """One line of a post-mortem timeline: copied from an incident event, or added by a person."""

    id = fields.IntField(primary_key=True)
    postmortem: fields.ForeignKeyRelation[Postmortem] = fields.ForeignKeyField(
        "models.Postmortem", related_name="entries", on_delete=fields.CASCADE
    )
    # The timeline event this entry was assembled from (null for entries a person added).
    event_id = fields.BigIntField(null=True)
    at = fields.DatetimeField()
    kind = fields.CharField(max_length=40)
    text = fields.TextField()
    annotation = fields.TextField(default="", db_default="")
    hidden = fields.BooleanField(default=False, db_default=False)
    edited = fields.BooleanField(default=False, db_default=False)
    created_by = fields.CharField(max_length=64)

    class Meta:
        table = "postmortem_entry"
        unique_together = (("postmortem", "event_id"),)
