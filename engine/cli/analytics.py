"""CLI: `report`, incident analytics for a month or a date range.

Terminal charts are drawn by the console package (plotext), which the engine must not import.
The entry point plugs a renderer in with `set_chart_renderer`; without one, `report` prints
the same figures as tables only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.cli.common import EXIT_OK, Context, UsageError, parse_date, whole_number

ChartRenderer = Callable[[dict[str, Any], int], str]
_chart_renderer: ChartRenderer | None = None


def set_chart_renderer(renderer: ChartRenderer | None) -> None:
    """Install `renderer(report, width) -> text` used by `pulseguard report` for its charts."""
    global _chart_renderer
    _chart_renderer = renderer


def _timezone(ctx: Context) -> str:
    engine = getattr(ctx.config, "engine", None)
    return str(getattr(engine, "timezone", None) or "UTC")


# --- report -------------------------------------------------------------------------------


def period_from_args(args: argparse.Namespace, tz: str) -> Any:
    from engine.learning import analytics

    if args.month and (args.since or args.until):
        raise UsageError("give either --month or --since/--until, not both")
    if args.month:
        return analytics.month_period(args.month, tz)
    if args.until and not args.since:
        raise UsageError("--until needs --since")
    if args.since:
        since = parse_date(args.since, "--since")
        if args.until:
            until = parse_date(args.until, "--until")
        else:
            from datetime import datetime

            until = datetime.now(analytics.zone_named(tz)).date()
        return analytics.range_period(since, until, tz)
    return analytics.current_month(tz)


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned plain text (what `pulseguard report` prints above its charts)."""
    from engine.core.durations import format_span as hd
    from engine.learning.analytics import trend_arrow

    p = report["period"]
    out = [f"Incident report {p['label']} ({p['timezone']})"]
    trends = report.get("trends")
    if trends:
        out.append(f"compared with {report['previous_period']['label']}")
    out.append("")
    freq = ""
    ttr = ""
    if trends:
        f, r = trends["incident_frequency"], trends["resolution_time"]
        pct = f" {f['change_percent']:+.1f}%" if f["change_percent"] is not None else ""
        freq = f"  {trend_arrow(f['direction'])} {f['direction']}: {f['current_per_day']:.2f}/day vs {f['previous_per_day']:.2f}/day{pct}"
        pct = f" {r['change_percent']:+.1f}%" if r["change_percent"] is not None else ""
        if r["direction"] == "no data":
            ttr = "  (nothing resolved to compare with)" if r["current_seconds"] is not None else ""
        else:
            ttr = f"  {trend_arrow(r['direction'])} {r['direction']} vs {hd(r['previous_seconds'])}{pct}"
    fp_rate = f" ({report['false_positive_rate']:.1f}%)" if report["false_positive_rate"] is not None else ""
    rows = [
        ("Incidents", f"{report['total_incidents']}{freq}"),
        ("False positives", f"{report['false_positives']}{fp_rate}"),
        ("Resolved", str(report["resolved"])),
        ("Avg resolution", f"{hd(report['average_resolution_seconds'])}{ttr}"),
    ]
    out += [f"  {k:<16}{v}" for k, v in rows]
    out += ["", "By severity", f"  {'SEVERITY':<10}{'INCIDENTS':>10}{'FALSE POS':>10}{'RESOLVED':>10}{'MTTR':>10}{'MTTA':>10}{'MTTD':>10}"]
    for sev, s in report["by_severity"].items():
        out.append(
            f"  {sev:<10}{s['incidents']:>10}{s['false_positives']:>10}{s['resolved']:>10}"
            f"{hd(s['mttr_seconds']):>10}{hd(s['mtta_seconds']):>10}{hd(s['mttd_seconds']):>10}"
        )
    k = report["kpis"]
    prevention = (
        f"{k['prevention_rate']:.1f}% ({k['prevented']} of {k['monitoring_detected']} detected by monitoring)"
        if k["prevention_rate"] is not None
        else "- (no incident detected by monitoring)"
    )
    cust = (
        f"{k['customer_satisfaction']:.2f}/5 ({k['customer_ratings']} ratings)"
        if k["customer_satisfaction"] is not None
        else "- (no ratings)"
    )
    team = f"{k['team_satisfaction']:.2f}/5 ({k['team_ratings']} ratings)" if k["team_satisfaction"] is not None else "- (no ratings)"
    out += ["", "KPIs"]
    out += [
        f"  {a:<26}{b}"
        for a, b in (
            ("mean time to detect", hd(k["mttd_seconds"])),
            ("mean time to acknowledge", hd(k["mtta_seconds"])),
            ("mean time to resolve", hd(k["mttr_seconds"])),
            ("incident prevention rate", prevention),
            ("customer satisfaction", cust),
            ("team satisfaction", team),
        )
    ]
    out += ["", "Root causes"]
    if report["root_causes"]:
        width = max(len(c["category"]) for c in report["root_causes"])
        for c in report["root_causes"]:
            bar = "#" * max(1, round((c["percent"] or 0) / 5))
            out.append(f"  {c['category']:<{width}}  {c['count']:>6}  {c['percent']:>5.1f}%  {bar}")
    else:
        out.append("  (no resolved incidents)")
    return "\n".join(out)


def report_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: the figures and the three charts as inline SVG."""
    from engine.learning.report_svg import report_page

    return report_page(report, format_report(report))


def report_markdown(report: dict[str, Any], chart_files: dict[str, str]) -> str:
    """Markdown with the figures, referencing each chart's .svg file (written beside it)."""
    from engine.learning.report_svg import CHARTS

    out = [f"# Incident report {report['period']['label']}", "", "```", format_report(report), "```", "", "## Charts", ""]
    out += [f"![{title}]({chart_files[stem]})\n" for stem, title, _ in CHARTS]
    return "\n".join(out)


def _write(path: Path, text: str, flag: str = "-o") -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write {path}: {exc.strerror}") from None


def _report_format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lower() if args.output else ""
    return {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}.get(suffix, "text")


async def _report(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import analytics

    fmt = "json" if ctx.json else _report_format(args)
    path = Path(args.output).expanduser() if args.output else None
    if path is not None and not path.parent.is_dir():
        raise UsageError(f"-o: the directory {path.parent} does not exist")
    if fmt == "md" and path is None:
        raise UsageError("--format md needs -o FILE.md (its charts are written beside it as .svg files)")
    period = period_from_args(args, _timezone(ctx))
    report = await analytics.build_report(period)
    if fmt in ("json", "html", "md"):
        if fmt == "json":
            import json

            text = json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n"
        elif fmt == "html":
            text = report_html(report)
        else:
            from engine.learning.report_svg import CHARTS

            assert path is not None
            files = {stem: f"{path.stem}-{stem}.svg" for stem, _, _ in CHARTS}
            for stem, _, draw in CHARTS:
                _write(path.with_name(files[stem]), draw(report))
            text = report_markdown(report, files)
        if path is None:
            sys.stdout.write(text)
        else:
            _write(path, text)
            extra = " with its charts beside it" if fmt == "md" else ""
            print(f"report {report['period']['label']} written to {path}{extra}", file=sys.stderr)
        return EXIT_OK
    print(format_report(report))
    if _chart_renderer is not None and not args.no_charts:
        import shutil

        width = args.width or min(shutil.get_terminal_size((100, 24)).columns, 120)
        print()
        print(_chart_renderer(report, width))
    return EXIT_OK


def register(sub: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        parents=[common],
        help="incident analytics for a month or a date range",
        description="Totals, MTTR by severity, KPIs, trends against the previous period and root causes. "
        "Without --month or --since, the current month.",
    )
    p.add_argument("--month", metavar="YYYY-MM", help="one calendar month (default: the current one)")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="first day (included)")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="last day (included; default today)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--format",
        choices=["text", "html", "md", "json"],
        help="text (default, charts drawn in the terminal), html (charts as inline SVG), "
        "md (charts as .svg files beside -o FILE) or json; default from -o's extension",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--no-charts", action="store_true", help="tables only")
    p.add_argument("--width", type=whole_number(20, 1000), help="chart width in columns")
    p.set_defaults(handler=_report, needs_db=True)
