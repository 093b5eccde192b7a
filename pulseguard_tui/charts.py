"""Charts drawn with plotext: analytics for the `report` command and the Analytics screen, and
the metrics around an incident's start for the Correlation tab.

Each `draw_*` function draws one chart of an analytics report (engine.learning.analytics.build_report)
on a plotext figure: the `plotext` module itself for the command line, or a PlotextPlot's
`plt` in the console. plotext is imported only when a chart is drawn.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_COLORS = {"critical": "red", "high": "orange", "medium": "yellow", "low": "cyan"}
# Shades tell the severities apart without colour too (NO_COLOR, monochrome themes).
SEVERITY_MARKERS = {"critical": "█", "high": "▓", "medium": "▒", "low": "░"}


def _week_labels(report: dict[str, Any]) -> list[str]:
    return [datetime.fromisoformat(w["week_start"]).strftime("%m-%d") for w in report["weekly"]]


def _sparse_ticks(plt: Any, labels: list[str], width: int) -> None:
    """At most one week label per ~8 columns, so the axis stays readable when narrow."""
    step = max(1, (len(labels) * 8) // max(width - 10, 8))
    positions = list(range(1, len(labels) + 1))
    plt.xticks(positions[::step], labels[::step])


def draw_weekly_by_severity(plt: Any, report: dict[str, Any], width: int = 80) -> None:
    weeks = report["weekly"]
    labels = _week_labels(report)
    present = [s for s in SEVERITIES if any(w[s] for w in weeks)] or ["critical"]
    positions = list(range(1, len(weeks) + 1))
    plt.stacked_bar(
        positions,
        [[w[s] for w in weeks] for s in present],
        labels=present,
        color=[SEVERITY_COLORS[s] for s in present],
        marker=[SEVERITY_MARKERS[s] for s in present],
    )
    _sparse_ticks(plt, labels, width)
    plt.title("Incidents per week by severity")


def draw_mttr_trend(plt: Any, report: dict[str, Any], width: int = 80) -> None:
    weeks = report["weekly"]
    labels = _week_labels(report)
    points = [(i + 1, w["mttr_seconds"] / 3600) for i, w in enumerate(weeks) if w["mttr_seconds"] is not None]
    if points:
        plt.plot([p[0] for p in points], [p[1] for p in points], marker="dot", color="blue", label="MTTR (h)")
    plt.xlim(0.5, len(weeks) + 0.5)
    _sparse_ticks(plt, labels, width)
    plt.title("MTTR per week (hours)" if points else "MTTR per week: nothing resolved")


def draw_root_causes(plt: Any, report: dict[str, Any], width: int = 80) -> None:
    causes = list(reversed(report["root_causes"]))  # plotext draws the first bar at the bottom
    if causes:
        plt.bar([c["category"] for c in causes], [c["percent"] for c in causes], orientation="horizontal", color="magenta", width=0.6)
    plt.title("Root causes (% of resolved)" if causes else "Root causes: nothing resolved")


def draw_correlation(
    plt: Any, start: datetime, series: dict[str, list[tuple[datetime, float]]], labels: dict[str, str] | None = None
) -> None:
    """One panel per series (their units differ: milliseconds, connections, percent), minutes from
    the incident's start on the x axis and the start marked by a vertical line."""
    labels = labels or {}
    plotted = [(name, points) for name, points in series.items() if points]
    plt.clear_figure()
    if not plotted:
        plt.title("no metrics around the start")
        return
    plt.subplots(len(plotted), 1)
    for row, (name, points) in enumerate(plotted, 1):
        panel = plt.subplot(row, 1)
        xs = [(at - start).total_seconds() / 60 for at, _ in points]
        panel.plot(xs, [v for _, v in points], label=name, marker="braille")
        panel.vline(0)
        panel.title(f"{name}: {labels[name]}" if labels.get(name) else name)
        if row == len(plotted):
            panel.xlabel("minutes from start")


CHARTS = (draw_weekly_by_severity, draw_mttr_trend, draw_root_causes)


def render_report_charts(report: dict[str, Any], width: int) -> str:
    """The three charts as terminal text (colour only on a terminal without NO_COLOR)."""
    if not report.get("total_incidents") and not any(any(w[s] for s in SEVERITIES) for w in report["weekly"]):
        return "(no incidents in this period: nothing to chart)"
    import plotext as plt

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    width = max(40, width)
    out = []
    for draw in CHARTS:
        plt.clear_figure()
        plt.theme("pro" if colour else "clear")
        height = 8 + len(report["root_causes"]) if draw is draw_root_causes else 15
        plt.plotsize(width, height)
        draw(plt, report, width)
        text = plt.build()
        out.append(text if colour else plt.uncolorize(text))
    plt.clear_figure()
    return "\n".join(out)
