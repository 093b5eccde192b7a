"""How the engine shows values to a person, for every front end: times in the viewer's zone,
ages and spans, text made safe for a terminal, the analytics report as text. The console
shows exactly what the CLI prints because both call these."""

from __future__ import annotations

from typing import Any

from engine.core.durations import format_age, format_span
from engine.core.textclean import terminal_text
from engine.core.timefmt import display_zone, format_range, format_time, set_display_zone, to_zone

__all__ = [
    "audit_change",
    "audit_change_lines",
    "display_zone",
    "format_age",
    "format_range",
    "format_report",
    "format_span",
    "format_time",
    "set_display_zone",
    "terminal_text",
    "to_zone",
]


def format_report(report: dict[str, Any]) -> str:
    """An analytics report (EngineAPI.analytics_report) as aligned plain text."""
    from engine.learning.analytics.text import format_report as text  # the analytics code loads only when asked

    return text(report)


def audit_change_lines(entry: dict[str, Any]) -> list[str]:
    """An audit entry's change, one `field: old → new` per changed field (the event's own data
    left out), or its summary when no incident field changed (a comment, a token created)."""
    import json

    before, after = entry.get("before") or {}, entry.get("after") or {}
    lines = [
        f"{name}: {json.dumps(before.get(name), default=str)} → {json.dumps(after.get(name), default=str)}"
        for name in sorted(set(before) | set(after))
        if name != "event"
    ]
    return [terminal_text(line) for line in lines] or [terminal_text(str(entry.get("summary") or ""))]


def audit_change(entry: dict[str, Any]) -> str:
    """The same on one line."""
    return "; ".join(audit_change_lines(entry))
