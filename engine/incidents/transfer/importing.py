"""Import: the one bulk write path besides engine.incidents.services.

It writes incidents and their timeline rows as they were (no change hooks run, so nothing is
paged or announced again), all in one transaction, after the whole document has been checked.
Row ids are kept when the target's tables have room above their highest id (an empty database:
the copy is exact); otherwise each table's ids are shifted past the highest one, and the
references between rows move with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.transactions import in_transaction

from engine.core.domain import InvalidInput
from engine.incidents.transfer.document import ATTACHED, chunks, exported_models
from engine.incidents.transfer.parsing import parse_document
from engine.storage.changes import notify_sql
from engine.storage.models import Comment, Evidence, FollowUp, Incident, StatusUpdate
from engine.storage.postmortem_models import Postmortem, PostmortemEntry

# Ids inside an event's `data` that point at rows of the same incident, and the table they name.
EVENT_REFS: dict[str, type[Model]] = {
    "comment_id": Comment,
    "update_id": StatusUpdate,
    "evidence_id": Evidence,
    "followup_id": FollowUp,
    "postmortem_id": Postmortem,
    "entry_id": PostmortemEntry,
}


@dataclass
class ImportResult:
    incidents: int = 0
    rows: int = 0
    rekeyed: dict[str, str] = field(default_factory=dict)  # old key -> new key (--as-new)
    ids_kept: bool = True


async def import_document(doc: Any, actor: str, *, as_new: bool = False, source: str = "") -> ImportResult:
    """Write a checked document in one transaction. Keys already in use are refused, or with
    `as_new` those incidents get the next free keys."""
    from engine.incidents.services import FEED_LOCK_ID, append_event, next_number, valid_actor

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
            await conn.execute_query(notify_sql(FEED_LOCK_ID))
        numbers = [it.incident["number"] for it in items]
        taken: set[int] = set()
        for chunk in chunks(numbers):
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
                new = await next_number(conn)
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
