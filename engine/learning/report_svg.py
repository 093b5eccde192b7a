"""The analytics report as an HTML page, and its charts as small SVG, for the HTML and Markdown
reports. The geometry is computed here; the markup is in Jinja2 templates (templates/report/),
rendered with autoescape on, so a root-cause category or any other text is always escaped.

The terminal draws the same three charts with plotext (pulseguard_tui.charts), which the engine
cannot import; SVG needs no library. Every bar and point carries a <title> with its figure, so
the numbers are readable on hover and by a screen reader, and `data-value` for tools.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup

from engine.core.templating import environment

SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_FILL = {"critical": "#d62728", "high": "#ff7f0e", "medium": "#e8c21a", "low": "#17becf"}
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 32, 40

templates = environment(__file__)
templates.globals.update(
    width=WIDTH, left=LEFT, right=WIDTH - RIGHT, top=TOP, middle=f"{WIDTH / 2:g}", severities=SEVERITIES, fills=SEVERITY_FILL
)


def _svg(template: str, title: str, height: int = HEIGHT, **shapes: Any) -> str:
    return templates.get_template(f"report/{template}").render({"grid": [], **shapes}, title=title, height=height)


def _nice_max(value: float, whole: bool = False) -> float:
    """The axis top, at least `value`, whose quarters (the grid lines) read cleanly: 1, 2, 4 or 8
    times a power of ten; with `whole` (counts) a multiple of 4, so every grid line is a whole number."""
    if whole:
        return float(max(4, -(-int(value) // 4) * 4))
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 < value:
        step *= 10
    while step > value:
        step /= 10
    for m in (1, 2, 4, 8, 10):
        if step * m >= value:
            return step * m
    return step * 10


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _y_axis(top: float, plot_h: float, unit: str = "") -> list[dict[str, str]]:
    """Five horizontal grid lines with their figures."""
    lines = []
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        lines.append({"y": f"{y:.1f}", "label_y": f"{y + 4:.1f}", "label": f"{_fmt(top * i / 4)}{unit}"})
    return lines


def _week_label(week: dict[str, Any]) -> str:
    return datetime.fromisoformat(week["week_start"]).strftime("%m-%d")


def weekly_by_severity(report: dict[str, Any]) -> str:
    """Stacked bars: incidents per week, one colour per severity, with a legend."""
    weeks = report["weekly"]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max((sum(w[s] for s in SEVERITIES) for w in weeks), default=0), whole=True)
    slot = plot_w / max(len(weeks), 1)
    bar = slot * 0.6
    columns = []
    for i, w in enumerate(weeks):
        x = LEFT + slot * i + (slot - bar) / 2
        base = TOP + plot_h
        stack = []
        for s in SEVERITIES:
            if not w[s]:
                continue
            h = plot_h * w[s] / top
            base -= h
            stack.append({"severity": s, "value": w[s], "y": f"{base:.1f}", "height": f"{h:.1f}"})
        columns.append({"week": w["week_start"], "label": _week_label(w), "x": f"{x:.1f}", "middle": f"{x + bar / 2:.1f}", "stack": stack})
    return _svg(
        "weekly.svg",
        "Incidents per week by severity",
        grid=_y_axis(top, plot_h),
        columns=columns,
        bar=f"{bar:.1f}",
        axis_y=TOP + plot_h + 14,
    )


def mttr_trend(report: dict[str, Any]) -> str:
    """A line of the mean time to resolve per week, in hours (weeks with nothing resolved are gaps)."""
    weeks = report["weekly"]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    hours = [(i, w["mttr_seconds"] / 3600) for i, w in enumerate(weeks) if w["mttr_seconds"] is not None]
    top = _nice_max(max((v for _, v in hours), default=0))
    slot = plot_w / max(len(weeks), 1)
    points = [
        {
            "x": f"{LEFT + slot * i + slot / 2:.1f}",
            "y": f"{TOP + plot_h - plot_h * v / top:.1f}",
            "week": weeks[i]["week_start"],
            "label": _week_label(weeks[i]),
            "value": f"{v:.3f}",
            "hours": f"{v:.2f}",
        }
        for i, v in hours
    ]
    labels = [{"middle": f"{LEFT + slot * i + slot / 2:.1f}", "label": _week_label(w)} for i, w in enumerate(weeks)]
    return _svg(
        "mttr.svg",
        "MTTR per week (hours)",
        grid=_y_axis(top, plot_h, " h"),
        points=points,
        weeks=labels,
        axis_y=TOP + plot_h + 14,
        empty_y=f"{TOP + plot_h / 2:.1f}",
    )


def root_causes(report: dict[str, Any]) -> str:
    """Horizontal bars: share of resolved incidents per root-cause category."""
    causes = report["root_causes"]
    row = 22
    label_w = 130
    plot_w = WIDTH - label_w - RIGHT - 50
    bars = []
    for n, c in enumerate(causes):
        pct = c["percent"] or 0.0
        w = plot_w * pct / 100
        bars.append(
            {
                "category": c["category"],
                "count": c["count"],
                "percent": f"{pct:.1f}",
                "y": TOP + n * row,
                "width": f"{w:.1f}",
                "after": f"{label_w + w + 4:.1f}",
            }
        )
    return _svg(
        "root_causes.svg", "Root causes (% of resolved)", TOP + max(len(causes), 1) * row + 16, causes=bars, row=row, label_w=label_w
    )


# (file stem, title, draw) in the order the report shows them.
CHARTS = (
    ("weekly", "Incidents per week by severity", weekly_by_severity),
    ("mttr", "MTTR per week (hours)", mttr_trend),
    ("root-causes", "Root causes (% of resolved)", root_causes),
)


def report_page(report: dict[str, Any], text: str) -> str:
    """A self-contained HTML page: the report's figures (`text`) and the three charts as inline SVG."""
    # The charts are markup this module's templates rendered (and escaped) already.
    charts = [Markup(draw(report)) for _, _, draw in CHARTS]
    return templates.get_template("report/page.html").render(title=f"Incident report {report['period']['label']}", text=text, charts=charts)
