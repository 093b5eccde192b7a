"""Export and import of incidents with everything attached to them, as one JSON document.

The document is built by walking the models, not by listing columns: every stored field of an
incident and of each attached table is written, so a column added later travels without a
change here. A table that gains a relation to incidents must be named in ATTACHED (exported) or
NOT_EXPORTED (with the reason); tests/test_transfer.py fails until it is.

Import is the one bulk write path besides engine.incidents.services: it writes incidents and their
timeline rows as they were (no change hooks run, so nothing is paged or announced again), all in
one transaction, after the whole document has been checked. Row ids are kept when the target's
tables have room above their highest id (an empty database: the copy is exact); otherwise each
table's ids are shifted past the highest one, and the references between rows move with them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, cast

from tortoise import fields as tf
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.transactions import in_transaction

from engine.core.analysis import validate_analysis
from engine.core.domain import EvidenceKind, FollowUpGroup, InvalidInput, NotFound, Severity, Source, Status, parse_incident_key
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


# Ids inside an event's `data` that point at rows of the same incident, and the table they name.
EVENT_REFS: dict[str, type[Model]] = {
    "comment_id": Comment,
    "update_id": StatusUpdate,
    "evidence_id": Evidence,
    "followup_id": FollowUp,
    "postmortem_id": Postmortem,
    "entry_id": PostmortemEntry,
}

# Choices the service layer enforces, checked again on import.
CHOICES: dict[tuple[type[Model], str], set[str]] = {
    (Incident, "severity"): {m.value for m in Severity},
    (Incident, "status"): {m.value for m in Status},
    (Incident, "source"): {m.value for m in Source},
    (Evidence, "kind"): {m.value for m in EvidenceKind},
    (FollowUp, "group"): {m.value for m in FollowUpGroup},
}

INT_BOUNDS = {tf.BigIntField: 2**63 - 1, tf.IntField: 2**31 - 1}


# --- the model walk -----------------------------------------------------------------------


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


def _dump_value(f: tf.Field[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(f, tf.DatetimeField):
        return value.astimezone(UTC).isoformat()
    if isinstance(f, tf.DateField):
        return value.isoformat()
    return value


def _dump_row(row: Model, columns: dict[str, tf.Field[Any]]) -> dict[str, Any]:
    return {name: _dump_value(f, getattr(row, name)) for name, f in columns.items()}


# --- export -------------------------------------------------------------------------------


async def export_incidents(*, since: datetime | None = None, keys: Sequence[str] = ()) -> dict[str, Any]:
    """The document for every incident (opened at or after `since`, or only `keys`).

    On PostgreSQL one read-only snapshot. SQLite has no snapshot without taking the write lock
    the engine needs, so the tables are read referrers first (post-mortem entries, then events,
    then the rows events name): whatever a row read earlier points at was committed before it
    and is in the document too.
    """
    from tortoise import Tortoise

    if Tortoise.get_connection("default").capabilities.dialect == "postgres":
        async with in_transaction() as conn:
            await conn.execute_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return await _export(conn, since, keys)
    return await _export(None, since, keys)


async def _export(conn: BaseDBAsyncClient | None, since: datetime | None, keys: Sequence[str]) -> dict[str, Any]:
    from engine.storage.db import migration_names

    query = Incident.all().using_db(conn)
    if since is not None:
        query = query.filter(created_at__gte=since)
    if keys:
        numbers = [parse_incident_key(k) for k in keys]
        # Tortoise types a flat values_list after using_db() as tuples; it yields the numbers.
        found = set(cast("list[int]", await Incident.filter(number__in=numbers).using_db(conn).values_list("number", flat=True)))
        missing = [f"INC-{n}" for n in dict.fromkeys(numbers) if n not in found]
        if missing:
            raise NotFound(f"no incident {', '.join(missing)}")
        query = query.filter(number__in=numbers)
    incidents = await query.order_by("number")
    ids = [i.id for i in incidents]
    pm_columns = stored_fields(Postmortem, "incident")
    entry_columns = stored_fields(PostmortemEntry, "postmortem")
    postmortems: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        pms = await Postmortem.filter(incident_id__in=chunk).using_db(conn)
        entries: dict[int, list[dict[str, Any]]] = {}
        for e in await PostmortemEntry.filter(postmortem_id__in=[p.id for p in pms]).using_db(conn).order_by("id"):
            entries.setdefault(e.postmortem_id, []).append(_dump_row(e, entry_columns))  # type: ignore[attr-defined]
        for pm in pms:
            postmortems[pm.incident_id] = {**_dump_row(pm, pm_columns), ENTRIES_KEY: entries.get(pm.id, [])}  # type: ignore[attr-defined]
    children: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for name, model in ATTACHED.items():  # events first (see above)
        columns = stored_fields(model, "incident")
        grouped: dict[int, list[dict[str, Any]]] = {}
        for chunk in _chunks(ids):
            for row in await model.filter(incident_id__in=chunk).using_db(conn).order_by("id"):
                grouped.setdefault(row.incident_id, []).append(_dump_row(row, columns))  # type: ignore[attr-defined]
        children[name] = grouped
    inc_columns = stored_fields(Incident)
    out = []
    for inc in incidents:
        doc = {"key": inc.key, **_dump_row(inc, inc_columns)}
        for name in ATTACHED:
            doc[name] = children[name].get(inc.id, [])
        doc[POSTMORTEM_KEY] = postmortems.get(inc.id)
        out.append(doc)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema": migration_names()[-1],
        "exported_at": datetime.now(UTC).isoformat(),
        "incidents": out,
    }


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)] or []


# --- reading a document -------------------------------------------------------------------


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
        raise _where(f"{path}.{unknown[0]}", f"unknown field (a {model.__name__} has: {', '.join(columns)})")
    out: dict[str, Any] = {}
    for name, f in columns.items():
        if name not in doc:
            if f.pk or (f.default is None and not f.null and not f.has_db_default()):
                raise _where(f"{path}.{name}", "is missing")
            continue
        out[name] = _load_value(f, doc[name], f"{path}.{name}", model, name)
    return out


def _list(doc: dict[str, Any], name: str, path: str) -> list[Any]:
    value = doc.get(name, [])
    if not isinstance(value, list):
        raise _where(f"{path}.{name}", "expected a list")
    return value


@dataclass
class _Incoming:
    """One incident of a document, checked: rows ready to write (ids still the source's)."""

    path: str
    incident: dict[str, Any]
    attached: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    postmortem: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)


def parse_document(doc: Any) -> list[_Incoming]:
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


def _parse_incidents(incidents: list[Any]) -> list[_Incoming]:
    inc_columns = stored_fields(Incident)
    attached_columns = {name: stored_fields(model, "incident") for name, model in ATTACHED.items()}
    pm_columns = stored_fields(Postmortem, "incident")
    entry_columns = stored_fields(PostmortemEntry, "postmortem")
    out: list[_Incoming] = []
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
        if row["number"] in seen_numbers:
            raise _where(f"{path}.number", f"INC-{row['number']} is also at {seen_numbers[row['number']]}")
        seen_numbers[row["number"]] = path
        unique("incident", row, path)
        item = _Incoming(path, row)
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


# --- import -------------------------------------------------------------------------------


@dataclass
class ImportResult:
    incidents: int = 0
    rows: int = 0
    rekeyed: dict[str, str] = field(default_factory=dict)  # old key -> new key (--as-new)
    ids_kept: bool = True


async def import_document(doc: Any, actor: str, *, as_new: bool = False, source: str = "") -> ImportResult:
    """Write a checked document in one transaction. Keys already in use are refused, or with
    `as_new` those incidents get the next free keys."""
    from engine.incidents.services import _FEED_LOCK_ID, _next_number, append_event, valid_actor

    actor = valid_actor(actor)
    items = parse_document(doc)
    result = ImportResult(incidents=len(items))
    async with in_transaction() as conn:
        postgres = conn.capabilities.dialect == "postgres"
        if postgres:
            # Writers wait while the ids are chosen and written (readers do not). The service
            # layer locks key_counter or an incident row first, so taking them in this order
            # cannot deadlock with it; the feed lock last keeps event ids committing in order.
            tables_sql = ", ".join(f'"{m._meta.db_table}"' for m in exported_models())
            await conn.execute_query(f'LOCK TABLE "key_counter", {tables_sql} IN SHARE ROW EXCLUSIVE MODE')
            await conn.execute_query(f"SELECT pg_advisory_xact_lock({_FEED_LOCK_ID})")
        numbers = [it.incident["number"] for it in items]
        taken: set[int] = set()
        for chunk in _chunks(numbers):
            taken |= set(cast("list[int]", await Incident.filter(number__in=chunk).using_db(conn).values_list("number", flat=True)))
        if taken and not as_new:
            keys = [f"INC-{n}" for n in sorted(taken)]
            shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
            raise InvalidInput(
                "incidents",
                f"{shown} already exist{'s' if len(keys) == 1 else ''} here; nothing was imported (--as-new imports them under new keys)",
            )
        # The key counter moves past every kept key first, so new keys never reuse one.
        kept = [n for n in numbers if n not in taken]
        await _raise_counter(conn, max(kept, default=0))
        for it in items:
            if it.incident["number"] in taken:
                new = await _next_number(conn)
                result.rekeyed[f"INC-{it.incident['number']}"] = f"INC-{new}"
                it.incident["number"] = new

        tables: dict[str, tuple[type[Model], list[dict[str, Any]]]] = {
            "incident": (Incident, [it.incident for it in items]),
            **{name: (model, [r for it in items for r in it.attached[name]]) for name, model in ATTACHED.items()},
            "postmortem": (Postmortem, [it.postmortem for it in items if it.postmortem is not None]),
            "entries": (PostmortemEntry, [r for it in items for r in it.entries]),
        }
        offsets = {name: await _id_offset(conn, model, [r["id"] for r in rows]) for name, (model, rows) in tables.items()}
        result.ids_kept = not any(offsets.values())
        by_model = {model: offsets[name] for name, (model, _) in tables.items()}

        for it in items:
            inc_id = it.incident["id"] + offsets["incident"]
            it.incident["id"] = inc_id
            events = it.attached["events"]
            for name in ATTACHED:
                for r in it.attached[name]:
                    r["id"] += offsets[name]
                    r["incident_id"] = inc_id
            for e in events:
                e["data"] = _moved_refs(e.get("data"), by_model)
            if it.postmortem is not None:
                it.postmortem["id"] += offsets["postmortem"]
                it.postmortem["incident_id"] = inc_id
                for r in it.entries:
                    r["id"] += offsets["entries"]
                    r["postmortem_id"] = it.postmortem["id"]
                    if r.get("event_id") is not None:
                        r["event_id"] += offsets["events"]
            # The engine replays timeline events it has not seen: imported history is seen.
            escalation = dict(it.incident.get("escalation") or {})
            last = max((e["id"] for e in events), default=0)
            if isinstance(escalation.get("seen"), int) and escalation["seen"]:
                escalation["seen"] += offsets["events"]
            if last and int(escalation.get("seen") or 0) < last:
                escalation["seen"] = last
            it.incident["escalation"] = escalation

        if postgres:  # the sequences move past the ids written here (setval is not rolled back: a gap at worst)
            for model, rows in tables.values():
                if rows:
                    await _advance_sequence(conn, model, max(r["id"] for r in rows))
        for model, rows in tables.values():
            if rows:
                await model.bulk_create([model(**r) for r in rows], batch_size=500, using_db=conn)
                result.rows += len(rows)
        what = f"imported {len(items)} incident{'s' if len(items) != 1 else ''}" + (f" from {source}" if source else "")
        await append_event(conn, None, "imported", actor, what, {"incidents": len(items), "rekeyed": result.rekeyed, "rows": result.rows})
    return result


def _moved_refs(data: Any, offsets: dict[type[Model], int]) -> Any:
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for key, model in EVENT_REFS.items():
        value = out.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = value + offsets[model]
    return out


async def _raise_counter(conn: BaseDBAsyncClient, at_least: int) -> None:
    await conn.execute_query("INSERT INTO key_counter (name, value) VALUES ('incident', 0) ON CONFLICT (name) DO NOTHING")
    # Also past every incident already stored (a database written before the counter existed).
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query(
            "UPDATE key_counter SET value = GREATEST(value, $1, (SELECT COALESCE(MAX(number), 0) FROM incident)) WHERE name = 'incident'",
            [at_least],
        )
    else:
        await conn.execute_query(
            "UPDATE key_counter SET value = MAX(value, ?, (SELECT COALESCE(MAX(number), 0) FROM incident)) WHERE name = 'incident'",
            [at_least],
        )


async def _sequence(conn: BaseDBAsyncClient, table: str) -> str | None:
    rows = await conn.execute_query_dict(f"SELECT pg_get_serial_sequence('\"{table}\"', 'id') AS name")
    return rows[0]["name"] if rows and rows[0]["name"] else None


async def _id_offset(conn: BaseDBAsyncClient, model: type[Model], ids: list[int]) -> int:
    """0 when every incoming id lies above the table's highest (and its sequence's last) id;
    otherwise the shift that puts them all just above it."""
    if not ids:
        return 0
    table = model._meta.db_table
    rows = await conn.execute_query_dict(f'SELECT COALESCE(MAX(id), 0) AS top FROM "{table}"')
    top = int(rows[0]["top"])
    if conn.capabilities.dialect == "postgres":
        seq = await _sequence(conn, table)
        if seq:
            last = await conn.execute_query_dict(f"SELECT last_value, is_called FROM {seq}")
            if last and last[0]["is_called"]:
                top = max(top, int(last[0]["last_value"]))
    low = min(ids)
    return 0 if low > top else top - low + 1


async def _advance_sequence(conn: BaseDBAsyncClient, model: type[Model], top: int) -> None:
    """Rows written with explicit ids would leave a PostgreSQL sequence behind: move it past them."""
    seq = await _sequence(conn, model._meta.db_table)
    if seq:
        await conn.execute_query(f"SELECT setval('{seq}', GREATEST($1::bigint, (SELECT last_value FROM {seq})))", [top])
