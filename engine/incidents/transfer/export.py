"""Export: every incident (or a chosen few) with its attached rows, as one document."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from tortoise import fields as tf
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.transactions import in_transaction

from engine.core.domain import NotFound, parse_incident_key
from engine.incidents.transfer.document import ATTACHED, ENTRIES_KEY, FORMAT, FORMAT_VERSION, POSTMORTEM_KEY, chunks, stored_fields
from engine.storage.models import Incident
from engine.storage.postmortem_models import Postmortem, PostmortemEntry


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
    for chunk in chunks(ids):
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
        for chunk in chunks(ids):
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
