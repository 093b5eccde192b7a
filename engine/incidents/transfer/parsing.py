"""Reading an import document: the whole of it is checked before anything is written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from tortoise import fields as tf
from tortoise.models import Model

from engine.core.analysis import validate_analysis
from engine.core.domain import EvidenceKind, FollowUpGroup, InvalidInput, Severity, Source, Status
from engine.incidents.services.validation import CLOCK_SKEW
from engine.incidents.transfer.document import ATTACHED, ENTRIES_KEY, FORMAT, FORMAT_VERSION, POSTMORTEM_KEY, stored_fields
from engine.storage.models import Evidence, FollowUp, Incident
from engine.storage.postmortem_models import Postmortem, PostmortemEntry

# Choices the service layer enforces, checked again on import.
CHOICES: dict[tuple[type[Model], str], set[str]] = {
    (Incident, "severity"): {m.value for m in Severity},
    (Incident, "status"): {m.value for m in Status},
    (Incident, "source"): {m.value for m in Source},
    (Evidence, "kind"): {m.value for m in EvidenceKind},
    (FollowUp, "group"): {m.value for m in FollowUpGroup},
}

INT_BOUNDS = {tf.BigIntField: 2**63 - 1, tf.IntField: 2**31 - 1}


class BadDocument(InvalidInput):
    """A document that cannot be imported; `field` is the JSON path of the first problem."""


def _where(path: str, message: str) -> BadDocument:
    return BadDocument(path or "document", message)


def _load_value(f: tf.Field[Any], value: Any, path: str, model: type[Model], name: str) -> Any:
    if value is None:
        if f.null:
            return None
        raise _where(path, "must not be null")
    if isinstance(f, tf.DatetimeField):
        if not isinstance(value, str):
            raise _where(path, f"{value!r} is not a time (expected ISO 8601 text)")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _where(path, f"{value!r} is not a time (expected ISO 8601 like 2026-11-27T10:25:00+00:00)") from None
        if parsed.tzinfo is None:
            raise _where(path, f"{value!r} carries no time zone")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. year 1 at +14:00
            raise _where(path, f"{value!r} is out of range") from None
    if isinstance(f, tf.DateField):
        try:
            if isinstance(value, str):
                return date.fromisoformat(value)
        except ValueError:
            pass
        raise _where(path, f"{value!r} is not a date (expected YYYY-MM-DD)")
    if isinstance(f, tf.BooleanField):
        if not isinstance(value, bool):
            raise _where(path, f"{value!r} is not true or false")
        return value
    if isinstance(f, tf.IntField):  # BigIntField included
        limit = INT_BOUNDS[tf.BigIntField if isinstance(f, tf.BigIntField) else tf.IntField]
        if isinstance(value, bool) or not isinstance(value, int):
            raise _where(path, f"{value!r} is not a whole number")
        if not -limit <= value <= limit:
            raise _where(path, f"{value} is out of range")
        return value
    if isinstance(f, (tf.CharField, tf.TextField)):
        if not isinstance(value, str):
            raise _where(path, f"{value!r} is not text")
        if "\x00" in value:
            raise _where(path, "contains a NUL character")
        max_length: int | None = getattr(f, "max_length", None)
        if isinstance(f, tf.CharField) and max_length and len(value) > max_length:
            raise _where(path, f"is {len(value)} characters long (at most {max_length})")
        allowed = CHOICES.get((model, name))
        if allowed is not None and value not in allowed:
            raise _where(path, f"unknown value {value!r} (expected one of: {', '.join(sorted(allowed))})")
        return value
    if isinstance(f, tf.JSONField):
        default = f.default() if callable(f.default) else f.default
        if isinstance(default, (list, dict)) and not isinstance(value, type(default)):
            raise _where(path, f"expected a {'list' if isinstance(default, list) else 'JSON object'}")
        if "\\u0000" in json.dumps(value):
            raise _where(path, "contains a NUL character")
        return value
    return value


def _load_row(doc: Any, model: type[Model], columns: dict[str, tf.Field[Any]], path: str, nested: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise _where(path, "expected a JSON object")
    unknown = sorted(set(doc) - set(columns) - set(nested))
    if unknown:
        known = ", ".join([*columns, *nested])
        raise _where(f"{path}.{unknown[0]}", f"unknown field (expected one of: {known})")
    out: dict[str, Any] = {}
    for name, f in columns.items():
        if name not in doc:
            if f.pk or (f.default is None and not f.null and not f.has_db_default()):
                raise _where(f"{path}.{name}", "is missing")
            continue
        out[name] = _load_value(f, doc[name], f"{path}.{name}", model, name)
    return out


def _check_times(row: dict[str, Any], path: str) -> None:
    """An incident is detected before it is opened, and acknowledged and resolved after: the
    reports' MTTD, MTTA and MTTR are these differences, and a reversed pair would make them
    negative. Clocks of engines sharing a database may differ by CLOCK_SKEW, so that passes."""
    # A resolved incident says when (the reports' MTTR, `incident show`); an open one was not yet.
    status = getattr(row.get("status"), "value", row.get("status"))
    if status == "resolved" and row.get("resolved_at") is None:
        raise _where(f"{path}.resolved_at", "is missing: a resolved incident says when it was resolved")
    if status not in (None, "resolved") and row.get("resolved_at") is not None:
        raise _where(f"{path}.resolved_at", f"is set, but the incident is {status} (resolved_at goes with status resolved)")
    created = row.get("created_at")
    if created is None:
        return
    detected = row.get("detected_at")
    if detected is not None and detected > created + CLOCK_SKEW:
        raise _where(f"{path}.detected_at", f"{detected.isoformat()} is after created_at {created.isoformat()} (detection comes first)")
    for name in ("acknowledged_at", "resolved_at"):
        when = row.get(name)
        if when is not None and when < created - CLOCK_SKEW:
            raise _where(f"{path}.{name}", f"{when.isoformat()} is before created_at {created.isoformat()}")


def _list(doc: dict[str, Any], name: str, path: str) -> list[Any]:
    value = doc.get(name, [])
    if not isinstance(value, list):
        raise _where(f"{path}.{name}", "expected a list")
    return value


@dataclass
class Incoming:
    """One incident of a document, checked: rows ready to write (ids still the source's)."""

    path: str
    incident: dict[str, Any]
    attached: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    postmortem: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)


def parse_document(doc: Any) -> list[Incoming]:
    """Check a whole document before anything is written: BadDocument names the first problem by JSON path."""
    if not isinstance(doc, dict):
        raise _where("", "expected a JSON object (a PulseGuard export)")
    if doc.get("format") != FORMAT:
        raise _where("format", f"{doc.get('format')!r} is not a PulseGuard incident export (expected {FORMAT!r})")
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise _where("format_version", f"{version!r} is not a format this release reads (1 to {FORMAT_VERSION})")
    incidents = doc.get("incidents")
    if not isinstance(incidents, list):
        raise _where("incidents", "expected a list")
    try:
        return _parse_incidents(incidents)
    except BadDocument as exc:
        from engine.storage.db import migration_names

        schema = doc.get("schema")
        if "unknown field" in exc.message and isinstance(schema, str) and schema not in migration_names():
            raise _where(
                exc.field,
                f"{exc.message}; the export comes from a newer PulseGuard (schema {schema}): import it with that release or a later one",
            ) from None
        raise


def _parse_incidents(incidents: list[Any]) -> list[Incoming]:
    inc_columns = stored_fields(Incident)
    attached_columns = {name: stored_fields(model, "incident") for name, model in ATTACHED.items()}
    pm_columns = stored_fields(Postmortem, "incident")
    entry_columns = stored_fields(PostmortemEntry, "postmortem")
    out: list[Incoming] = []
    seen_numbers: dict[int, str] = {}
    seen_ids: dict[str, dict[int, str]] = {}

    def unique(table: str, row: dict[str, Any], path: str) -> None:
        ids = seen_ids.setdefault(table, {})
        if row["id"] in ids:
            raise _where(f"{path}.id", f"{row['id']} is also the id at {ids[row['id']]}")
        ids[row["id"]] = path

    for i, raw in enumerate(incidents):
        path = f"incidents[{i}]"
        row = _load_row(raw, Incident, inc_columns, path, nested=["key", *ATTACHED, POSTMORTEM_KEY])
        if "key" in raw and raw["key"] != f"INC-{row['number']}":
            raise _where(f"{path}.key", f"{raw['key']!r} does not match number {row['number']}")
        try:
            validate_analysis(row.get("analysis"))  # checked only: the stored shape is kept as it was
        except InvalidInput as exc:
            raise _where(f"{path}.analysis.{exc.field}", exc.message) from None
        if row["number"] < 1:
            raise _where(f"{path}.number", f"{row['number']} is not an incident number (1 or more)")
        _check_times(row, path)
        if row["number"] in seen_numbers:
            raise _where(f"{path}.number", f"INC-{row['number']} is also at {seen_numbers[row['number']]}")
        seen_numbers[row["number"]] = path
        unique("incident", row, path)
        item = Incoming(path, row)
        for name, model in ATTACHED.items():
            rows = []
            for j, child in enumerate(_list(raw, name, path)):
                loaded = _load_row(child, model, attached_columns[name], f"{path}.{name}[{j}]")
                unique(name, loaded, f"{path}.{name}[{j}]")
                rows.append(loaded)
            item.attached[name] = rows
        pm = raw.get(POSTMORTEM_KEY)
        if pm is not None:
            ppath = f"{path}.{POSTMORTEM_KEY}"
            item.postmortem = _load_row(pm, Postmortem, pm_columns, ppath, nested=[ENTRIES_KEY])
            unique("postmortem", item.postmortem, ppath)
            event_ids = {e["id"] for e in item.attached["events"]}
            for j, child in enumerate(_list(pm, ENTRIES_KEY, ppath)):
                epath = f"{ppath}.{ENTRIES_KEY}[{j}]"
                loaded = _load_row(child, PostmortemEntry, entry_columns, epath)
                if loaded.get("event_id") is not None and loaded["event_id"] not in event_ids:
                    raise _where(f"{epath}.event_id", f"{loaded['event_id']} is not an event of this incident")
                unique("entries", loaded, epath)
                item.entries.append(loaded)
        out.append(item)
    return out
