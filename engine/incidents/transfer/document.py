"""The incident export document: its format, which tables it carries, and the walk over their columns.

The document is built by walking the models, not by listing columns: every stored field of an
incident and of each attached table is written, so a column added later travels without a
change here. A table that gains a relation to incidents must be named in ATTACHED (exported) or
NOT_EXPORTED (with the reason); tests/test_transfer.py fails until it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise import fields as tf
from tortoise.models import Model

from engine.storage.models import Comment, Event, Evidence, FollowUp, Incident, StatusUpdate
from engine.storage.postmortem_models import Postmortem, PostmortemEntry

FORMAT = "pulseguard-incidents"
FORMAT_VERSION = 1

# Document list name -> model; each row belongs to the incident through its `incident` relation.
# Events come first: export reads them before the rows they name (see export_incidents).
ATTACHED: dict[str, type[Model]] = {
    "events": Event,
    "comments": Comment,
    "status_updates": StatusUpdate,
    "evidence": Evidence,
    "followups": FollowUp,
}
# One post-mortem per incident (or null), with its timeline entries nested in it.
POSTMORTEM_KEY = "postmortem"
ENTRIES_KEY = "entries"

# Tables that name an incident but are not part of its record.
NOT_EXPORTED: dict[str, str] = {
    "Timer": "escalation timers are the engine's schedule: an imported incident must not page again",
    "Notification": "the outbox belongs to the installation that sent it: importing it would resend messages",
}


def exported_models() -> list[type[Model]]:
    return [Incident, *ATTACHED.values(), Postmortem, PostmortemEntry]


def uncovered_models(models: Sequence[type[Model]]) -> list[str]:
    """Models that belong to an incident (a relation to it or to a row of its record, or an
    `incident_id` column) but are neither exported nor named in NOT_EXPORTED."""
    covered = {f"models.{m.__name__}" for m in exported_models()}
    out = []
    for model in models:
        if model in exported_models() or model.__name__ in NOT_EXPORTED:
            continue
        meta = model._meta
        related = {getattr(meta.fields_map[name], "model_name", None) for name in (*meta.fk_fields, *meta.o2o_fields)}
        if related & covered or "incident_id" in meta.fields_map:
            out.append(model.__name__)
    return out


def stored_fields(model: type[Model], parent: str | None = None) -> dict[str, tf.Field[Any]]:
    """Every column of `model` by field name, without the one that names its parent row
    (the document's nesting says it)."""
    meta = model._meta
    out: dict[str, tf.Field[Any]] = {}
    for name in meta.fields_db_projection:
        if parent is not None and name == f"{parent}_id":
            continue
        out[name] = meta.fields_map[name]
    return out


def chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)] or []
