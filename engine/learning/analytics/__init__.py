"""Incident analytics: totals, MTTR by severity, KPIs, trends and root causes for a period."""

from engine.learning.analytics.report import (
    Period,
    build_report,
    current_month,
    month_period,
    range_period,
    trend_arrow,
    zone_named,
)

__all__ = ["Period", "build_report", "current_month", "month_period", "range_period", "trend_arrow", "zone_named"]
