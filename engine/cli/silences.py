"""`pulseguard silence add|list|extend|expire`: Alertmanager-style silences; and
`pulseguard incident snooze|unsnooze` is registered with the incident commands."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from engine.cli.common import EXIT_OK, ROW_ID, Context, UsageError, parse_duration, parse_time, print_json, print_table, say, short_time


async def silence_add(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services
    from engine.incidents.services.silences import as_dict, describe

    if args.end and args.duration:
        raise UsageError("give either --until or --for, not both")
    if not args.end and not args.duration:
        raise UsageError("say how long the silence lasts with --for DURATION (e.g. --for 2h) or --until T")
    start = parse_time(args.start, "--start") if args.start else None
    end = parse_time(args.end, "--until") if args.end else None
    duration = parse_duration(args.duration, "--for", positive=True) if args.duration else None
    now = datetime.now(UTC)
    # Over before it starts to count: named by the option that is wrong, as `maintenance add` does.
    if end is not None and end <= now:
        raise UsageError(f"--until: {args.end!r} ({short_time(end, date=True)}) has already passed: a silence must end in the future")
    if start is not None and end is not None and end <= start:
        raise UsageError(
            f"--until: {args.end!r} ({short_time(end, date=True)}) is not after --start {args.start!r} "
            f"({short_time(start, date=True)}): a silence must end after it starts"
        )
    if start is not None and duration is not None and start + duration <= now:
        raise UsageError(
            f"--start: {args.start!r} with --for {args.duration} ends at {short_time(start + duration, date=True)}, "
            "which has already passed: a silence must end in the future"
        )
    configured = [sv.name for sv in ctx.config.services] if ctx.config is not None else []
    silence = await services.create_silence(
        args.matchers, actor=ctx.actor, comment=args.comment, starts_at=start, ends_at=end, duration=duration, configured=configured
    )
    if ctx.json:
        print_json(as_dict(silence))
    else:
        say(f"silence #{silence.id} ({describe(silence)}) until {short_time(silence.ends_at)}: {silence.comment}")
    return EXIT_OK


async def silence_list(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services
    from engine.incidents.services.silences import as_dict

    rows = [as_dict(s) for s in await services.list_silences(expired=args.expired)]
    if ctx.json:
        print_json(rows)
        return EXIT_OK
    table = [
        {
            "id": r["id"],
            "state": r["state"],
            "matchers": " ".join(r["matchers"]),
            "starts": short_time(r["starts_at"]),
            "ends": short_time(r["ends_at"]),
            "silenced": r["silenced"],
            "by": r["created_by"],
            "comment": r["comment"],
        }
        for r in rows
    ]
    print_table(
        table,
        [
            ("id", "id"),
            ("state", "state"),
            ("matchers", "matchers"),
            ("starts", "starts"),
            ("ends", "ends"),
            ("silenced", "silenced"),
            ("by", "by"),
            ("comment", "comment"),
        ],
        empty="no silences active or pending" + ("" if args.expired else " (use --expired for past ones)"),
    )
    return EXIT_OK


async def silence_extend(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    silence = await services.extend_silence(args.id, parse_duration(args.duration, "DURATION", positive=True), ctx.actor)
    say(f"silence #{silence.id} now ends {short_time(silence.ends_at)}")
    return EXIT_OK


async def silence_expire(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    silence = await services.expire_silence(args.id, ctx.actor)
    say(f"silence #{silence.id} expired {short_time(silence.ends_at)}; pages it held are sent now")
    return EXIT_OK


async def incident_snooze(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services
    from engine.incidents.services.silences import LONGEST_SNOOZE

    duration = parse_duration(args.duration, "DURATION", positive=True)
    if duration > LONGEST_SNOOZE:
        # Named as the CLI names it, with the value (the service's "duration: is too long" had neither).
        raise UsageError(f"DURATION: {args.duration!r} is too long: a snooze lasts at most {LONGEST_SNOOZE.days} days")
    inc = await services.snooze(args.key, duration, ctx.actor)
    until = (inc.escalation or {}).get("snoozed_until")
    say(f"{inc.key} paging snoozed until {short_time(until)}; it re-pages then unless acknowledged")
    return EXIT_OK


async def incident_unsnooze(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.unsnooze(args.key, ctx.actor)
    say(f"{inc.key} snooze ended: paging resumes")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser_class = sub._parser_class
    p = sub.add_parser("silence", help="silences: matching firings open nothing and page nobody while one is active", parents=[common])
    ssub = p.add_subparsers(dest="silence_command", metavar="COMMAND", required=True, parser_class=parser_class)
    c = ssub.add_parser(
        "add", help="add a silence: pulseguard silence add service=checkout severity!=critical --for 2h -c deploy", parents=[common]
    )
    c.add_argument(
        "matchers",
        nargs="+",
        metavar="MATCHER",
        help="FIELD=VALUE, FIELD!=VALUE, FIELD=~REGEX or FIELD!~REGEX; fields: service, target, trigger, severity, source, label.NAME",
    )
    c.add_argument("--for", dest="duration", metavar="DURATION", help="how long, e.g. 30m or 2h (or --until)")
    c.add_argument("--until", dest="end", metavar="T", help="when it ends")
    c.add_argument("--start", metavar="T", help="when it starts (default: now)")
    c.add_argument("--comment", "-c", required=True, help="why (shown with the silence)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=silence_add, needs_db=True)
    c = ssub.add_parser("list", help="active and pending silences (--expired: expired ones too)", parents=[common])
    c.add_argument("--expired", action="store_true", help="include expired silences")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=silence_list, needs_db=True)
    c = ssub.add_parser("extend", help="move a silence's end later: silence extend ID 1h", parents=[common])
    c.add_argument("id", type=ROW_ID, metavar="ID", help="the silence's id, as `silence list` shows it")
    c.add_argument("duration", metavar="DURATION", help="how much longer, e.g. 30m or 1h")
    c.set_defaults(handler=silence_extend, needs_db=True)
    c = ssub.add_parser("expire", help="end a silence now (pages it held are sent)", parents=[common])
    c.add_argument("id", type=ROW_ID, metavar="ID", help="the silence's id, as `silence list` shows it")
    c.set_defaults(handler=silence_expire, needs_db=True)
