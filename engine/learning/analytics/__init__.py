"""Incident analytics: totals, MTTR by severity, KPIs, trends and root causes for a period.

Every figure is aggregated by the database: one GROUP BY pass per period over (week, severity,
root cause), written once with a small dialect helper for SQLite and PostgreSQL, so a yearly
report over 100,000 incidents reads at most a few thousand group rows into Python. Definitions (also in the README, section Analytics):

- An incident belongs to a period when it was *created* in it: [since, until). One merged into
  another is left out (the survivor counts the outage once).
- Time KPIs ignore false positives: MTTD = created_at − detected_at, MTTA = acknowledged_at −
  created_at, MTTR = resolved_at − created_at (resolved incidents only).
- Root-cause shares: resolved, non-false-positive incidents of the period by category.
- Incident prevention rate: of the non-false-positive incidents that monitoring detected
  (source threshold, anomaly, pattern or alert), the share that were resolved before any public
  status update was posted for them, i.e. fixed before they became public on the status page.
- Trends compare with the previous period (the calendar month before for a month, otherwise
  as many calendar days just before): frequency in incidents per day, resolution time by MTTR;
  a change smaller than STABLE_PERCENT either way is "stable".

- periods: Period, month and day ranges in a time zone
- queries: the aggregated SQL per dialect
- report: the report assembled from the groups, and trend arrows
"""

from engine.learning.analytics.periods import MAX_DAYS, Period, current_month, month_period, range_period, zone_named
from engine.learning.analytics.report import SEVERITIES, STABLE_PERCENT, build_report, trend_arrow

__all__ = [
    "MAX_DAYS",
    "SEVERITIES",
    "STABLE_PERCENT",
    "Period",
    "build_report",
    "current_month",
    "month_period",
    "range_period",
    "trend_arrow",
    "zone_named",
]
