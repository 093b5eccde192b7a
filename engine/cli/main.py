"""The `pulseguard` command line (every subcommand but the console itself).

Areas add subcommands in their own module exposing `register(subparsers)`; list it in AREAS.
A handler is `async def handler(args, ctx) -> int` set with `set_defaults(handler=..., needs_db=...)`.
Bad input exits 2 with one line on stderr and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.core.domain import (
    DEFAULT_ROOT_CAUSE_CATEGORIES,
    EARLIEST_TIME,
    LATEST_TIME,
    LONGEST_DURATION,
    DomainError,
    InvalidInput,
    check_time,
)
from engine.core.durations import duration_seconds, format_age
from engine.core.errors import StartupError
from engine.core.textclean import UNSAFE as _UNSAFE_JSON
from engine.core.textclean import terminal_text

# Modules that add subcommands with `register(subparsers)`; a missing one is skipped so an
# area can land on its own.
AREAS: list[str] = [
    "engine.cli.config",
    "engine.cli.analytics",
    "engine.cli.detection",
    "engine.cli.monitor",
    "engine.cli.oncall",
    "engine.cli.escalation",
    "engine.cli.rest",
    "engine.cli.transfer",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

# How each subcommand uses the database. Kept in one place so that a new command has to
# choose (tests/test_cli.py fails for a command missing here):
#   none    opens no database
#   read    reads an existing database; never creates one, so a mistyped --db fails loudly
#           instead of showing an empty database
#   change  changes what an existing database holds (an incident, a window, a token); a new
#           database holds nothing to change, so it never creates one either
#   create  may create a new database, and says so on stderr
NONE, READ, CHANGE, CREATE = "none", "read", "change", "create"
DB_ACCESS: dict[str, str] = {
    "incident create": CREATE,
    "incident list": READ,
    "incident show": READ,
    "incident ack": CHANGE,
    "incident status": CHANGE,
    "incident severity": CHANGE,
    "incident assign": CHANGE,
    "incident tag": CHANGE,
    "incident comment": CHANGE,
    "incident update": CHANGE,
    "incident evidence": CHANGE,
    "incident resolve": CHANGE,
    "incident reopen": CHANGE,
    "incident false-positive": CHANGE,
    "incident verify": CHANGE,
    "incident followup": CHANGE,
    "incident correlate": CHANGE,
    "init": CREATE,
    "config check": NONE,
    "report": READ,
    "followups": READ,
    "followups done": CHANGE,
    "followups ticket": CHANGE,
    "postmortem": CHANGE,
    "satisfaction": CHANGE,
    "replay": NONE,
    "engine": CREATE,
    "targets": READ,
    "metrics push": CREATE,
    "metrics query": READ,
    "maintenance add": CREATE,
    "maintenance list": READ,
    "maintenance end": CHANGE,
    "demo": NONE,  # its own temporary database
    "oncall": READ,
    "oncall override": CREATE,
    "oncall overrides": READ,
    "oncall cancel-override": CHANGE,
    "oncall export": READ,
    "notifications": READ,
    "notifications retry": CHANGE,
    "notifications test": NONE,
    "escalation preview": READ,
    "token create": CREATE,
    "token list": READ,
    "token revoke": CHANGE,
    "statuspage build": READ,
    "backup": NONE,  # copies the file itself, never creating a database
    "export": READ,
    "import": CREATE,
}


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit 2."""


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions; keeps text written with line breaks (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One clear line instead of argparse's usage block.
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


@dataclass
class Context:
    """What a handler needs: who acts, the database, the loaded configuration."""

    actor: str
    database: Any = None
    config: Any = None
    json: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        extra = []
        if self.config is not None:
            extra = list(getattr(getattr(self.config, "engine", None), "root_cause_categories", None) or [])
        return list(dict.fromkeys([*DEFAULT_ROOT_CAUSE_CATEGORIES, *extra]))


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): fall back to the uid
        return f"uid{os.getuid()}"


# --- shared parsing helpers ---------------------------------------------------------------

# An age such as 15m or -2h (both mean ago): one number and one unit.
_AGE = re.compile(r"^-?\d+(?:\.\d+)?\s*[smhdw]$")


def parse_time(text: str, what: str = "time") -> datetime:
    """ISO 8601 (a naive time is local), 'now', or an age like 15m / 2h / 3d (meaning ago);
    within engine.core.domain's time range."""
    value = (text or "").strip()
    if value == "now":
        return datetime.now(UTC)
    ago = duration_seconds(value.removeprefix("-")) if _AGE.match(value) else None
    if ago is not None:
        return datetime.now(UTC) - _span(ago, text, what)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a time (expected ISO 8601 like 2026-11-27T10:25, 'now', or an age like 15m)") from None
    try:
        parsed = check_time(parsed if parsed.tzinfo is not None else parsed.astimezone(), what)
    except (OverflowError, ValueError, InvalidInput):  # astimezone() of a local time at the very edge
        raise UsageError(f"{what}: {text!r} is out of range ({EARLIEST_TIME.date()} to {LATEST_TIME.date()})") from None
    return parsed.astimezone(UTC)


def parse_date(text: str, what: str = "date") -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a date (expected YYYY-MM-DD)") from None
    if not EARLIEST_TIME.date() <= day < LATEST_TIME.date():
        raise UsageError(f"{what}: {text!r} is out of range ({EARLIEST_TIME.date()} to {LATEST_TIME.date()})")
    return day


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]; anything else is a usage error (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range ({low} to {high})")
        return value

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"{text!r} is out of range ({low:g} to {high:g})")
        return value

    return parse


# Row ids (maintenance windows, follow-ups, entries): what the databases' integer columns hold.
ROW_ID = whole_number(1, 2**31 - 1)
LIMIT = whole_number(1, 1_000_000)


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """A span such as 30m, 2h, 1d or 1h30m (engine.core.durations), at most LONGEST_DURATION."""
    seconds = duration_seconds((text or "").strip().lstrip("+"))
    if seconds is None or text.strip().startswith("-"):
        raise UsageError(f"{what}: {text!r} is not a duration (expected e.g. 30m, 2h, 1d)")
    return _span(seconds, text, what)


def _span(seconds: float, text: str, what: str) -> timedelta:
    if seconds > LONGEST_DURATION.total_seconds():
        raise UsageError(f"{what}: {text!r} is too long (at most {LONGEST_DURATION.days} days)")
    return timedelta(seconds=seconds)


def say(text: str = "") -> None:
    """Print a line of stored data: text a terminal shows, never executes (ESC, C1, CR)."""
    print(terminal_text(text))


def print_json(data: Any) -> None:
    # Controls and bidi overrides become \uXXXX escapes: the same JSON, harmless on a terminal.
    print(_UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, indent=2, default=str, ensure_ascii=False)))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], empty: str = "(none)") -> None:
    """Aligned plain-text table; `columns` is [(key, heading)]."""
    if not rows:
        print(empty)
        return
    cells = [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(columns)]
    say("  ".join(h.upper().ljust(w) for (_, h), w in zip(columns, widths)).rstrip())
    for c in cells:
        say("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    text = terminal_text(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def short_time(value: str | datetime | None, **options: Any) -> str:
    """A time for a person (engine.core.timefmt's rule: viewer's zone, named, date unless today)."""
    from engine.core.timefmt import format_time

    return format_time(value, **options)


def age(value: str | None, now: datetime | None = None) -> str:
    if not value:
        return "-"
    then = datetime.fromisoformat(value)
    return format_age(int(((now or datetime.now(UTC)) - then).total_seconds()))


# --- incident commands --------------------------------------------------------------------


async def _incident_create(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    configured = [sv.name for sv in getattr(ctx.config, "services", None) or []]
    await services.check_services(args.service, configured, field="--service")
    incident = await services.create_incident(
        title=args.title,
        severity=args.severity,
        description=args.description or "",
        services=args.service or [],
        tags=args.tag or [],
        assignee=args.assignee,
        actor=ctx.actor,
    )
    if ctx.json:
        from engine.incidents.queries import incident_dict

        print_json(incident_dict(incident))
    else:
        say(f"{incident.key} opened ({incident.severity}): {incident.title}")
    return EXIT_OK


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


async def _incident_list(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import queries

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
    print_table(rows, LIST_COLUMNS, empty="no incidents" + ("" if args.all else " open (use --all for resolved ones)"))
    return EXIT_OK


async def _incident_show(args: argparse.Namespace, ctx: Context) -> int:
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
    if data["false_positive"]:
        fields.append(("false positive", "yes"))
    width = max(len(k) for k, _ in fields)
    for k, v in fields:
        say(f"  {k.ljust(width)}  {v}")
    if data["description"]:
        say(f"\n{data['description']}")
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
        print("\nCorrelated metrics" + ("" if changed else ": nothing changed around the start"))
        for c in changed[:5]:
            onset = short_time(c.get("onset")) if c.get("onset") else "-"
            print(f"  {c['series']}: {c['label']} (onset {onset})")
        for r in (correlation.get("related_incidents") or [])[:5]:
            say(f"  related {r['key']}: {r.get('title') or ''}")


async def _incident_ack(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.acknowledge(args.key, ctx.actor)
    print(f"{inc.key} acknowledged by {ctx.actor} ({inc.status})")
    return EXIT_OK


async def _incident_status(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.change_status(args.key, args.status, ctx.actor, message=args.message, public=args.public)
    print(f"{inc.key} is now {inc.status}")
    return EXIT_OK


async def _incident_severity(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.change_severity(args.key, args.severity, ctx.actor, reason=args.reason)
    print(f"{inc.key} severity is now {inc.severity}")
    return EXIT_OK


async def _incident_assign(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    who = None if args.who in ("-", "none", "nobody") else args.who
    inc = await services.assign(args.key, who, ctx.actor)
    print(f"{inc.key} assigned to {inc.assignee}" if inc.assignee else f"{inc.key} unassigned")
    return EXIT_OK


async def _incident_tag(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    add = [t[1:] if t.startswith("+") else t for t in args.tags if not t.startswith("-")]
    remove = [t[1:] for t in args.tags if t.startswith("-")]
    inc = await services.set_tags(args.key, ctx.actor, add=add, remove=remove)
    print(f"{inc.key} tags: {', '.join(inc.tags) or '(none)'}")
    return EXIT_OK


async def _incident_comment(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    row = await services.comment(args.key, args.text, ctx.actor, internal_only=args.internal)
    print(f"comment #{row.id} added to {args.key.upper()}" + (" (internal)" if args.internal else ""))
    return EXIT_OK


async def _incident_update(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    row = await services.post_update(args.key, args.message, ctx.actor, public=not args.internal, status=args.status)
    print(f"{'internal' if args.internal else 'public'} update #{row.id} posted ({row.status})")
    return EXIT_OK


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
            return parse_time(text, what)
        except UsageError:
            raise UsageError(
                f"{what}: {text!r} is not a time (expected a clock time like 10:00, ISO 8601 like "
                "2026-11-27T10:25, 'now', or an age like 15m)"
            ) from None

    now = now or datetime.now(UTC)
    start = clock_start(from_, now) or full(from_, "--from")
    end = clock_end(to, start) or full(to, "--to")
    return start.astimezone(UTC), end.astimezone(UTC)


async def _incident_evidence(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    fields: dict[str, Any] = {"description": args.description or ""}
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


async def _incident_resolve(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.resolve(
        args.key,
        ctx.actor,
        root_cause=args.root_cause,
        solution=args.solution,
        category=args.category,
        verification_steps=args.verify or [],
        categories=ctx.categories,
    )
    print(f"{inc.key} resolved ({inc.root_cause_category})")
    return EXIT_OK


async def _incident_reopen(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.reopen(args.key, ctx.actor, reason=args.reason)
    print(f"{inc.key} reopened ({inc.status})")
    return EXIT_OK


async def _incident_false_positive(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.mark_false_positive(args.key, ctx.actor, value=not args.undo, reason=args.reason)
    print(f"{inc.key} {'marked as' if inc.false_positive else 'no longer'} a false positive")
    return EXIT_OK


async def _incident_verify(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.set_verification_step(args.key, args.step - 1, ctx.actor, done=not args.undo)
    step = inc.verification_steps[args.step - 1]
    print(f"{inc.key} step {args.step} {'done' if step['done'] else 'open'}: {step['step']}")
    return EXIT_OK


async def _incident_followup(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    due = parse_date(args.due, "--due") if args.due else None
    row = await services.add_followup(args.key, args.group, args.description, ctx.actor, owner=args.owner, due_date=due)
    print(f"follow-up #{row.id} added to {args.key.upper()}")
    return EXIT_OK


def _register_incident(sub: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("incident", help="create, change and read incidents", parents=[common])
    isub = p.add_subparsers(dest="incident_command", metavar="COMMAND", required=True, parser_class=Parser)

    def cmd(
        name: str, handler: Callable[..., Any], help: str, read: bool = False, description: str | None = None, epilog: str | None = None
    ) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = isub.add_parser(
            name,
            help=help,
            parents=[common],
            description=description or help[:1].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=_HelpFormatter,
        )
        c.set_defaults(handler=handler, needs_db=True)
        if read:
            c.add_argument("--json", action="store_true", help="machine-readable output")
        return c

    def key(c: argparse.ArgumentParser) -> None:
        c.add_argument("key", help="the incident: INC-42 or 42")

    c = cmd(
        "create",
        _incident_create,
        "open a manual incident",
        read=True,
        epilog='example: pulseguard incident create --title "Checkout 500s" --severity critical --service web-app',
    )
    c.add_argument("--title", required=True, help="what is wrong, in a line")
    c.add_argument("--severity", required=True, help="critical, high, medium or low")
    c.add_argument("--description", help="more detail (internal; never on the status page)")
    c.add_argument("--service", action="append", help="affected service (repeatable); must be a configured service when any are")
    c.add_argument("--tag", action="append", help="tag (repeatable)")
    c.add_argument("--assignee", help="who works on it (a user id)")

    c = cmd("list", _incident_list, "list incidents (open ones unless --all)", read=True)
    c.add_argument("--status", help="triggered, investigating, identified, monitoring, resolved or open; several separated by commas")
    c.add_argument("--severity", help="only this severity: critical, high, medium or low")
    c.add_argument("--service", help="only incidents affecting this service")
    c.add_argument("--tag", help="only incidents with this tag")
    c.add_argument("--all", action="store_true", help="include resolved incidents")
    c.add_argument("--limit", type=LIMIT, default=500, help="at most this many rows (default 500)")

    c = cmd("show", _incident_show, "an incident with its timeline, comments, updates and evidence", read=True)
    key(c)

    c = cmd("ack", _incident_ack, "acknowledge (stops escalation)")
    key(c)

    c = cmd("status", _incident_status, "change status: investigating, identified or monitoring")
    key(c)
    c.add_argument("status", help="investigating, identified or monitoring (resolve with `incident resolve`)")
    c.add_argument("--message", "-m", help="what changed, recorded as a status update")
    c.add_argument("--public", action="store_true", help="publish the message on the status page")

    c = cmd("severity", _incident_severity, "change severity")
    key(c)
    c.add_argument("severity", help="critical, high, medium or low")
    c.add_argument("--reason", help="why, for the timeline")

    c = cmd("assign", _incident_assign, "assign to someone ('-' to unassign)")
    key(c)
    c.add_argument("who", help="a user id, or '-' to unassign")

    c = cmd("tag", _incident_tag, "add tags (name or +name) and remove them (-name)")
    key(c)
    c.add_argument("tags", nargs="+", help="db +net adds, -flaky removes")

    c = cmd("comment", _incident_comment, "add a comment")
    key(c)
    c.add_argument("text", help="the comment")
    c.add_argument("--internal", action="store_true", help="internal only: never shown publicly")

    c = cmd("update", _incident_update, "post a status update (public unless --internal)")
    key(c)
    c.add_argument("message", help="the update's text")
    c.add_argument("--status", help="also move to this status (investigating, identified, monitoring)")
    c.add_argument("--internal", action="store_true", help="keep it off the status page")

    c = cmd(
        "evidence",
        _incident_evidence,
        "attach a URL, a file or a log excerpt",
        description="Attach evidence to an incident: a link (a screenshot, a dashboard), a file's contents, or the "
        "lines of a log file whose time stamps (ISO 8601 or syslog, RFC 3164 and 5424) fall between --from and "
        "--to (lines without a time stamp, such as stack traces, go with the line before them). Exactly one of "
        "--url, --file and --log.",
        epilog="examples:\n"
        '  pulseguard incident evidence INC-1 --url https://files.example.com/500.png -d "error page"\n'
        "  pulseguard incident evidence INC-1 --file ./pool-stats.txt\n"
        "  pulseguard incident evidence INC-1 --log /var/log/app.log --from 10:00 --to 10:15\n"
        "  pulseguard incident evidence INC-1 --log /var/log/syslog --from 2026-03-02T10:00 --to 2026-03-02T11:00",
    )
    key(c)
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--url", help="link to the evidence (http:// or https://)")
    g.add_argument("--file", help="attach this file (text or an image, up to 1 MB)")
    g.add_argument("--log", metavar="PATH", help="attach the lines of this log file between --from and --to")
    c.add_argument(
        "--from",
        dest="from_",
        metavar="T",
        help="with --log: start of the range: a clock time like 10:00 (the most recent past one), "
        "a time like 2026-03-02T10:00, or an age like 30m",
    )
    c.add_argument("--to", metavar="T", help="with --log: end of the range (a clock time is the first one after --from; 'now' for now)")
    c.add_argument("--description", "-d", help="what it shows")

    c = cmd("resolve", _incident_resolve, "resolve with a root cause and solution")
    key(c)
    c.add_argument("--root-cause", required=True, help="why it happened")
    c.add_argument("--solution", required=True, help="what fixed it")
    c.add_argument("--category", help="root-cause category (database, deployment, network, …)")
    c.add_argument("--verify", action="append", metavar="STEP", help="verification step (repeatable)")

    c = cmd("reopen", _incident_reopen, "reopen a resolved incident")
    key(c)
    c.add_argument("--reason", help="why, for the timeline")

    c = cmd("false-positive", _incident_false_positive, "mark (or --undo) as a false positive")
    key(c)
    c.add_argument("--reason", help="why, for the timeline")
    c.add_argument("--undo", action="store_true", help="it was a real incident after all")

    c = cmd("verify", _incident_verify, "check off verification step N (1-based)")
    key(c)
    c.add_argument("step", type=whole_number(1, 1000), help="the step's number, as `incident show` lists them")
    c.add_argument("--undo", action="store_true", help="mark the step open again")

    c = cmd("followup", _incident_followup, "add a follow-up action")
    key(c)
    c.add_argument(
        "--group",
        required=True,
        help="preventive_measures, monitoring_improvements, documentation_updates, process_changes, technical_changes, team_changes",
    )
    c.add_argument("--description", "-d", required=True, help="what is to be done")
    c.add_argument("--owner", help="who does it (a user id)")
    c.add_argument("--due", metavar="YYYY-MM-DD", help="when it is due")


# --- parser and dispatch ------------------------------------------------------------------


def common_parser() -> argparse.ArgumentParser:
    """Options accepted before or after any subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="database: file path, sqlite:///… or postgres://… (env PULSEGUARD_DB)")
    common.add_argument("--config", default=argparse.SUPPRESS, help="configuration file (env PULSEGUARD_CONFIG)")
    common.add_argument("--as", dest="actor", default=argparse.SUPPRESS, metavar="NAME", help="act as NAME (default: your OS user)")
    return common


def build_parser(prog: str = "pulseguard") -> Parser:
    common = common_parser()
    parser = Parser(prog=prog, description="PulseGuard: detect, investigate and resolve incidents.", parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    _register_incident(sub, common)
    for name in AREAS:
        module = importlib.import_module(name)
        module.register(sub, common) if _takes_common(module.register) else module.register(sub)
    for path, command in leaf_commands(parser):
        command.set_defaults(command_path=path)
    _describe_subcommands(parser)
    return parser


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand that runs a handler, as ("incident list", its parser)."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    if prefix and parser._defaults.get("handler") is not None:
        found.append((prefix, parser))
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if id(child) not in seen:  # aliases share a parser
                    seen.add(id(child))
                    found.extend(leaf_commands(child, f"{prefix} {name}".strip()))
    return found


def db_access(args: argparse.Namespace) -> str:
    """READ for a command missing from DB_ACCESS: the choice that never creates a database."""
    return DB_ACCESS.get(getattr(args, "command_path", ""), READ)


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """A subcommand's `--help` opens with the line its parent lists for it when it has no
    description of its own, so no `--help` is a bare usage line."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        listed = {a.dest: a.help for a in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and listed.get(name):
                text = str(listed[name])
                child.description = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
            _describe_subcommands(child)


def _takes_common(fn: Callable[..., Any]) -> bool:
    import inspect

    return len(inspect.signature(fn).parameters) >= 2


def load_context(args: argparse.Namespace) -> Context:
    ctx = Context(actor=(getattr(args, "actor", None) or os_user()).strip(), json=bool(getattr(args, "json", False)))
    if getattr(args, "needs_config", True):
        ctx.config = load_config_for(args)
    from engine.core import timefmt

    timefmt.configure(ctx.config)
    return ctx


def load_config_for(args: argparse.Namespace) -> Any:
    """The configuration file named by --config / PULSEGUARD_CONFIG / the usual places, or None."""
    from engine.config.loading import find_config, load_config

    explicit = getattr(args, "config", None)
    path = find_config(explicit)
    if path is None:
        return None
    return load_config(path)


def database_for(args: argparse.Namespace, ctx: Context) -> Any:
    from engine.storage.db import resolve_database

    configured = None
    if ctx.config is not None:
        configured = getattr(getattr(ctx.config, "engine", None), "db", None)
    return resolve_database(getattr(args, "db", None) or os.environ.get("PULSEGUARD_DB") or configured)


async def open_database_for(args: argparse.Namespace, ctx: Context, access: str) -> Any:
    """Open the database the command names; only CREATE may make a new one, and then it says so.
    Missing parent directories are made only for the default location: a directory that does
    not exist in --db is more likely a typo than a wish."""
    from engine.storage.db import open_database

    ctx.database = database_for(args, ctx)
    created = await open_database(ctx.database, create=access == CREATE, create_dirs=ctx.database.default)
    ctx.extras["created_database"] = created
    if created:
        print(f"created a new database at {ctx.database.where}", file=sys.stderr)
    return ctx.database


async def init_database(args: argparse.Namespace, config_path: Path) -> bool:
    """`pulseguard init`: create the database the new configuration (or --db) names, if missing.
    True when it was created."""
    from engine.config.loading import load_config
    from engine.storage.db import close_database

    ctx = Context(actor=os_user(), config=load_config(config_path))
    try:
        await open_database_for(args, ctx, CREATE)
    finally:
        await close_database()
    return bool(ctx.extras.get("created_database"))


async def _run_handler(args: argparse.Namespace, ctx: Context) -> int:
    from engine.storage.db import close_database

    access = db_access(args)
    if not getattr(args, "needs_db", False) or access == NONE:
        status: int = await args.handler(args, ctx)
        return status
    try:
        await open_database_for(args, ctx, access)
        if ctx.config is not None:
            from engine.escalation.planner import install

            # Notifications and escalation timers are written in the same transaction as the
            # change, so a CLI change is announced even while no engine runs.
            install(ctx.config)
        status = await args.handler(args, ctx)
        return status
    finally:
        await close_database()


def run(args: argparse.Namespace) -> int:
    """Run a parsed subcommand; turns every expected failure into one line and exit 2."""
    try:
        ctx = load_context(args)
        return asyncio.run(_run_handler(args, ctx))
    except (DomainError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pulseguard … | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # config errors and connection failures: still one clear message
        from engine.storage.db import DatabaseUnavailable

        if isinstance(exc, DatabaseUnavailable):
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        problems = getattr(exc, "problems", None)
        if problems:
            for line in problems:
                print(f"error: {line}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, (OSError, ConnectionError)) or type(exc).__module__.startswith(("asyncpg", "tortoise", "sqlite3")):
            from engine.storage.diskfull import disk_full_message

            print(f"error: {disk_full_message(exc) or f'database: {exc}'}", file=sys.stderr)
            return EXIT_ERROR
        if os.environ.get("PULSEGUARD_DEBUG"):
            raise
        print(f"error: unexpected failure: {type(exc).__name__}: {exc} (PULSEGUARD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    return run(args)
