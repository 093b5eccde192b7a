"""Rows inserted on the hot write path: one prepared INSERT per model, no per-row ORM machinery.

Every incident change inserts its timeline event, its audit entry and often a comment or an
update. Tortoise's `Model.create` spends about 50 µs per row on this machine building the instance
(per-field validation, relation checks, signals) where the statement itself costs under 10 µs;
on a busy incident that overhead, repeated for each row inside the write lock, was a fifth of a
write. `insert` builds the same row: the values are converted by the fields' own `to_db_value`,
defaults are the fields' defaults, and the instance returned is the one `create` would return.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from copy import deepcopy
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields.base import Field
from tortoise.models import Model

M = TypeVar("M", bound=Model)

# (model, dialect) -> (INSERT statement, [(attribute, field)] in its column order)
_PLANS: dict[tuple[type[Model], str], tuple[str, list[tuple[str, Field[Any]]]]] = {}


def marks(dialect: str, count: int, first: int = 1) -> list[str]:
    """Parameter markers for `count` values from the `first`-th: "$1"… on PostgreSQL, "?" on SQLite."""
    return [f"${i}" for i in range(first, first + count)] if dialect == "postgres" else ["?"] * count


def _column_names(model: type[Model]) -> list[str]:
    """`model`'s columns but the key, quoted, in its fields' order (the order `_plan` binds)."""
    meta = model._meta
    return [f'"{column}"' for name, column in meta.fields_db_projection.items() if name != meta.pk_attr]


def _insert_sql(model: type[Model], dialect: str, columns: int, first: int = 1, pk_sql: str | None = None) -> str:
    """INSERT of `model`'s columns (all but the key) with parameter markers from `first` on; with
    `pk_sql`, the key from that SQL expression."""
    meta = model._meta
    names = _column_names(model)
    values = marks(dialect, columns, first)
    if pk_sql is not None:
        names.insert(0, f'"{meta.db_pk_column}"')
        values.insert(0, pk_sql)
    return f'INSERT INTO "{meta.db_table}" ({", ".join(names)}) VALUES ({", ".join(values)})'


def _plan(model: type[Model], dialect: str) -> tuple[str, list[tuple[str, Field[Any]]]]:
    plan = _PLANS.get((model, dialect))
    if plan is None:
        meta = model._meta
        columns = [(name, meta.fields_map[name]) for name in meta.fields_db_projection if name != meta.pk_attr]
        sql = _insert_sql(model, dialect, len(columns))
        if dialect == "postgres":
            sql += f' RETURNING "{meta.db_pk_column}"'
        plan = _PLANS[(model, dialect)] = (sql, columns)
    return plan


def _default(field: Field[Any]) -> Any:
    default = field.default
    if callable(default):
        return default()
    if default is None:
        return None
    return default if isinstance(default, (int, float, str, bool, bytes)) else deepcopy(default)


def _statement(model: type[Model], dialect: str, pk_sql: str | None, also: tuple[type[Model], ...]) -> str:
    """PostgreSQL: the INSERT of `model` (its key from `pk_sql`) and of one row of each `also`
    model as one statement, returning the first row's key."""
    key = (model, dialect, pk_sql, also)
    sql = _CHAINS.get(key)
    if sql is None:
        pk = model._meta.db_pk_column
        n = len(_plan(model, dialect)[1])
        parts = [f'WITH "row0" AS ({_insert_sql(model, dialect, n, 1, pk_sql)} RETURNING "{pk}")']
        for i, other in enumerate(also, start=1):
            columns = len(_plan(other, dialect)[1])
            parts.append(f'"row{i}" AS ({_insert_sql(other, dialect, columns, n + 1)})')
            n += columns
        sql = _CHAINS[key] = ", ".join(parts) + f' SELECT "{pk}" FROM "row0"'
    return sql


_CHAINS: dict[tuple[Any, ...], str] = {}


def _row(model: type[M], columns: list[tuple[str, Field[Any]]], values: dict[str, Any], params: list[Any]) -> M:
    """The instance `create` would return (its key still to set), its columns' stored values
    appended to `params`."""
    instance = model.__new__(model)
    setattr_ = object.__setattr__
    setattr_(instance, "_partial", False)
    setattr_(instance, "_saved_in_db", True)
    setattr_(instance, "_custom_generated_pk", False)
    setattr_(instance, "_await_when_save", {})
    for name, field in columns:
        value = values[name] if name in values else _default(field)
        if value is None and not field.null:
            raise ValueError(f"{model._meta.db_table}.{name} is non nullable field, but null was passed")
        setattr_(instance, name, value)
        params.append(field.to_db_value(value, instance))
    return instance


async def insert(
    conn: BaseDBAsyncClient,
    model: type[M],
    values: dict[str, Any],
    relations: dict[str, Model] | None = None,
    *,
    pk_sql: str | None = None,
    also: list[tuple[type[Model], dict[str, Any]]] | None = None,
    may_defer: bool = False,
) -> M:
    """Insert one `model` row in `conn`'s transaction and return it as `Model.create` would.

    `values` names columns by attribute (a relation by its `_id` column); a column not given
    takes its field's default. `relations` are related instances to attach (by relation name,
    e.g. {"incident": incident}) so that reading them does not query again. `also` rows (model,
    values) are inserted with it. On PostgreSQL all of it is one statement (one round trip), and
    `pk_sql`, a scalar SQL expression, gives the row's key (e.g. a sequence read after a lock is
    taken); SQLite runs one statement per row and ignores `pk_sql`. With `may_defer`, inside
    `deferring(conn)` the row is held back with the other writes (its key is then not set)."""
    dialect = conn.capabilities.dialect
    sql, columns = _plan(model, dialect)
    meta = model._meta
    params: list[Any] = []
    instance = _row(model, columns, values, params)
    for name, related in (relations or {}).items():
        object.__setattr__(instance, f"_{name}", related)
    held = deferred(conn) if may_defer and not also else None
    if held is not None:  # sent with the other held-back writes; its key stays unknown
        held.add(_insert_sql(model, dialect, len(columns), 1, pk_sql), params)
        return instance
    if dialect == "postgres":
        if pk_sql is not None or also:
            for other, other_values in also or ():
                _row(other, _plan(other, dialect)[1], other_values, params)
            sql = _statement(model, dialect, pk_sql, tuple(other for other, _ in also or ()))
        found = await conn.execute_query_dict(sql, params)
        pk = found[0][meta.db_pk_column]
    else:
        pk = await conn.execute_insert(sql, params)
        for other, other_values in also or ():
            other_sql, other_columns = _plan(other, dialect)
            other_params: list[Any] = []
            _row(other, other_columns, other_values, other_params)
            await conn.execute_insert(other_sql, other_params)
    object.__setattr__(instance, meta.pk_attr, pk)
    return instance


def _ignoring_sql(model: type[Model], dialect: str, count: int) -> str:
    """INSERT of `count` rows of `model` that skips a row whose unique key is taken."""
    key = (model, dialect, count)
    sql = _IGNORING.get(key)
    if sql is None:
        names = _column_names(model)
        width = len(names)
        groups = ", ".join("(" + ", ".join(marks(dialect, width, i * width + 1)) + ")" for i in range(count))
        sql = _IGNORING[key] = f'INSERT INTO "{model._meta.db_table}" ({", ".join(names)}) VALUES {groups} ON CONFLICT DO NOTHING'
    return sql


_IGNORING: dict[tuple[type[Model], str, int], str] = {}


async def insert_ignoring(conn: BaseDBAsyncClient, model: type[Model], rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` of `model` (values by attribute, defaults for the rest) in one statement,
    skipping any whose unique key is already stored: what `bulk_create(ignore_conflicts=True)`
    does, without building the query anew for each call (the outbox rows and timers every
    notified change writes)."""
    if not rows:
        return
    dialect = conn.capabilities.dialect
    columns = _plan(model, dialect)[1]
    params: list[Any] = []
    if _stamps_on_instance(model):
        for values in rows:  # those fields set their value on the instance
            _row(model, columns, values, params)
    else:
        _encode_rows(model, columns, rows, params)
    await write(conn, _ignoring_sql(model, dialect, len(rows)), params)


@functools.cache
def _stamps_on_instance(model: type[Model]) -> bool:
    """Whether a field of `model` sets its value on the instance (auto_now, auto_now_add)."""
    return any(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) for f in model._meta.fields_map.values())


def _encode_rows(model: type[Model], columns: list[tuple[str, Field[Any]]], rows: Sequence[dict[str, Any]], params: list[Any]) -> None:
    """The stored values of `rows`, as `_row` gives them, without building instances: a value
    the rows share (the same object: a payload, a timestamp, a kind) and a constant default are
    encoded once. Only for models without auto_now fields (they need the instance)."""
    encoded: dict[tuple[str, int], Any] = {}  # the rows' values stay alive, so their ids are theirs
    defaults: dict[str, Any] = {}
    for values in rows:
        for name, field in columns:
            if name in values:
                value = values[name]
                if value is None and not field.null:
                    raise ValueError(f"{model._meta.db_table}.{name} is non nullable field, but null was passed")
                key = (name, id(value))
                if key not in encoded:
                    encoded[key] = field.to_db_value(value, model)
                params.append(encoded[key])
            elif name in defaults:
                params.append(defaults[name])
            else:
                default = field.default
                value = _default(field)
                if value is None and not field.null:
                    raise ValueError(f"{model._meta.db_table}.{name} is non nullable field, but null was passed")
                stored = field.to_db_value(value, model)
                if not callable(default) or default in (dict, list):  # the same for every row
                    defaults[name] = stored
                params.append(stored)


async def update(conn: BaseDBAsyncClient, instance: Model, names: list[str]) -> None:
    """`instance.save(update_fields=names)` as one prepared UPDATE by primary key, without the
    ORM's per-save query building (every incident change saves a few columns of one row)."""
    model = type(instance)
    meta = model._meta
    dialect = conn.capabilities.dialect
    key = (model, dialect, tuple(names))
    sql = _UPDATES.get(key)
    if sql is None:
        columns = [meta.fields_db_projection[name] for name in names]
        if dialect == "postgres":
            sets = ", ".join(f'"{column}" = ${i}' for i, column in enumerate(columns, start=1))
            where = f"${len(columns) + 1}"
        else:
            sets = ", ".join(f'"{column}" = ?' for column in columns)
            where = "?"
        sql = _UPDATES[key] = f'UPDATE "{meta.db_table}" SET {sets} WHERE "{meta.db_pk_column}" = {where}'
    fields = meta.fields_map
    params = [fields[name].to_db_value(getattr(instance, name), instance) for name in names]
    params.append(instance.pk)
    await conn.execute_query(sql, params)


_UPDATES: dict[tuple[Any, ...], str] = {}


# `guarded_write`: a row whose key the column's default (its sequence) gives.
DEFAULT_KEY = "DEFAULT"


def _typed(field: Field[Any], i: int) -> str:
    """Parameter marker `i` cast to the column's type: in INSERT … SELECT the server cannot
    infer a parameter's type from the column it fills."""
    return f"${i}::{field.get_for_dialect('postgres', 'SQL_TYPE')}"


def _guarded_sql(
    model: type[Model],
    sets: tuple[str, ...],
    raw_set: str,
    guard: tuple[str, ...],
    returning: tuple[str, ...],
    inserts: tuple[tuple[type[Model], str | None], ...],
) -> str:
    key = ("guarded", model, sets, raw_set, guard, returning, inserts)
    sql = _CHAINS.get(key)
    if sql is not None:
        return sql
    meta = model._meta
    projection, fields = meta.fields_db_projection, meta.fields_map
    n = 0

    def mark(field: Field[Any]) -> str:
        nonlocal n
        n += 1
        return _typed(field, n)

    assignments = [raw_set] if raw_set else []
    assignments += [f'"{projection[name]}" = {mark(fields[name])}' for name in sets]
    where = [f'"{meta.db_pk_column}" = {mark(fields[meta.pk_attr])}']
    where += [f'"{projection[name]}" IS NOT DISTINCT FROM {mark(fields[name])}' for name in guard]
    back = ", ".join(f'"{projection[name]}"' for name in returning)
    parts = [f'WITH "target" AS (UPDATE "{meta.db_table}" SET {", ".join(assignments)} WHERE {" AND ".join(where)} RETURNING {back})']
    keyed: list[str] = []
    for i, (other, pk_sql) in enumerate(inserts, start=1):
        other_meta = other._meta
        columns = _plan(other, "postgres")[1]
        names, values = [], []
        if pk_sql != DEFAULT_KEY:
            names.append(f'"{other_meta.db_pk_column}"')
            values.append(pk_sql if pk_sql is not None else mark(other_meta.fields_map[other_meta.pk_attr]))
        names += [f'"{other_meta.fields_db_projection[name]}"' for name, _ in columns]
        values += [mark(field) for _, field in columns]
        returns = ""
        if pk_sql not in (None, DEFAULT_KEY):
            keyed.append(f"row{i}")
            returns = f' RETURNING "{other_meta.db_pk_column}" AS "key"'
        parts.append(
            f'"row{i}" AS (INSERT INTO "{other_meta.db_table}" ({", ".join(names)}) SELECT {", ".join(values)} FROM "target"{returns})'
        )
    keys = "".join(f', (SELECT "key" FROM "{name}") AS "key_{j}"' for j, name in enumerate(keyed))
    sql = _CHAINS[key] = ", ".join(parts) + f' SELECT "target".*{keys} FROM "target"'
    return sql


async def guarded_write(
    conn: BaseDBAsyncClient,
    instance: Model,
    sets: list[str],
    guard: dict[str, Any],
    *,
    raw_set: str = "",
    returning: tuple[str, ...] = (),
    inserts: Sequence[tuple[Model, str | None]] = (),
) -> dict[str, Any] | None:
    """PostgreSQL: update `instance`'s row (columns `sets` from its attributes, plus the SQL
    `raw_set`) only while each `guard` column still holds the stored value given, and insert
    the `inserts` rows (instances built by `row`: with their key set and None, or with a key
    expression, or with DEFAULT_KEY for the column's default) only if it did: one statement,
    so one transaction and one round trip even outside a transaction. Returns the `returning`
    columns and, as "key_0", "key_1"…, the keys the expressions gave, in order; None when the
    guard failed or the row is gone."""
    model = type(instance)
    meta = model._meta
    fields = meta.fields_map
    sql = _guarded_sql(
        model,
        tuple(sets),
        raw_set,
        tuple(guard),
        returning or (meta.pk_attr,),
        tuple((type(row), pk_sql) for row, pk_sql in inserts),
    )
    params = [fields[name].to_db_value(getattr(instance, name), instance) for name in sets]
    params.append(instance.pk)
    params += list(guard.values())
    for row, pk_sql in inserts:
        if pk_sql is None:
            params.append(row._meta.fields_map[row._meta.pk_attr].to_db_value(row.pk, row))
        params += [field.to_db_value(getattr(row, name), row) for name, field in _plan(type(row), "postgres")[1]]
    found = await conn.execute_query_dict(sql, params)
    return found[0] if found else None


def row(model: type[M], values: dict[str, Any], relations: dict[str, Model] | None = None) -> M:
    """The instance `insert` would insert, not yet stored (for `guarded_write`)."""
    instance = _row(model, _plan(model, "postgres")[1], values, [])
    for name, related in (relations or {}).items():
        object.__setattr__(instance, f"_{name}", related)
    return instance


# --- writes sent together -------------------------------------------------------------------


class Deferred:
    """Writes of one PostgreSQL transaction held back and sent as one statement (see `deferring`)."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        # key -> (SQL, parameters), in the order first written; a keyed write replaces its
        # earlier one in place (the last state of a row supersedes the ones before).
        self.writes: dict[Any, tuple[str, list[Any]]] = {}
        self._replaced: dict[Any, int] = {}

    def add(self, sql: str, params: list[Any], key: Any = None) -> None:
        if key is None:
            key = ("write", len(self.writes))
        elif key in self.writes:
            self._replaced[key] = self._replaced.get(key, 0) + 1
        self.writes[key] = (sql, params)

    def held(self, key: Any) -> int:
        """How many writes under `key` are held back (the last of them to be sent)."""
        return self._replaced.get(key, 0) + (key in self.writes)

    async def send(self) -> None:
        writes = list(self.writes.values())
        self.writes.clear()
        self._replaced.clear()
        if not writes:
            return
        if len(writes) == 1:
            await self.conn.execute_query(*writes[0])
            return
        parts: list[str] = []
        params: list[Any] = []
        for i, (sql, own) in enumerate(writes):
            if params:
                sql = _shifted(sql, len(params))
            parts.append(sql if i == len(writes) - 1 else f'"w{i}" AS ({sql})')
            params += own
        await self.conn.execute_query("WITH " + ", ".join(parts[:-1]) + " " + parts[-1], params)


_MARKER = re.compile(r"\$(\d+)")


def _shifted(sql: str, offset: int) -> str:
    """`sql` with its parameter markers numbered from `offset` + 1 (as a part of a larger statement)."""
    return _MARKER.sub(lambda m: f"${int(m.group(1)) + offset}", sql)


_DEFERRED: ContextVar[Deferred | None] = ContextVar("rows_deferred", default=None)


def deferred(conn: BaseDBAsyncClient) -> Deferred | None:
    """The writes held back for `conn`, inside `deferring(conn)`; None when they go at once."""
    held = _DEFERRED.get()
    return held if held is not None and held.conn is conn else None


@asynccontextmanager
async def deferring(conn: BaseDBAsyncClient) -> AsyncIterator[None]:
    """On PostgreSQL, hold back the writes made through `write` (and `insert_ignoring`) on `conn`
    until the block ends, then send them as one statement, each a part of it. After the change's
    event is written its transaction holds the change feed's lock until commit, so every round
    trip saved there is a round trip every other writer stops waiting for.

    The parts of one statement see the database as it was before it, not each other's changes:
    only writes that read nothing the others write may be held back together, no two may change
    the same row (a keyed write replaces its earlier one instead), and nothing in the block may
    read what they write. SQLite sends each at once (no round trips to save)."""
    if conn.capabilities.dialect != "postgres" or deferred(conn) is not None:
        yield
        return
    held = Deferred(conn)
    token = _DEFERRED.set(held)
    try:
        yield
    finally:
        _DEFERRED.reset(token)
    await held.send()  # not after an error: the transaction is rolled back anyway


async def write(conn: BaseDBAsyncClient, sql: str, params: list[Any], key: Any = None) -> None:
    """Run one write on `conn`, or hold it back inside `deferring(conn)` (`key`: a later write
    with the same key replaces it)."""
    held = deferred(conn)
    if held is not None:
        held.add(sql, params, key)
        return
    await conn.execute_query(sql, params)
