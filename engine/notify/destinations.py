"""Destination strings, without importing any channel (the change hook runs in every process)."""

from __future__ import annotations


def describe(destination: str) -> str:
    """How a destination reads in the timeline: '#incidents', 'alice@example.com', 'PagerDuty'."""
    kind, _, value = destination.partition(":")
    if kind == "pagerduty":
        return f"PagerDuty ({value})" if value else "PagerDuty"
    if kind == "slack" and value and not value.startswith("#"):
        return f"Slack DM {value}"
    if kind == "jira":
        return "Jira"
    if kind == "webhook":
        return f"webhook {value}"
    return value or destination
