"""The analytics report of a period, summed from the queries' groups (definitions: the package's docstring)."""

from __future__ import annotations

from typing import Any

from tortoise import connections

from engine.core.clock import utcnow
from engine.core.domain import SEVERITY_ORDER
from engine.learning.analytics.periods import Period
from engine.learning.analytics.queries import period_cube, went_public_before_resolution

STABLE_PERCENT = 5.0
SEVERITIES = [s.value for s in SEVERITY_ORDER]


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
    cube = await period_cube(conn, period)
    current = _summarise(cube)
    t = current["totals"]
    prevented = t["monitored_resolved"] - await went_public_before_resolution(conn, period)
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
        prev = _summarise(await period_cube(conn, prev_period))["totals"]
        prev_mttr = _mean(prev["ttr_sum"], prev["resolved"])
        # The current month so far, not the days still to come (a period yet to begin: all of them).
        days = period.days_begun(utcnow()) or period.days
        rate = t["incidents"] / days if days else None
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
    """Seven-day buckets from the period's first day (the last one may be shorter); each
    starts at midnight in the period's zone, and says so with its offset."""
    starts = period.week_starts()
    count = len(starts)
    weeks: list[dict[str, Any]] = [
        {
            "week_start": starts[i].isoformat(),
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
