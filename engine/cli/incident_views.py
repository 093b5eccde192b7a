"""The incident subcommands that show what an incident holds or attach evidence to it:
`incident list`, `incident show` and `incident evidence` (with its log excerpt)."""

from __future__ import annotations

import argparse
import base64
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.cli.common import (
    EXIT_OK,
    Context,
    UsageError,
    age,
    named_as_typed,
    parse_time,
    print_json,
    print_table,
    say,
    short_time,
)

LIST_COLUMNS = [
    ("key", "key"),
    ("severity", "severity"),
    ("status", "status"),
    ("ack", "ack"),
    ("age", "age"),
    ("title", "title"),
    ("assignee", "assignee"),
    ("services", "services"),
]


async def incident_list(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import queries
    from engine.incidents.services.validation import valid_tags

    with named_as_typed({"status": "--status", "severity": "--severity", "service": "--service", "tag": "--tag"}):
        if args.tag:  # one no incident can carry matches nothing: say so
            valid_tags([args.tag])
        rows = await queries.list_incidents(
            status=args.status,
            severity=args.severity,
            include_resolved=args.all,
            service=args.service,
            tag=args.tag,
            limit=args.limit,
        )
    if ctx.json:
        print_json(rows)
        return EXIT_OK
    for r in rows:
        r["ack"] = r["acknowledged_by"] or ("-" if r["status"] == "resolved" else "no")
        r["age"] = age(r["created_at"])
    print_table(rows, LIST_COLUMNS, empty=_none_listed(args))
    return EXIT_OK


def _none_listed(args: argparse.Namespace) -> str:
    """What an empty list says: with filters, that nothing matched them ("no incidents open"
    read as the all-clear while open incidents had other tags)."""
    given = [(opt, getattr(args, opt[2:])) for opt in ("--status", "--severity", "--service", "--tag")]
    filters = " ".join(f"{opt} {shlex.quote(value)}" for opt, value in given if value)
    if not filters:
        return "no incidents" + ("" if args.all else " open (use --all for resolved ones)")
    if args.all or args.status:  # a status filter names the statuses itself
        return f"no incidents match {filters}"
    return f"no open incidents match {filters} (--all includes resolved ones)"


async def incident_show(args: argparse.Namespace, ctx: Context) -> int:
    from engine.config.runbooks import runbook_for
    from engine.core.timefmt import format_range
    from engine.incidents import queries

    data = await queries.incident_detail(args.key)
    if ctx.json:
        print_json(data)
        return EXIT_OK
    say(f"{data['key']}  {data['title']}")
    fields = [
        ("severity", data["severity"]),
        ("status", data["status"]),
        ("source", data["source"]),
        ("services", ", ".join(data["services"]) or "-"),
        ("tags", ", ".join(data["tags"]) or "-"),
        ("assignee", data["assignee"] or "-"),
        ("detected", short_time(data["detected_at"])),
        ("created", f"{short_time(data['created_at'])} by {data['created_by']}"),
        ("acknowledged", f"{short_time(data['acknowledged_at'])} by {data['acknowledged_by']}" if data["acknowledged_at"] else "no"),
        ("resolved", f"{short_time(data['resolved_at'])} by {data['resolved_by']}" if data["resolved_at"] else "no"),
    ]
    if data.get("firing_count", 1) > 1 or data.get("dedup_key"):
        fields.append(("firings", f"{data.get('firing_count', 1)}, last seen {short_time(data.get('last_seen_at') or data['created_at'])}"))
    if data.get("merged_into"):
        fields.append(("merged into", f"INC-{data['merged_into']}"))
    if data.get("related"):
        fields.append(("related", ", ".join(str(r) for r in data["related"])))
    if data["false_positive"]:
        fields.append(("false positive", "yes"))
    width = max(len(k) for k, _ in fields)
    for k, v in fields:
        say(f"  {k.ljust(width)}  {v}")
    if data["description"]:
        say(f"\n{data['description']}")
    if ctx.config is not None and (runbook := runbook_for(ctx.config, data.get("trigger"), data.get("services"))) is not None:
        say(
            f"\nRunbook ({runbook.origin}): {runbook.url or runbook.path}"
            + ("" if runbook.url else f"  (pulseguard incident runbook {data['key']})")
        )
    if data["root_cause"]:
        say("\nResolution")
        say(f"  root cause  {data['root_cause']} ({data['root_cause_category']})")
        say(f"  solution    {data['solution']}")
        for i, step in enumerate(data["verification_steps"], 1):
            say(f"  [{'x' if step['done'] else ' '}] {i}. {step['step']}")
    _print_analysis(data.get("analysis") or {})
    say("\nTimeline")
    print_table(
        [{"at": short_time(e["at"]), "actor": e["actor"], "kind": e["kind"], "summary": e["summary"]} for e in data["timeline"]],
        [("at", "time"), ("actor", "actor"), ("kind", "event"), ("summary", "what")],
    )
    if data["comments"]:
        say("\nComments")
        for c in data["comments"]:
            mark = " [internal]" if c["internal_only"] else ""
            who = f"{c['on_behalf_of']} via {c['author']}" if c.get("on_behalf_of") else c["author"]
            when = f"{short_time(c['stated_at'])} (stated)" if c.get("stated_at") else short_time(c["created_at"])
            say(f"  {when}  {who}{mark}: {c['content']}")
    if data["updates"]:
        say("\nStatus updates")
        for u in data["updates"]:
            mark = "public" if u["public"] else "internal"
            when = f"{short_time(u['stated_at'])} (stated)" if u.get("stated_at") else short_time(u["created_at"])
            say(f"  {when}  {u['author']} ({u['status']}, {mark}): {u['message']}")
    if data["evidence"]:
        say("\nEvidence")
        for e in data["evidence"]:
            where = e["url"] or e["path"] or ""
            rng = f" {format_range(e['range_from'], e['range_to'])}" if e["range_from"] else ""
            say(f"  #{e['id']} {e['kind']}{rng} {where} {e['description']}".rstrip())
    if data["followups"]:
        say("\nFollow-ups")
        for f in data["followups"]:
            say(
                f"  [{'x' if f['done'] else ' '}] #{f['id']} {f['group']}: {f['description']} ({f['owner'] or 'no owner'}, due {f['due_date'] or '-'})"
            )
    return EXIT_OK


def _print_analysis(analysis: dict[str, Any]) -> None:
    pattern = analysis.get("pattern")
    if pattern:
        print(
            f"\nPattern: {pattern.get('label')} ({pattern.get('similar_count', 0)} similar in the last {pattern.get('period_days')} days)"
        )
        if pattern.get("hint"):
            print(f"  {pattern['hint']}")
        for other in (pattern.get("similar") or [])[:3]:
            say(f"  {other.get('key')}  {other.get('title', '')}")
        for flag in pattern.get("recurring") or []:
            print(f"  recurring: {flag.get('text') if isinstance(flag, dict) else flag}")
    correlation = analysis.get("correlation")
    if correlation:
        changed = [c for c in correlation.get("series") or [] if c.get("label") != "stable"]
        noted = f" (noted by {correlation['noted_by']})" if correlation.get("noted_by") else ""
        say("\nCorrelated metrics" + noted + ("" if changed else ": nothing changed around the start"))
        for c in changed[:5]:
            onset = f" (onset {short_time(c['onset'])})" if c.get("onset") else ""
            say(f"  {c['series']}: {c['label']}{onset}")
        for r in (correlation.get("related_incidents") or [])[:5]:
            say(f"  related {r['key']}" + (f": {r['title']}" if r.get("title") else ""))


def log_excerpt(
    path: Path, start: datetime, end: datetime, limit: int = 1_000_000, *, now: datetime | None = None, zone: Any = None
) -> str:
    """Lines of a log whose leading time stamp (ISO 8601, syslog RFC 5424 or RFC 3164; see
    engine.core.logtime) falls in [start, end]; continuation lines (stack traces) follow the line
    they belong to."""
    from engine.core.logtime import line_time

    now = now or datetime.now(UTC)
    out: list[str] = []
    size = 0
    keep = False
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            ts = line_time(line, now, zone)
            if ts is not None:
                keep = start <= ts <= end
            if keep:
                size += len(line)
                if size > limit:
                    raise UsageError(f"--log: the excerpt of {path} is larger than 1 MB; narrow --from/--to")
                out.append(line)
    return "".join(out)


def log_range(from_: str, to: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """--from/--to of a log excerpt: full times as parse_time reads them, or clock times
    (`10:00`) in the local time zone — the most recent past 10:00, and the first `--to` after it."""
    from engine.core.logtime import clock_end, clock_start

    def full(text: str, what: str) -> datetime:
        try:
            return parse_time(text, what, local=True)  # as the log's own stamps are read
        except UsageError:
            raise UsageError(
                f"{what}: {text!r} is not a time (expected a clock time like 10:00, ISO 8601 like "
                "2026-11-27T10:25, 'now', or an age like 15m)"
            ) from None

    now = now or datetime.now(UTC)
    start = clock_start(from_, now) or full(from_, "--from")
    end = clock_end(to, start) or full(to, "--to")
    return start.astimezone(UTC), end.astimezone(UTC)


async def incident_evidence(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    fields: dict[str, Any] = {"description": args.description or ""}
    if args.log is None and (args.from_ is not None or args.to is not None):
        # Was ignored: `--url … --from 10:00` stored a link and no range.
        given = "--from" if args.from_ is not None else "--to"
        raise UsageError(f"{given}: only goes with --log (the time range of a log excerpt)")
    if args.url:
        kind = "screenshot" if re.search(r"\.(png|jpe?g|gif|webp)(\?|$)", args.url, re.I) else "link"
        fields["url"] = args.url
    elif args.file:
        path = Path(args.file).expanduser()
        if not path.is_file():
            raise UsageError(f"--file: {args.file} is not a readable file")
        raw = path.read_bytes()
        if len(raw) > 1_000_000:
            raise UsageError(f"--file: {args.file} is larger than 1 MB")
        kind = "screenshot" if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".webp") else "file"
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            content = "base64:" + base64.b64encode(raw).decode("ascii")
        fields.update(path=str(path.resolve()), content=content)
    else:
        if not (args.from_ and args.to):
            raise UsageError("--log needs --from and --to (the time range of the excerpt)")
        path = Path(args.log).expanduser()
        if not path.is_file():
            raise UsageError(f"--log: {args.log} is not a readable file")
        start, end = log_range(args.from_, args.to)
        if start > end:
            raise UsageError("--from is after --to")
        kind = "log"
        excerpt = log_excerpt(path, start, end)
        if not excerpt:
            raise UsageError(f"--log: no line of {args.log} is timestamped between --from and --to")
        fields.update(path=str(path.resolve()), content=excerpt, range_from=start, range_to=end)
    row = await services.add_evidence(args.key, kind, ctx.actor, **fields)
    print(f"evidence #{row.id} ({kind}) added to {args.key.upper()}")
    return EXIT_OK


async def incident_runbook(args: argparse.Namespace, ctx: Context) -> int:
    """`pulseguard incident runbook KEY`: the runbook's Markdown (a file) or its URL."""
    from engine.config.runbooks import runbook_for
    from engine.incidents import queries

    incident = await queries.get_incident(args.key)
    runbook = runbook_for(ctx.config, incident.trigger, list(incident.services or [])) if ctx.config is not None else None
    if ctx.json:
        print_json({"incident": incident.key, "runbook": runbook.as_dict() if runbook is not None else None})
        return EXIT_OK
    if runbook is None:
        say(f"{incident.key} has no runbook (set runbook = … on its trigger or service in the configuration)")
        return EXIT_OK
    say(f"{incident.key} runbook, from {runbook.origin}: {runbook.url or runbook.path}")
    if (markdown := runbook.read()) is not None:
        say("")
        say(markdown.rstrip())
    return EXIT_OK
