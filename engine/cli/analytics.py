"""CLI: `report`, `followups`, `postmortem` and `satisfaction`.

Terminal charts are drawn by the console package (plotext), which the engine must not import.
The entry point plugs a renderer in with `set_chart_renderer`; without one, `report` prints
the same figures as tables only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.cli.common import EXIT_OK, ROW_ID, Context, UsageError, parse_date, parse_time, print_json, short_time, whole_number

ChartRenderer = Callable[[dict[str, Any], int], str]
_chart_renderer: ChartRenderer | None = None


def set_chart_renderer(renderer: ChartRenderer | None) -> None:
    """Install `renderer(report, width) -> text` used by `pulseguard report` for its charts."""
    global _chart_renderer
    _chart_renderer = renderer


def _timezone(ctx: Context) -> str:
    engine = getattr(ctx.config, "engine", None)
    return str(getattr(engine, "timezone", None) or "UTC")


def _color(text: str, code: str) -> str:
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return f"\033[{code}m{text}\033[0m"


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


# --- follow-ups ---------------------------------------------------------------------------


def format_followups(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no follow-up actions"
    header = ["", "ID", "INCIDENT", "GROUP", "ACTION", "OWNER", "DUE", "STATUS", "TICKET"]
    cells = []
    for r in rows:
        status = "done" if r["done"] else (f"OVERDUE {r['days_overdue']}d" if r["overdue"] else "open")
        action = " ".join(r["description"].split())
        cells.append(
            [
                "!" if r["overdue"] else "",
                str(r["id"]),
                r["incident"],
                r["group"],
                action if len(action) <= 40 else action[:37] + "...",
                r["owner"] or "-",
                r["due_date"] or "-",
                status,
                r["ticket_key"] or "-",
            ]
        )
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for r, c in zip(rows, cells):
        line = "  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip()
        lines.append(_color(line, "1;31") if r["overdue"] else line)
    overdue = sum(1 for r in rows if r["overdue"])
    if overdue:
        lines.append(_color(f"{overdue} overdue", "1;31"))
    return "\n".join(lines)


async def _followups(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import postmortem

    rows = await postmortem.list_followups(open_only=args.open, owner=args.owner)
    if ctx.json:
        print_json(rows)
    else:
        print(format_followups(rows))
    return EXIT_OK


async def _followup_done(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    row = await services.complete_followup(args.id, ctx.actor, done=not args.undo)
    print(f"follow-up #{row.id} {'done' if row.done else 'open again'}: {row.description}")
    return EXIT_OK


async def _followup_ticket(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import postmortem

    if args.jira:
        from engine.notify.channels import settings_from_config

        jira = settings_from_config(ctx.config).jira if ctx.config is not None else None
        if jira is None:
            raise UsageError("--jira needs an [integrations.jira] section in the configuration")
        row = await postmortem.open_followup_ticket(args.id, ctx.actor, jira)
    else:
        row = await postmortem.set_followup_ticket(args.id, None if args.unlink else args.key, ctx.actor)
    print(f"follow-up #{row.id} " + (f"linked to {row.ticket_key}" if row.ticket_key else "has no ticket now"))
    return EXIT_OK


# --- post-mortem --------------------------------------------------------------------------

EDIT_FLAGS = ("summary", "well", "badly", "lesson", "affected_users", "downtime", "financial", "reputational")
ENTRY_FLAGS = ("add_entry", "annotate", "retime", "retext", "hide", "unhide", "remove_entry")


async def _postmortem(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import postmortem
    from engine.learning.postmortem_render import render_markdown

    changed = await _apply_postmortem_edits(args, ctx)
    if args.entries:
        doc = await postmortem.postmortem_document(args.key)
        if ctx.json or args.format == "json":
            print_json(doc["timeline"])
        else:
            for e in doc["timeline"]:
                ident = f"#{e['id']}" if e["id"] is not None else "new"
                flags = " [hidden]" if e["hidden"] else ""
                note = f"  ({e['annotation']})" if e["annotation"] else ""
                print(f"{ident:>6}  {short_time(e['at'], date=True)}  {e['kind']:<16} {e['text']}{note}{flags}")
        return EXIT_OK
    if changed and not (args.output or args.format or ctx.json):
        return EXIT_OK
    doc = await postmortem.postmortem_document(args.key)
    if (args.format or ("json" if ctx.json else "md")) == "json":
        import json

        text = json.dumps(doc, indent=2, default=str, ensure_ascii=False) + "\n"
    else:
        text = render_markdown(doc)
    if args.output:
        path = Path(args.output).expanduser()
        if not path.parent.is_dir():
            raise UsageError(f"-o: the directory {path.parent} does not exist")
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"-o: cannot write {path}: {exc.strerror}") from None
        print(f"post-mortem of {doc['key']} written to {path}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _entry_id(value: str, flag: str) -> int:
    text = value.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()) or int(text) > 2**31 - 1:
        raise UsageError(f"{flag}: {value!r} is not an entry id (see --entries)")
    return int(text)


async def _apply_postmortem_edits(args: argparse.Namespace, ctx: Context) -> bool:
    """Apply the edit flags, each a change of its own; True when something was edited."""
    from engine.learning import postmortem as pm

    done: list[str] = []
    fields: dict[str, Any] = {}
    if args.summary is not None:
        fields["summary"] = args.summary
    if args.well:
        fields["add_went_well"] = args.well
    if args.badly:
        fields["add_went_badly"] = args.badly
    if args.lesson:
        fields["add_lessons"] = args.lesson
    if args.clear:
        for name in args.clear:
            fields[{"well": "went_well", "badly": "went_badly", "lessons": "lessons_learned"}[name]] = []
    if args.affected_users is not None:
        fields["affected_users"] = args.affected_users
    if args.downtime is not None:
        fields["downtime_minutes"] = None if args.downtime.strip().lower() == "auto" else args.downtime
    if args.financial is not None:
        fields["financial_impact"] = args.financial
    if args.reputational is not None:
        fields["reputational_impact"] = args.reputational
    if fields:
        await pm.update_postmortem(args.key, ctx.actor, **fields)
        done.append("edited")
    if args.add_entry:
        when, text = args.add_entry
        await pm.add_entry(args.key, ctx.actor, at_time=parse_time(when, "--add-entry"), text=text, kind=args.kind or "note")
        done.append("entry added")
    for ident, note in args.annotate or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--annotate"), ctx.actor, annotation=note)
        done.append(f"entry {ident} annotated")
    for ident, when in args.retime or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--retime"), ctx.actor, at_time=parse_time(when, "--retime"))
        done.append(f"entry {ident} moved")
    for ident, text in args.retext or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--retext"), ctx.actor, text=text)
        done.append(f"entry {ident} reworded")
    for ident in args.hide or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--hide"), ctx.actor, hidden=True)
        done.append(f"entry {ident} hidden")
    for ident in args.unhide or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--unhide"), ctx.actor, hidden=False)
        done.append(f"entry {ident} shown")
    for ident in args.remove_entry or []:
        await pm.remove_entry(args.key, _entry_id(ident, "--remove-entry"), ctx.actor)
        done.append(f"entry {ident} removed")
    if args.publish:
        await pm.publish(args.key, ctx.actor)
        done.append("published")
    if args.unpublish:
        await pm.unpublish(args.key, ctx.actor)
        done.append("back to draft")
    if done:
        print(f"post-mortem of {args.key.upper()}: {', '.join(done)}", file=sys.stderr)
    return bool(done)


async def _satisfaction(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import postmortem

    inc = await postmortem.rate_satisfaction(args.key, ctx.actor, customer=args.customer, team=args.team)
    sat = inc.satisfaction
    print(f"{inc.key} satisfaction: customer {sat.get('customer', '-')}/5, team {sat.get('team', '-')}/5")
    return EXIT_OK


# --- registration -------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    from engine.cli.common import Parser

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

    p = sub.add_parser("followups", parents=[common], help="follow-up actions across incidents (overdue ones first)")
    p.add_argument("--open", action="store_true", help="only actions not done yet")
    p.add_argument("--owner", help="only actions owned by this person")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_followups, needs_db=True)
    fsub = p.add_subparsers(dest="followup_command", metavar="COMMAND", parser_class=Parser)
    c = fsub.add_parser("done", parents=[common], help="mark follow-up ID done (or --undo)")
    c.add_argument("id", type=ROW_ID, help="the follow-up's id, as `followups` lists them")
    c.add_argument("--undo", action="store_true", help="mark it open again")
    c.set_defaults(handler=_followup_done, needs_db=True)
    c = fsub.add_parser("ticket", parents=[common], help="link follow-up ID to a ticket, or open one in Jira")
    c.add_argument("id", type=ROW_ID, help="the follow-up's id, as `followups` lists them")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--key", help="an existing ticket key, e.g. OPS-123")
    g.add_argument("--jira", action="store_true", help="open a Jira issue through [integrations.jira]")
    g.add_argument("--unlink", action="store_true", help="forget the linked ticket")
    c.set_defaults(handler=_followup_ticket, needs_db=True)

    p = sub.add_parser(
        "postmortem",
        parents=[common],
        help="write or edit an incident's post-mortem",
        description="Without edit options, prints the post-mortem (Markdown by default). Each edit "
        "option is saved as its own change; the document is printed only with --format or -o.",
    )
    p.add_argument("key", help="incident key, e.g. INC-42")
    out = p.add_argument_group("output")
    out.add_argument("--format", choices=["md", "json"], help="md (Markdown, the default) or json")
    out.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    out.add_argument("--json", action="store_true", help="same as --format json")
    out.add_argument("--entries", action="store_true", help="list timeline entries with their ids")
    ed = p.add_argument_group("edit")
    ed.add_argument("--summary", metavar="TEXT", help="what happened, in a paragraph")
    ed.add_argument("--well", action="append", metavar="TEXT", help="add to what went well (repeatable)")
    ed.add_argument("--badly", action="append", metavar="TEXT", help="add to what went badly (repeatable)")
    ed.add_argument("--lesson", action="append", metavar="TEXT", help="add a lesson learned (repeatable)")
    ed.add_argument("--clear", action="append", choices=["well", "badly", "lessons"], help="empty a list first")
    ed.add_argument("--affected-users", metavar="N", help="how many users were affected")
    ed.add_argument("--downtime", metavar="MINUTES", help="override the downtime, or 'auto' to compute it from the timeline")
    ed.add_argument("--financial", metavar="TEXT", help="financial impact")
    ed.add_argument("--reputational", metavar="TEXT", help="reputational impact")
    ed.add_argument("--add-entry", nargs=2, metavar=("TIME", "TEXT"), help="add a timeline entry")
    ed.add_argument("--kind", help="kind of the added entry: note (default), deployment, impact_start, impact_end…")
    ed.add_argument("--annotate", nargs=2, action="append", metavar=("ID", "TEXT"), help="add a note to timeline entry ID")
    ed.add_argument("--retime", nargs=2, action="append", metavar=("ID", "TIME"), help="move timeline entry ID to TIME")
    ed.add_argument("--retext", nargs=2, action="append", metavar=("ID", "TEXT"), help="reword timeline entry ID")
    ed.add_argument("--hide", action="append", metavar="ID", help="leave an entry out of the document")
    ed.add_argument("--unhide", action="append", metavar="ID", help="show hidden timeline entry ID again")
    ed.add_argument("--remove-entry", action="append", metavar="ID", help="delete an entry a person added")
    ed.add_argument("--publish", action="store_true", help="publish (the incident must be resolved)")
    ed.add_argument("--unpublish", action="store_true", help="back to draft, to edit again")
    p.set_defaults(handler=_postmortem, needs_db=True)

    p = sub.add_parser("satisfaction", parents=[common], help="record customer and team satisfaction (1-5) for an incident")
    p.add_argument("key", help="incident key, e.g. INC-42")
    p.add_argument("--customer", metavar="1-5", help="customer satisfaction, 1 (poor) to 5 (excellent)")
    p.add_argument("--team", metavar="1-5", help="team satisfaction, 1 (poor) to 5 (excellent)")
    p.set_defaults(handler=_satisfaction, needs_db=True)
