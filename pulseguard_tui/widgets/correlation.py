"""The Correlation tab: metrics around the incident's start, drawn with plotext, and the
incidents that may be related (same services, close in time).

textual-plotext is imported only when the tab is first shown, so it costs nothing at start-up.
With the engine's correlation analysis stored on the incident, the top-ranked changed series are
charted; otherwise the response times of the incident's target and of its services' targets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from pulseguard_tui.formatting import local_time, parse_iso, severity_label

WINDOW = timedelta(minutes=30)


def series_name(target: str) -> str:
    """The response-time series of a probe target, as the engine names it."""
    return f'response_time{{target="{target}"}}'


def series_query(name: str) -> str:
    """How to ask for a series the correlation analysis names: "target/key" (a target's own
    series, e.g. "checkout-api/response_time") becomes `key{target="target"}`; a bare key (a
    pushed or host series) is asked for as it is."""
    target, sep, key = name.partition("/")
    if not sep or not target or not key:
        return name
    if key.endswith("}") and "{" in key:
        return f'{key[:-1]},target="{target}"}}'
    return f'{key}{{target="{target}"}}'


async def gather(api: Any, detail: dict[str, Any]) -> dict[str, Any]:
    """Everything the tab shows, fetched through the EngineAPI."""
    start = parse_iso(detail.get("detected_at") or detail["created_at"])
    assert start is not None
    services = set(detail.get("services") or [])
    names: list[str] = []
    if detail.get("target"):
        names.append(detail["target"])
    try:
        targets = await api.list_targets()
    except Exception:
        targets = []
    for t in targets:
        if t.get("service") in services and t["name"] not in names:
            names.append(t["name"])
    analysis = detail.get("analysis") or {}
    # With the engine's correlation analysis, chart the series whose change ranked highest.
    correlation = analysis.get("correlation") if isinstance(analysis, dict) else None
    changes = [
        c
        for c in ((correlation or {}).get("series") or [])
        if isinstance(correlation, dict)
        and isinstance(c, dict)
        and c.get("series")
        and c.get("kind", c.get("label")) not in ("stable", "no_data")
    ]
    labels = {c["series"]: str(c.get("label") or "") for c in changes[:3]}
    wanted = [(c["series"], series_query(c["series"])) for c in changes[:3]]
    if not wanted:
        wanted = [(name, series_name(name)) for name in names[:4]]
        labels = {name: "response time (ms)" for name, _ in wanted}
    series: dict[str, list[tuple[datetime, float]]] = {}
    for name, key in wanted:
        try:
            samples = await api.series_samples(key, since=start - WINDOW)
        except Exception:
            samples = []
        points = []
        for s in samples:
            at = parse_iso(s.get("at"))
            if at is not None and s.get("value") is not None and at <= start + WINDOW:
                points.append((at, float(s["value"])))
        series[name] = points
    related_keys = set(detail.get("related") or [])
    related: list[dict[str, Any]] = []
    if services or related_keys:
        rows = await api.list_incidents(include_resolved=True, since=start - timedelta(hours=24), limit=500)
        for r in rows:
            if r["key"] == detail["key"]:
                continue
            if r["key"] in related_keys or services.intersection(r.get("services") or []):
                related.append(r)
    return {"start": start, "series": series, "labels": labels, "related": related[:8], "analysis": analysis}


def analysis_lines(analysis: dict[str, Any], width: int = 100) -> list[str]:
    """What pattern recognition, correlation and the detector recorded, one line per finding."""
    if not isinstance(analysis, dict) or not analysis:
        return []
    if analysis.get("summary"):
        return [f"analysis: {analysis['summary']}"]
    out: list[str] = []
    pattern = analysis.get("pattern")
    if isinstance(pattern, dict):
        out.append(f"pattern: {pattern.get('label')} ({pattern.get('similar_count', 0)} similar in {pattern.get('period_days')} days)")
        if pattern.get("hint"):
            out.append(f"  {pattern['hint']}")
        out += [f"  recurring: {flag}" for flag in pattern.get("recurring") or []]
    correlation = analysis.get("correlation")
    if isinstance(correlation, dict):
        changed = [c for c in correlation.get("series") or [] if c.get("label") != "stable"]
        noted = f" (noted by {correlation['noted_by']})" if correlation.get("noted_by") else ""
        out.append(f"correlated metrics{noted}:" if changed else f"correlated metrics{noted}: nothing changed around the start")
        for c in changed[:5]:
            onset = f" (onset {local_time(parse_iso(c['onset']), with_date=False)})" if c.get("onset") else ""
            out.append(f"  {c['series']}: {c['label']}{onset}")
        related = [str(r.get("key")) for r in correlation.get("related_incidents") or [] if isinstance(r, dict) and r.get("key")]
        if related:
            out.append(f"  related: {', '.join(related[:8])}")
    for name, value in analysis.items():
        if name in ("pattern", "correlation"):
            continue
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={_shown(v)}" for k, v in value.items() if not isinstance(v, (list, dict)))
        else:
            shown = str(value)
        out.append(f"{name}: {shown}")
    return [line if len(line) <= width else line[: width - 1] + "…" for line in out]


def _shown(value: Any) -> str:
    """A stored value for a person: an ISO time (an anomaly's `at`) by the one time rule."""
    if isinstance(value, str) and len(value) >= 16 and value[4:5] == "-" and value[10:11] == "T":
        when = parse_iso(value)
        if when is not None:
            return local_time(when)
    return str(value)


class CorrelationView(Vertical):
    DEFAULT_CSS = """
    CorrelationView { height: 1fr; }
    CorrelationView > #corr-summary { height: auto; max-height: 10; }
    CorrelationView > #corr-plot { height: 1fr; min-height: 6; }
    """

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="corr-summary", markup=False)  # stored text may hold [brackets]

    async def show(self, data: dict[str, Any]) -> None:
        start: datetime = data["start"]
        lines = [
            f"incident start {local_time(start)}; metrics from {local_time(start - WINDOW, with_date=False)} "
            f"to {local_time(start + WINDOW, with_date=False)}"
        ]
        analysis = data.get("analysis") or {}
        lines += analysis_lines(analysis)
        if not data["series"]:
            lines.append("no metrics: this incident names no probed target (or the engine has no data yet)")
        if data["related"]:
            lines.append("related incidents:")
            for r in data["related"]:
                lines.append(f"  {r['key']} {severity_label(r['severity'])} {r['status']}  {local_time(r['created_at'])}  {r['title']}")
        elif not (isinstance(analysis.get("correlation"), dict) and analysis["correlation"].get("related_incidents")):
            # Said only when the analysis names none either: "related: INC-1" above it read as a contradiction.
            lines.append("no related incidents in the 24 h before it")
        self.query_one("#corr-summary", Static).update("\n".join(lines))
        for old in self.query("#corr-plot"):
            await old.remove()
        plotted = {k: v for k, v in data["series"].items() if v}
        if not plotted:
            return
        from textual_plotext import PlotextPlot  # imported here: ~0.2 s we do not pay at start-up

        from pulseguard_tui.charts import draw_correlation

        plot = PlotextPlot(id="corr-plot")
        await self.mount(plot)
        draw_correlation(plot.plt, start, plotted, data.get("labels") or {})
        plot.refresh()
