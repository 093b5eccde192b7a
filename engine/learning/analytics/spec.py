"""The analytics report as the specification writes it: its `analytics` block (monthly_stats,
trends) and its `kpis` block, with durations in words ("2.5 hours") and rates as "85%". What a
dashboard built from the specification's examples reads (`GET /api/analytics?view=spec`)."""

from __future__ import annotations

from typing import Any

from engine.learning.analytics.report import SEVERITIES


def spoken(seconds: float | None) -> str | None:
    """45 → "45 seconds", 2700 → "45 minutes", 9000 → "2.5 hours", 7200 → "2 hours"."""
    if seconds is None:
        return None
    for unit, size, below in (("second", 1, 90), ("minute", 60, 90 * 60), ("hour", 3600, 48 * 3600), ("day", 86400, None)):
        if below is None or seconds < below:
            value = round(seconds / size, 1) if unit in ("hour", "day") else round(seconds / size)
            text = f"{value:g}"
            return f"{text} {unit}{'' if text == '1' else 's'}"
    return None  # not reached: the last unit has no bound


def _rate(percent: float | None) -> str | None:
    return None if percent is None else f"{percent:g}%"


def spec_view(report: dict[str, Any]) -> dict[str, Any]:
    """`{"analytics": {"monthly_stats": …, "trends": …}, "kpis": …}` of a build_report result
    (a value without data is null; mttr_by_severity names the severities resolved in the period)."""
    by = report.get("by_severity") or {}
    trends = report.get("trends") or {}
    kpis = report.get("kpis") or {}
    causes = [
        f"{c['category'].replace('_', ' ').capitalize()} ({c['percent']:g}%)" for c in report.get("root_causes") or [] if c.get("percent")
    ]
    return {
        "period": report.get("period"),
        "analytics": {
            "monthly_stats": {
                "total_incidents": report.get("total_incidents", 0),
                "average_resolution_time": spoken(report.get("average_resolution_seconds")),
                "mttr_by_severity": {
                    s: spoken(by[s]["mttr_seconds"]) for s in SEVERITIES if s in by and by[s].get("mttr_seconds") is not None
                },
                "false_positives": report.get("false_positives", 0),
            },
            "trends": {
                "incident_frequency": (trends.get("incident_frequency") or {}).get("direction"),
                "resolution_time": (trends.get("resolution_time") or {}).get("direction"),
                "common_root_causes": causes[:5],
            },
        },
        "kpis": {
            "mean_time_to_detect": spoken(kpis.get("mttd_seconds")),
            "mean_time_to_acknowledge": spoken(kpis.get("mtta_seconds")),
            "mean_time_to_resolve": spoken(kpis.get("mttr_seconds")),
            "incident_prevention_rate": _rate(kpis.get("prevention_rate")),
            "customer_satisfaction": kpis.get("customer_satisfaction"),
            "team_satisfaction": kpis.get("team_satisfaction"),
        },
    }
