"""The analytics report's charts as small hand-written SVG, for the HTML and Markdown reports.

The terminal draws the same three charts with plotext (pulseguard_tui.charts), which the engine
cannot import; SVG needs no library. Every bar and point carries a <title> with its figure, so
the numbers are readable on hover and by a screen reader, and `data-value` for tools.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_FILL = {"critical": "#d62728", "high": "#ff7f0e", "medium": "#e8c21a", "low": "#17becf"}
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 32, 40


def _svg(title: str, body: list[str], height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
            f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">'
            f"<title>{escape(title)}</title>"
            f'<text x="{WIDTH / 2:g}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{escape(title)}</text>'
            + "".join(body) + "</svg>\n")


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


def _y_axis(top: float, plot_h: float, unit: str = "") -> list[str]:
    out = []
    for i in range(5):
        v = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}{unit}</text>')
    return out


def _week_label(week: dict[str, Any]) -> str:
    return datetime.fromisoformat(week["week_start"]).strftime("%m-%d")


def weekly_by_severity(report: dict[str, Any]) -> str:
    """Stacked bars: incidents per week, one colour per severity, with a legend."""
    weeks = report["weekly"]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max((sum(w[s] for s in SEVERITIES) for w in weeks), default=0), whole=True)
    body = _y_axis(top, plot_h)
    slot = plot_w / max(len(weeks), 1)
    bar = slot * 0.6
    for i, w in enumerate(weeks):
        x = LEFT + slot * i + (slot - bar) / 2
        base = TOP + plot_h
        for s in SEVERITIES:
            if not w[s]:
                continue
            h = plot_h * w[s] / top
            base -= h
            body.append(f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{SEVERITY_FILL[s]}" '
                        f'data-week="{escape(w["week_start"])}" data-severity="{s}" data-value="{w[s]}">'
                        f"<title>week of {_week_label(w)}: {w[s]} {s}</title></rect>")
        body.append(f'<text x="{x + bar / 2:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{_week_label(w)}</text>')
    for n, s in enumerate(SEVERITIES):
        x = LEFT + n * 90
        body.append(f'<rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" fill="{SEVERITY_FILL[s]}"/>'
                    f'<text x="{x + 14}" y="{HEIGHT - 7}">{s}</text>')
    return _svg("Incidents per week by severity", body)


def mttr_trend(report: dict[str, Any]) -> str:
    """A line of the mean time to resolve per week, in hours (weeks with nothing resolved are gaps)."""
    weeks = report["weekly"]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    points = [(i, w["mttr_seconds"] / 3600) for i, w in enumerate(weeks) if w["mttr_seconds"] is not None]
    top = _nice_max(max((v for _, v in points), default=0))
    body = _y_axis(top, plot_h, " h")
    slot = plot_w / max(len(weeks), 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return LEFT + slot * i + slot / 2, TOP + plot_h - plot_h * v / top

    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in points))
        body.append(f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for i, v in points:
        x, y = xy(i, v)
        body.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#1f77b4" data-week="{escape(weeks[i]["week_start"])}" '
                    f'data-value="{v:.3f}"><title>week of {_week_label(weeks[i])}: MTTR {v:.2f} h</title></circle>')
    for i, w in enumerate(weeks):
        body.append(f'<text x="{LEFT + slot * i + slot / 2:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{_week_label(w)}</text>')
    if not points:
        body.append(f'<text x="{WIDTH / 2:g}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" fill="#666">nothing resolved</text>')
    return _svg("MTTR per week (hours)", body)


def root_causes(report: dict[str, Any]) -> str:
    """Horizontal bars: share of resolved incidents per root-cause category."""
    causes = report["root_causes"]
    row = 22
    height = TOP + max(len(causes), 1) * row + 16
    label_w = 130
    plot_w = WIDTH - label_w - RIGHT - 50
    body: list[str] = []
    for n, c in enumerate(causes):
        y = TOP + n * row
        pct = c["percent"] or 0.0
        w = plot_w * pct / 100
        body.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(c["category"])}</text>')
        body.append(f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#9467bd" '
                    f'data-category="{escape(c["category"])}" data-value="{pct:.1f}">'
                    f'<title>{escape(c["category"])}: {c["count"]} ({pct:.1f}%)</title></rect>')
        body.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{c["count"]} · {pct:.1f}%</text>')
    if not causes:
        body.append(f'<text x="{WIDTH / 2:g}" y="{TOP + 14}" text-anchor="middle" fill="#666">nothing resolved</text>')
    return _svg("Root causes (% of resolved)", body, height)


# (file stem, title, draw) in the order the report shows them.
CHARTS = (
    ("weekly", "Incidents per week by severity", weekly_by_severity),
    ("mttr", "MTTR per week (hours)", mttr_trend),
    ("root-causes", "Root causes (% of resolved)", root_causes),
)
