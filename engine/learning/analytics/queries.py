"""The report's SQL: one aggregated pass per period, written once for SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.core.domain import Source
from engine.learning.analytics.periods import Period

MONITORING_SOURCES = [Source.THRESHOLD.value, Source.ANOMALY.value, Source.PATTERN.value, Source.ALERT.value]


class _Sql:
    """The few expressions that differ between SQLite and PostgreSQL, and positional parameters."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.pg = conn.capabilities.dialect == "postgres"
        self.values: list[Any] = []

    def param(self, value: Any) -> str:
        if isinstance(value, datetime) and not self.pg:
            # SQLite stores UTC text like '2026-03-01 10:00:00.250000+00:00'; compare alike.
            value = value.astimezone(UTC).isoformat(sep=" ")
        self.values.append(value)
        if self.pg:
            return f"${len(self.values)}::timestamptz" if isinstance(value, datetime) else f"${len(self.values)}"
        return "?"

    def seconds(self, start: str, end: str) -> str:
        if self.pg:
            return f"EXTRACT(EPOCH FROM ({end} - {start}))"
        return f"((julianday({end}) - julianday({start})) * 86400.0)"

    def json_number(self, column: str, key: str) -> str:
        if self.pg:
            return f"(({column})->>'{key}')::numeric"
        return f"json_extract({column}, '$.{key}')"

    def week_index(self, column: str, period: Period) -> str:
        """The seven-day bucket of `column`, counted in the period's wall-clock time.

        Where the zone's offset changes inside the period (summer time), each instant is first
        moved by the change, so a bucket still begins at local midnight: an incident at 23:30
        on a Wednesday after the clocks went back stays in that Wednesday's week.
        """
        changes = period.offset_changes()
        if self.pg:
            shift = ""
            if changes:
                whens = " ".join(f"WHEN {column} < {self.param(at)} THEN {before}" for at, before in _shifts(changes))
                shift = f" + CASE {whens} ELSE {changes[-1][1]} END"
            return f"FLOOR((EXTRACT(EPOCH FROM ({column} - {self.param(period.since)})){shift}) / 604800)::int"
        moved = column
        if changes:
            # A julianday() modifier keeps the arithmetic in whole milliseconds (exact at midnight).
            whens = " ".join(f"WHEN {column} < {self.param(at)} THEN '{before:+d} seconds'" for at, before in _shifts(changes))
            moved = f"{column}, CASE {whens} ELSE '{changes[-1][1]:+d} seconds' END"
        return f"CAST((julianday({moved}) - julianday({self.param(period.since)})) / 7 AS INTEGER)"

    @staticmethod
    def in_list(values: list[str]) -> str:
        """Constant names (enum values) inlined: a parameter used twice would shift SQLite's '?'."""
        assert all(re.fullmatch(r"[a-z_]+", v) for v in values)
        return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _shifts(changes: list[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    """(change instant, shift in seconds before it) for a CASE over `Period.offset_changes()`."""
    return [(at, changes[i - 1][1] if i else 0) for i, (at, _) in enumerate(changes)]


async def _fetch(conn: BaseDBAsyncClient, sql: str, values: list[Any]) -> list[dict[str, Any]]:
    _, rows = await conn.execute_query(sql, values)
    return [dict(r) for r in rows]


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


async def _use_index(conn: BaseDBAsyncClient, q: _Sql, since: str, until: str, values: list[Any]) -> bool:
    """On SQLite, whether to read the period through the created_at index.

    SQLite keeps no statistics here, so it always picks the index; for a period holding much of
    the table, a plain scan is about four times faster than an index range with a lookup per
    row. Counting through the (covering) index first costs a few milliseconds.
    """
    if q.pg:
        return True
    _, rows = await conn.execute_query(
        f"SELECT (SELECT COUNT(*) FROM incident WHERE created_at >= {since} AND created_at < {until}) AS n, "
        "(SELECT MAX(id) FROM incident) AS total",
        values,
    )
    n, total = rows[0][0] or 0, rows[0][1] or 0
    return n * 8 < total


async def period_cube(conn: BaseDBAsyncClient, period: Period) -> list[dict[str, Any]]:
    """One pass over the period's incidents: sums and counts per (week, severity, root cause).

    An incident merged into another is left out: it was the same outage, counted once as the
    survivor (else each duplicate added an incident, a 'resolution' at the merge and an
    'unknown' root cause).

    Every figure of the report is a sum over some of these groups (at most a few thousand
    rows), so means stay exact (sum / count) and the table is read once. The inner query turns
    each incident into a few numbers first (materialised, so SQLite's GROUP BY sorts small
    records instead of the timestamps' text).
    """
    q = _Sql(conn)
    week = q.week_index("i.created_at", period)
    real = "NOT i.false_positive"
    monitored = f"{real} AND i.source IN {q.in_list(MONITORING_SOURCES)}"
    since, until = q.param(period.since), q.param(period.until)
    column = "i.created_at"
    if not await _use_index(conn, q, since, until, q.values[-2:]):
        column = "+i.created_at"  # unary plus: SQLite's way to say "not through the index"
    sql = f"""
        WITH r AS MATERIALIZED (
            SELECT {week} AS week, i.severity AS severity,
                   CASE WHEN {real} AND i.resolved_at IS NOT NULL
                        THEN COALESCE(i.root_cause_category, 'unknown') END AS category,
                   CASE WHEN i.false_positive THEN 1 ELSE 0 END AS fp,
                   CASE WHEN {real} AND i.resolved_at IS NOT NULL
                        THEN {q.seconds("i.created_at", "i.resolved_at")} END AS ttr,
                   CASE WHEN {real} AND i.acknowledged_at IS NOT NULL
                        THEN {q.seconds("i.created_at", "i.acknowledged_at")} END AS tta,
                   CASE WHEN {real} AND i.detected_at IS NOT NULL
                        THEN {q.seconds("i.detected_at", "i.created_at")} END AS ttd,
                   CASE WHEN {monitored} THEN CASE WHEN i.resolved_at IS NOT NULL THEN 1 ELSE 0 END END AS mon,
                   {q.json_number("i.satisfaction", "customer")} AS customer,
                   {q.json_number("i.satisfaction", "team")} AS team
            FROM incident i
            WHERE {column} >= {since} AND {column} < {until} AND i.merged_into IS NULL
        )
        SELECT week, severity, category,
               COUNT(*) AS incidents, SUM(fp) AS false_positives,
               COUNT(ttr) AS resolved, SUM(ttr) AS ttr_sum,
               COUNT(tta) AS acked, SUM(tta) AS tta_sum,
               COUNT(ttd) AS detected, SUM(ttd) AS ttd_sum,
               COUNT(mon) AS monitored, SUM(mon) AS monitored_resolved,
               SUM(customer) AS customer_sum, COUNT(customer) AS customer_n,
               SUM(team) AS team_sum, COUNT(team) AS team_n
        FROM r
        GROUP BY week, severity, category
    """
    return await _fetch(conn, sql, q.values)


async def went_public_before_resolution(conn: BaseDBAsyncClient, period: Period) -> int:
    """Monitoring-detected incidents of the period with a public update at or before their resolution.

    Driven from the (smaller) status_update table with a primary-key lookup per update; CROSS
    JOIN keeps SQLite from choosing the other order, which would scan updates per incident.
    """
    q = _Sql(conn)
    public = "TRUE" if q.pg else "1"
    since, until = q.param(period.since), q.param(period.until)
    sql = f"""
        SELECT COUNT(DISTINCT i.id) AS n
        FROM status_update su CROSS JOIN incident i
        WHERE i.id = su.incident_id AND su.public = {public} AND su.created_at <= i.resolved_at
          AND i.created_at >= {since} AND i.created_at < {until}
          AND NOT i.false_positive AND i.merged_into IS NULL AND i.source IN {q.in_list(MONITORING_SOURCES)}
    """
    rows = await _fetch(conn, sql, q.values)
    return int(rows[0]["n"] or 0)
