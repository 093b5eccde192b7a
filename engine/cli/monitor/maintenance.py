"""`pulseguard maintenance add|list|end`: windows during which no incident is auto-opened."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from engine.cli.common import (
    EXIT_OK,
    ROW_ID,
    Context,
    UsageError,
    named_as_typed,
    parse_duration,
    parse_time,
    print_json,
    print_table,
    say,
    short_time,
)


async def maintenance_add(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    given = parse_time(args.start, "--start") if args.start else None
    if args.end and args.duration:
        raise UsageError("give either --end or --for, not both")
    typed_end = parse_time(args.end, "--end") if args.end else None
    # Read after the typed times ("--end now" is over by now) and once: a --for from now (no
    # --start) ends after it.
    now = datetime.now(UTC)
    start = given or now
    if typed_end is not None:
        end = typed_end
    elif args.duration:
        end = start + parse_duration(args.duration, "--for", positive=True)
    else:
        raise UsageError("give the end of the window with --end T or --for DURATION (e.g. --for 2h)")
    if not (args.service or args.target):
        raise UsageError("name what the window covers with --service NAME or --target NAME")
    if end <= now:
        # Named by the option that is wrong: the --end typed, or the --start that --for counts from.
        # Before "after the start": with --start left out (now), a past --end is first of all over
        # (it read "ends: must be after the start", naming no option), as `silence add` says.
        if args.end:
            raise UsageError(
                f"--end: {args.end!r} ({short_time(end, date=True)}) has already passed: a maintenance window must end in the future"
            )
        raise UsageError(
            f"--start: {args.start!r} with --for {args.duration} ends at {short_time(end, date=True)}, which has already passed: "
            "a maintenance window must end in the future"
        )
    if end <= start:
        raise UsageError(
            f"--end: {args.end!r} ({short_time(end, date=True)}) is not after --start {args.start!r} "
            f"({short_time(start, date=True)}): a maintenance window must end after it starts"
        )
    service_names: set[str] = set()
    target_names: set[str] = set()
    if ctx.config is not None:
        target_names = {t.name for t in ctx.config.targets}
        service_names = {s.name for s in ctx.config.services} | {t.service for t in ctx.config.targets if t.service}
    # Refusals name the options typed ("--target: …"), not the service's fields.
    typed = {
        "title": "--title",
        "service": "--service",
        "services": "--service",
        "target": "--target",
        "targets": "--target",
        "description": "--description",
    }
    with named_as_typed(typed):
        window = await services.create_maintenance(
            title=args.title,
            starts_at=start,
            ends_at=end,
            actor=ctx.actor,
            kind="emergency" if args.emergency else "scheduled",
            services=args.service or [],
            targets=args.target or [],
            description=args.description or "",
            known_services=service_names,
            known_targets=target_names,
        )
    if ctx.json:
        from engine.incidents.queries import list_maintenance

        print_json(next(w for w in await list_maintenance(include_ended=True) if w["id"] == window.id))
    else:
        covered = ", ".join([*(f"service {s}" for s in window.services), *(f"target {t}" for t in window.targets)])
        say(
            f"maintenance #{window.id} ({window.kind}) {short_time(window.starts_at.isoformat())} → "
            f"{short_time(window.ends_at.isoformat())}: {window.title} [{covered}]"
        )
    return EXIT_OK


async def maintenance_list(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents.queries import list_maintenance

    rows = await list_maintenance(include_ended=args.all)
    now = datetime.now(UTC)
    if not args.all:
        rows = [r for r in rows if datetime.fromisoformat(r["ends_at"]) > now]
    if ctx.json:
        print_json(rows)
        return EXIT_OK
    table = []
    for r in rows:
        starts, ends = datetime.fromisoformat(r["starts_at"]), datetime.fromisoformat(r["ends_at"])
        if r["ended_at"] or ends <= now:
            state = "ended"
        elif starts <= now:
            state = "active"
        else:
            state = "scheduled"
        table.append(
            {
                "id": r["id"],
                "state": state,
                "kind": r["kind"],
                "starts": short_time(r["starts_at"]),
                "ends": short_time(r["ends_at"]),
                "covers": [*r["services"], *r["targets"]],
                "title": r["title"],
            }
        )
    print_table(
        table,
        [
            ("id", "id"),
            ("state", "state"),
            ("kind", "kind"),
            ("starts", "starts"),
            ("ends", "ends"),
            ("covers", "covers"),
            ("title", "title"),
        ],
        empty="no maintenance windows" + ("" if args.all else " now or ahead (use --all for past ones)"),
    )
    return EXIT_OK


async def maintenance_end(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    window = await services.end_maintenance(args.id, ctx.actor)
    say(f"maintenance #{window.id} ended: {window.title}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser_class = sub._parser_class

    p = sub.add_parser("maintenance", help="maintenance windows: no incident is auto-opened for what they cover", parents=[common])
    msub = p.add_subparsers(dest="maintenance_command", metavar="COMMAND", required=True, parser_class=parser_class)
    c = msub.add_parser("add", help="schedule (or, with --emergency, declare) a window", parents=[common])
    c.add_argument("--title", required=True, help="what the window is for")
    c.add_argument("--service", action="append", help="covered service (repeatable)")
    c.add_argument("--target", action="append", help="covered target (repeatable)")
    c.add_argument("--start", metavar="T", help="default: now")
    c.add_argument("--end", metavar="T", help="when it ends (or --for)")
    c.add_argument("--for", dest="duration", metavar="DURATION", help="length, e.g. 30m or 2h (instead of --end)")
    c.add_argument("--emergency", action="store_true", help="an unplanned window")
    c.add_argument("--description", help="more detail, shown on the status page")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=maintenance_add, needs_db=True)
    c = msub.add_parser("list", help="current and upcoming windows (--all: past ones too)", parents=[common])
    c.add_argument("--all", action="store_true", help="include ended windows")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=maintenance_list, needs_db=True)
    c = msub.add_parser("end", help="end a window now", parents=[common])
    c.add_argument("id", type=ROW_ID, metavar="ID", help="the window's id, as `maintenance list` shows it")
    c.set_defaults(handler=maintenance_end, needs_db=True)
