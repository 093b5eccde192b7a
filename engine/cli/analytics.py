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

from engine.cli.common import EXIT_OK, Context, UsageError, named_as_typed, parse_date, whole_number
from engine.learning.analytics.text import format_report

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
        with named_as_typed({"month": "--month"}):
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
        with named_as_typed({"since": "--since", "until": "--until"}):
            return analytics.range_period(since, until, tz)
    return analytics.current_month(tz)


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
    known = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json", ".txt": "text", ".text": "text", "": "text"}
    if suffix not in known:  # `-o report.pdf` wrote plain text under a name that promised a PDF
        raise UsageError(f"-o: cannot write a {suffix} file; name it .txt, .html, .md or .json, or give --format text|html|md|json")
    return known[suffix]


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
    if path is not None:
        # Plain text in the file; the charts are drawn for a terminal only.
        _write(path, format_report(report) + "\n")
        print(f"report {report['period']['label']} written to {path}", file=sys.stderr)
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
