"""Incident analytics: totals, MTTR by severity, KPIs, trends and root causes for a period.

Every figure is aggregated by the database: one GROUP BY pass per period over (week, severity,
root cause), written once with a small dialect helper for SQLite and PostgreSQL, so a yearly
report over 100,000 incidents reads at most a few thousand group rows into Python. Definitions (also in the README, section Analytics):

- An incident belongs to a period when it was *created* in it: [since, until).
- Time KPIs ignore false positives: MTTD = created_at − detected_at, MTTA = acknowledged_at −
  created_at, MTTR = resolved_at − created_at (resolved incidents only).
- Root-cause shares: resolved, non-false-positive incidents of the period by category.
- Incident prevention rate: of the non-false-positive incidents that monitoring detected
  (source threshold, anomaly, pattern or alert), the share that were resolved before any public
  status update was posted for them, i.e. fixed before they became public on the status page.
- Trends compare with the previous period (the calendar month before for a month, otherwise
  the same length just before): frequency in incidents per day, resolution time by MTTR;
  a change smaller than STABLE_PERCENT either way is "stable".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from engine.core.domain import EARLIEST_TIME, LATEST_TIME, SEVERITY_ORDER, InvalidInput, Source

MONITORING_SOURCES = [Source.THRESHOLD.value, Source.ANOMALY.value, Source.PATTERN.value, Source.ALERT.value]
STABLE_PERCENT = 5.0
MAX_DAYS = 3660  # ten years: a longer range is almost certainly a typo
SEVERITIES = [s.value for s in SEVERITY_ORDER]


# --- periods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A half-open time range [since, until) with a label; `month` marks a calendar month."""

    since: datetime
    until: datetime
    label: str
    month: bool = False
    tz: str = "UTC"

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    def previous(self) -> Period:
        """The calendar month before a month; otherwise the same length just before."""
        zone = zone_named(self.tz)
        if self.month:
            start = self.since.astimezone(zone).date()
            prev = (start.replace(day=1) - timedelta(days=1)).replace(day=1)
            return month_period(f"{prev:%Y-%m}", self.tz)
        length = self.until - self.since
        since = self.since - length
        first = since.astimezone(zone).date()
        last = (self.since - timedelta(microseconds=1)).astimezone(zone).date()
        return Period(since, self.since, f"{first} – {last}", False, self.tz)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "days": round(self.days, 4),
            "timezone": self.tz,
        }


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone {name!r} (expected an IANA name like Europe/Paris)") from None


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def month_period(text: str, tz: str = "UTC") -> Period:
    """'2026-03' → March 2026 in the time zone `tz`."""
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", text or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InvalidInput("month", f"{text!r} is not a month (expected YYYY-MM, e.g. 2026-03)")
    year, month = int(m.group(1)), int(m.group(2))
    if not EARLIEST_TIME.year <= year < LATEST_TIME.year:
        raise InvalidInput("month", f"{text!r} is out of range ({EARLIEST_TIME.year} to {LATEST_TIME.year - 1})")
    zone = zone_named(tz)
    first = date(year, month, 1)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return Period(_midnight(first, zone), _midnight(following, zone), f"{year:04d}-{month:02d}", True, tz)


def range_period(since: date, until: date, tz: str = "UTC") -> Period:
    """From the start of `since` to the end of `until` (both days included), in `tz`."""
    if until < since:
        raise InvalidInput("until", f"{until} is before --since {since}")
    if (until - since).days >= MAX_DAYS:
        raise InvalidInput("since", f"the range spans {(until - since).days + 1} days (at most {MAX_DAYS})")
    zone = zone_named(tz)
    return Period(_midnight(since, zone), _midnight(until + timedelta(days=1), zone), f"{since} – {until}", False, tz)


def current_month(tz: str = "UTC", now: datetime | None = None) -> Period:
    local = (now or datetime.now(UTC)).astimezone(zone_named(tz))
    return month_period(f"{local:%Y-%m}", tz)


# --- SQL per dialect ----------------------------------------------------------------------


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

    def week_index(self, column: str, since: datetime) -> str:
        p = self.param(since)
        if self.pg:
            return f"FLOOR(EXTRACT(EPOCH FROM ({column} - {p})) / 604800)::int"
        return f"CAST((julianday({column}) - julianday({p})) / 7 AS INTEGER)"

    @staticmethod
    def in_list(values: list[str]) -> str:
        """Constant names (enum values) inlined: a parameter used twice would shift SQLite's '?'."""
        assert all(re.fullmatch(r"[a-z_]+", v) for v in values)
        return "(" + ", ".join(f"'{v}'" for v in values) + ")"


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


async def _cube(conn: BaseDBAsyncClient, period: Period) -> list[dict[str, Any]]:
    """One pass over the period's incidents: sums and counts per (week, severity, root cause).

    Every figure of the report is a sum over some of these groups (at most a few thousand
    rows), so means stay exact (sum / count) and the table is read once. The inner query turns
    each incident into a few numbers first (materialised, so SQLite's GROUP BY sorts small
    records instead of the timestamps' text).
    """
    q = _Sql(conn)
    week = q.week_index("i.created_at", period.since)
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
            WHERE {column} >= {since} AND {column} < {until}
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


async def _went_public_before_resolution(conn: BaseDBAsyncClient, period: Period) -> int:
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
          AND NOT i.false_positive AND i.source IN {q.in_list(MONITORING_SOURCES)}
    """
    rows = await _fetch(conn, sql, q.values)
    return int(rows[0]["n"] or 0)


# --- assembling the report ----------------------------------------------------------------


def _mean(total: Any, count: Any) -> float | None:
    count = int(count or 0)
    return round(float(total) / count, 3) if count and total is not None else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _change(current: float | None, previous: float | None) -> float | None:
    if current is None or previous is None or previous == 0:
        return None
    return round(100.0 * (current - previous) / previous, 2)


SUM_KEYS = (
    "incidents",
    "false_positives",
    "resolved",
    "ttr_sum",
    "acked",
    "tta_sum",
    "detected",
    "ttd_sum",
    "monitored",
    "monitored_resolved",
    "customer_sum",
    "customer_n",
    "team_sum",
    "team_n",
)
COUNT_KEYS = {"incidents", "false_positives", "resolved", "acked", "detected", "monitored", "monitored_resolved", "customer_n", "team_n"}


def _add(into: dict[str, Any], row: dict[str, Any]) -> None:
    for k in SUM_KEYS:
        value = row[k] or 0
        into[k] = into.get(k, 0) + (int(value) if k in COUNT_KEYS else float(value))


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-severity figures and the period's totals, summed from the cube's groups."""
    totals: dict[str, Any] = {k: 0 for k in SUM_KEYS}
    per: dict[str, dict[str, Any]] = {s: {k: 0 for k in SUM_KEYS} for s in SEVERITIES}
    for r in rows:
        _add(totals, r)
        _add(per.setdefault(r["severity"], {k: 0 for k in SUM_KEYS}), r)
    by_severity = {
        sev: {
            "incidents": r["incidents"],
            "false_positives": r["false_positives"],
            "resolved": r["resolved"],
            "mttr_seconds": _mean(r["ttr_sum"], r["resolved"]),
            "mtta_seconds": _mean(r["tta_sum"], r["acked"]),
            "mttd_seconds": _mean(r["ttd_sum"], r["detected"]),
        }
        for sev, r in per.items()
    }
    return {"totals": totals, "by_severity": by_severity}


def _root_cause_shares(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for r in rows:
        if r["category"] is not None:
            counts[r["category"]] = counts.get(r["category"], 0) + int(r["resolved"])
    whole = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda c: (-c[1], c[0]))
    return [{"category": c, "count": n, "percent": _percent(n, whole)} for c, n in ordered]


def _direction(change: float | None, current: float | None, previous: float | None, up: str, down: str) -> str:
    if current is None or previous is None:
        return "no data"
    if previous == 0:
        return "stable" if current == 0 else up
    if change is None or abs(change) < STABLE_PERCENT:
        return "stable"
    return up if change > 0 else down


async def build_report(period: Period, *, compare: bool = True) -> dict[str, Any]:
    """The analytics report for `period` (and its comparison with the previous period)."""
    conn = connections.get("default")
    cube = await _cube(conn, period)
    current = _summarise(cube)
    t = current["totals"]
    prevented = t["monitored_resolved"] - await _went_public_before_resolution(conn, period)
    mttr = _mean(t["ttr_sum"], t["resolved"])
    report: dict[str, Any] = {
        "period": period.as_dict(),
        "total_incidents": t["incidents"],
        "false_positives": t["false_positives"],
        "false_positive_rate": _percent(t["false_positives"], t["incidents"]),
        "resolved": t["resolved"],
        "average_resolution_seconds": mttr,
        "by_severity": current["by_severity"],
        "kpis": {
            "mttd_seconds": _mean(t["ttd_sum"], t["detected"]),
            "mtta_seconds": _mean(t["tta_sum"], t["acked"]),
            "mttr_seconds": mttr,
            "prevention_rate": _percent(prevented, t["monitored"]),
            "monitoring_detected": t["monitored"],
            "prevented": prevented,
            "customer_satisfaction": _mean(t["customer_sum"], t["customer_n"]),
            "customer_ratings": t["customer_n"],
            "team_satisfaction": _mean(t["team_sum"], t["team_n"]),
            "team_ratings": t["team_n"],
        },
    }
    report["root_causes"] = _root_cause_shares(cube)
    report["weekly"] = _weeks(period, cube)
    if compare:
        prev_period = period.previous()
        prev = _summarise(await _cube(conn, prev_period))["totals"]
        prev_mttr = _mean(prev["ttr_sum"], prev["resolved"])
        rate = t["incidents"] / period.days if period.days else None
        prev_rate = prev["incidents"] / prev_period.days if prev_period.days else None
        freq_change = _change(rate, prev_rate)
        ttr_change = _change(mttr, prev_mttr)
        report["previous_period"] = prev_period.as_dict()
        report["trends"] = {
            "incident_frequency": {
                "current": t["incidents"],
                "previous": prev["incidents"],
                "current_per_day": _round(rate, 4),
                "previous_per_day": _round(prev_rate, 4),
                "change_percent": freq_change,
                "direction": _direction(freq_change, rate, prev_rate, "increasing", "decreasing"),
            },
            "resolution_time": {
                "current_seconds": mttr,
                "previous_seconds": prev_mttr,
                "change_percent": ttr_change,
                # A longer resolution time is worse.
                "direction": _direction(ttr_change, mttr, prev_mttr, "worsening", "improving"),
            },
        }
    return report


def _weeks(period: Period, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seven-day buckets from the period's start (the last one may be shorter)."""
    count = max(1, math.ceil((period.until - period.since).total_seconds() / 604800))
    weeks: list[dict[str, Any]] = [
        {
            "week_start": (period.since + timedelta(days=7 * i)).isoformat(),
            **{s: 0 for s in SEVERITIES},
            "total": 0,
            "_resolved": 0,
            "_ttr": 0.0,
        }
        for i in range(count)
    ]
    for r in rows:
        i = int(r["week"])
        if not 0 <= i < count:
            continue
        w = weeks[i]
        w[r["severity"]] = w.get(r["severity"], 0) + int(r["incidents"])
        w["total"] += int(r["incidents"])
        w["_resolved"] += int(r["resolved"] or 0)
        w["_ttr"] += float(r["ttr_sum"] or 0)
    for w in weeks:
        w["mttr_seconds"] = _mean(w.pop("_ttr"), w.pop("_resolved"))
    return weeks


# --- formatting helpers shared by the CLI and the console ----------------------------------


def trend_arrow(direction: str) -> str:
    return {"increasing": "↑", "decreasing": "↓", "improving": "↓", "worsening": "↑", "stable": "→"}.get(direction, "·")
