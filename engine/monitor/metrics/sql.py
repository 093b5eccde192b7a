"""Plain parametrised SQL for the hot write paths: building ORM objects for thousands of rows
a second costs more event-loop time than the database work itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from tortoise.transactions import in_transaction

from engine.storage.rows import marks

RESULT_COLUMNS = ("target", "at", "ok", "latency_ms", "status_code", "error", "cert_days_left")
SAMPLE_COLUMNS = ("series_id", "at", "value")
ROLLUP_COLUMNS = ("series_id", "minute", "count", "min", "max", "mean", "p95")
# What the engine writes of a target's row. Never `active`: operators clear it to pause the
# target (API, CLI), and a write from the engine's copy would undo a pause it has not seen yet.
STATE_COLUMNS = (
    "state",
    "last_at",
    "last_ok",
    "last_latency_ms",
    "last_status_code",
    "last_error",
    "last_ok_at",
    "last_change_at",
    "cert_days_left",
    "updated_at",
)


def sql_placeholders(conn: Any, n: int, start: int = 1) -> list[str]:
    return marks(conn.capabilities.dialect, n, start)


def as_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows for `execute_many`, which takes any sequences though Tortoise types it `list[list]`."""
    return cast("list[list[Any]]", rows)


def insert_sql(conn: Any, table: str, columns: Sequence[str]) -> str:
    return f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join(sql_placeholders(conn, len(columns)))})'


def update_sql(conn: Any, table: str, columns: Sequence[str], key: str) -> str:
    marks = sql_placeholders(conn, len(columns) + 1)
    sets = ", ".join(f'"{c}" = {m}' for c, m in zip(columns, marks))
    return f'UPDATE "{table}" SET {sets} WHERE "{key}" = {marks[-1]}'


def insert_samples_sql(conn: Any) -> str:
    """A series has one value per instant (pushes are idempotent by series and time)."""
    return insert_sql(conn, "metric_sample", SAMPLE_COLUMNS) + ' ON CONFLICT ("series_id", "at") DO NOTHING'


def upsert_rollups_sql(conn: Any) -> str:
    return (
        insert_sql(conn, "metric_rollup", ROLLUP_COLUMNS)
        + ' ON CONFLICT ("series_id", "minute") DO UPDATE SET '
        + ", ".join(f'"{c}" = excluded."{c}"' for c in ROLLUP_COLUMNS[2:])
    )


async def upsert_rollups(rows: list[tuple[Any, ...]]) -> None:
    """Insert or replace per-minute rollups (series_id, minute, count, min, max, mean, p95).
    A minute split between two engines (a takeover) keeps the later write."""
    async with in_transaction() as conn:
        await conn.execute_many(upsert_rollups_sql(conn), as_rows(rows))
