"""How the engine shows values to a person, for every front end: times in the viewer's zone,
ages and spans, text made safe for a terminal, the analytics report as text. The console
shows exactly what the CLI prints because both call these."""

from __future__ import annotations

from typing import Any

from engine.core.durations import format_age, format_span
from engine.core.textclean import terminal_text
from engine.core.timefmt import format_range, format_time

__all__ = ["format_age", "format_range", "format_report", "format_span", "format_time", "terminal_text"]


def format_report(report: dict[str, Any]) -> str:
    """An analytics report (EngineAPI.analytics_report) as aligned plain text."""
    from engine.learning.analytics.text import format_report as text  # the analytics code loads only when asked

    return text(report)
