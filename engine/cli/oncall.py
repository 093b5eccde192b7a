"""`pulseguard oncall …`: who is on call, overrides, and an iCalendar feed of the shifts.

pulseguard oncall [--at TIME] [--schedule S] [--days N] [--json]
pulseguard oncall override USER [--covers WHO] --from TIME --to TIME [--schedule S] [--reason R]
pulseguard oncall overrides [--schedule S] [--all] [--json]
pulseguard oncall cancel-override ID
pulseguard oncall export --ical [--schedule S] [--days N] [--output FILE]
pulseguard users [--json] | users show NAME | users test NAME
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

EXIT_OK = 0
_REL = re.compile(r"^([+-])\s*(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _usage(message: str) -> Exception:
    from engine.cli.common import UsageError

    return UsageError(message)


def parse_when(text: str, tz: ZoneInfo, what: str, now: datetime | None = None) -> datetime:
    """'now', '+2h' / '-1d' (relative to `now`: a command's times share one), or ISO 8601 (a
    time without offset is in `tz`; one the clocks skip there is refused, not moved)."""
    now = now or datetime.now(UTC)
    value = (text or "").strip()
    if value == "now":
        return now
    from engine.core.domain import LONGEST_DURATION
    from engine.core.inputs import in_zone

    rel = _REL.match(value)
    if rel:
        delta = timedelta(seconds=float(rel.group(2)) * _UNITS[rel.group(3)])
        if delta > LONGEST_DURATION:
            raise _usage(f"{what}: {text!r} is too far off (at most {LONGEST_DURATION.days} days)")
        return now + delta if rel.group(1) == "+" else now - delta
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _usage(f"{what}: {text!r} is not a time (expected ISO 8601 like 2026-03-30T09:00, 'now', '+2h' or '-1d')") from None
    return in_zone(parsed, tz, text, what)


def _config(ctx: Any) -> Any:
    if ctx.config is None:
        raise _usage("no configuration file: on-call schedules live in pulseguard.toml (pass --config FILE or run `pulseguard init`)")
    if not ctx.config.schedules:
        raise _usage("the configuration has no [[schedules]]")
    return ctx.config


def _pick_schedule(config: Any, name: str | None) -> str | None:
    if name is None:
        return None
    names = [s.name for s in config.schedules]
    if name not in names:
        raise _usage(f"--schedule: no schedule named {name!r} (schedules: {', '.join(names)})")
    return name


def _local(iso: str | None, tz: str) -> str:
    if not iso:
        return "-"
    from engine.core.timefmt import format_time

    return datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)).strftime("%a ") + format_time(iso, zone=tz, date=True)


def _who(person: dict[str, Any] | None) -> str:
    if not person:
        return "(nobody)"
    return person["id"] if person["name"] == person["id"] else f"{person['name']} ({person['id']})"


async def show(args: argparse.Namespace, ctx: Any) -> int:
    from engine.cli.common import print_table
    from engine.oncall.overview import load_oncall_overview

    config = _config(ctx)
    engine_tz = ZoneInfo(config.engine.timezone)
    now = datetime.now(UTC)
    at = parse_when(args.at, engine_tz, "--at", now) if args.at else now
    schedule = _pick_schedule(config, args.schedule)
    overview = await load_oncall_overview(config, at, days=args.days, schedule=schedule)
    if ctx.json or args.json:
        print(json.dumps(overview, indent=2, default=str, ensure_ascii=False))
        return EXIT_OK
    rows = []
    for s in overview["schedules"]:
        cur, nxt = s.get("on_call") or {}, s.get("next_handoff")
        rows.append(
            {
                "schedule": s["name"],
                "on_call": _who(cur.get("person")) if cur else s.get("note", "-"),
                "since": _local(cur.get("start"), s["timezone"]) if cur else "-",
                "until": (_local(cur["end"], s["timezone"]) if cur.get("end") else "no hand-off") if cur else "-",
                "next": f"{_who(nxt['person'])} at {_local(nxt['at'], s['timezone'])}" if nxt else "-",
                "override": (cur.get("override") or "-") if cur else "-",
            }
        )
    print(f"on call at {_local(overview['now'], config.engine.timezone)}")
    print_table(
        rows,
        [
            ("schedule", "schedule"),
            ("on_call", "on call"),
            ("since", "since"),
            ("until", "until"),
            ("next", "next hand-off"),
            ("override", "override"),
        ],
    )
    if schedule is not None:
        s = overview["schedules"][0]
        print(f"\nshifts of {s['name']} for the next {args.days:g} days ({s['timezone']}):")
        shifts = [
            {
                "who": _who(x["person"]),
                "from": _local(x["start"], s["timezone"]),
                "to": _local(x["end"], s["timezone"]),
                "note": x["override"] or x["layer"],
            }
            for x in s["shifts"]
        ]
        print_table(shifts, [("who", "who"), ("from", "from"), ("to", "to"), ("note", "layer / override")])
    return EXIT_OK


async def override(args: argparse.Namespace, ctx: Any) -> int:
    from engine.oncall.overrides import create_override

    config = _config(ctx)
    names = [s.name for s in config.schedules]
    name = _pick_schedule(config, args.schedule)
    if name is None:
        if len(names) > 1:
            raise _usage(f"--schedule: say which schedule ({', '.join(names)})")
        name = names[0]
    sched = config.schedule(name)
    tz = ZoneInfo(sched.timezone or config.engine.timezone)
    # One "now" for both: `--from +1h --to +1h` is the same moment, not a microsecond apart.
    now = datetime.now(UTC)
    start = parse_when(args.from_, tz, "--from", now)
    end = parse_when(args.to, tz, "--to", now)
    # Named by the option to fix, with the times as read (the service said "end: must be after
    # the start" for a --to already past, as maintenance windows and silences did).
    if end <= now:
        raise _usage(f"--to: {args.to!r} ({_local(end.isoformat(), tz.key)}) has already passed: an override must end in the future")
    if end == start:
        raise _usage(
            f"--to: {args.to!r} ({_local(end.isoformat(), tz.key)}) is the same time as --from {args.from_!r}: "
            "an override must last some time"
        )
    if end <= start:
        raise _usage(
            f"--to: {args.to!r} ({_local(end.isoformat(), tz.key)}) is not after --from {args.from_!r} "
            f"({_local(start.isoformat(), tz.key)}): an override must end after it starts"
        )
    from engine.cli.common import named_as_typed

    with named_as_typed({"user": "USER", "covers": "--covers", "reason": "--reason"}):
        row = await create_override(
            config,
            schedule=name,
            user=args.user,
            covers=args.covers,
            start=start,
            end=end,
            actor=ctx.actor,
            reason=args.reason or "",
            now=now,
        )
    who = f"{row.user} covers {row.covers}" if row.covers else f"{row.user} is on call"
    print(
        f"override #{row.id}: {who} on {name} from {_local(row.starts_at.isoformat(), tz.key)} to {_local(row.ends_at.isoformat(), tz.key)}"
    )
    return EXIT_OK


async def list_overrides_cmd(args: argparse.Namespace, ctx: Any) -> int:
    from engine.cli.common import print_table
    from engine.oncall.overrides import list_overrides

    config = _config(ctx)
    rows = await list_overrides(_pick_schedule(config, args.schedule), include_past=args.all)
    if ctx.json or args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    tz = config.engine.timezone
    shown = [{**r, "start": _local(r["start"], tz), "end": _local(r["end"], tz)} for r in rows]
    print_table(
        shown,
        [
            ("id", "id"),
            ("schedule", "schedule"),
            ("user", "user"),
            ("covers", "covers"),
            ("start", "from"),
            ("end", "to"),
            ("reason", "reason"),
        ],
        empty="(no overrides)",
    )
    return EXIT_OK


async def cancel_override_cmd(args: argparse.Namespace, ctx: Any) -> int:
    from engine.oncall.overrides import cancel_override

    row = await cancel_override(_config(ctx), args.id, ctx.actor)
    print(f"override #{row.id} cancelled")
    return EXIT_OK


async def export(args: argparse.Namespace, ctx: Any) -> int:
    from engine.oncall.ical import shifts_to_ical
    from engine.oncall.overrides import overrides_by_schedule
    from engine.oncall.schedule import schedules_from_config

    if not args.ical:
        raise _usage("export: give the format (--ical)")
    config = _config(ctx)
    name = _pick_schedule(config, args.schedule)
    now = datetime.now(UTC)
    start = now - timedelta(days=7)
    end = now + timedelta(days=args.days)
    extra = await overrides_by_schedule(start, end)
    shifts = []
    for sname, sched in schedules_from_config(config).items():
        if name is not None and sname != name:
            continue
        shifts += sched.shifts(start, end, extra.get(sname, []))
    names = {u.id: (u.name or u.id) for u in config.users}
    text = shifts_to_ical(shifts, names=names, now=now, calendar_name=f"PulseGuard on-call{': ' + name if name else ''}")
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            raise _usage(f"--output: cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"wrote {sum(1 for s in shifts if s.user)} shifts to {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


async def show_services(args: argparse.Namespace, ctx: Any) -> int:
    """`pulseguard services`: the catalogue: owner, policy, who is paged first, on call now."""
    from engine.cli.common import print_json, print_table, short_time
    from engine.config.loading import default_config
    from engine.escalation.catalogue import service_catalogue

    rows = await service_catalogue(ctx.config or default_config())
    if ctx.json:
        print_json(rows)
        return EXIT_OK
    table = []
    for r in rows:
        who = r["on_call_name"] or (f"from {r['on_call_source']}" if r["on_call_source"] else None)
        if who and r["on_call_until"]:
            who += f" until {short_time(r['on_call_until'])}"
        table.append(
            {
                **r,
                "policy": r["escalation_policy"] or "[escalation_policy]",
                "critical": ", ".join(r["pages_first"]["critical"]) or "nobody",
                "who": who,
            }
        )
    print_table(
        table,
        [("name", "service"), ("owner", "owner"), ("policy", "policy"), ("critical", "critical pages first"),
         ("schedule", "schedule"), ("who", "on call now"), ("runbook", "runbook")],
        empty="no services (add [[services]] to the configuration)",
    )  # fmt: skip
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser | None = None) -> None:
    from engine.cli.common import ROW_ID, number

    parents = [common] if common is not None else []
    p = subparsers.add_parser("oncall", help="who is on call; overrides; iCalendar export", parents=parents)
    p.add_argument("--at", help="when (ISO 8601 in the engine's time zone, 'now', '+2h', '-1d'); default now")
    p.add_argument("--schedule", help="one schedule (also lists its shifts)")
    p.add_argument("--days", type=number(0, 3660), default=14, help="how far ahead shifts are listed (default 14)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=show, needs_db=True)
    sub = p.add_subparsers(dest="oncall_command", metavar="COMMAND", parser_class=subparsers._parser_class)

    c = sub.add_parser("override", help="USER covers someone (or everyone) from … to …", parents=parents)
    c.add_argument("user", help="who takes over")
    c.add_argument("--covers", help="whose shift is covered (default: whoever is on call)")
    c.add_argument("--from", dest="from_", required=True, metavar="TIME", help="start (ISO 8601 in the schedule's time zone, 'now', '+1h')")
    c.add_argument("--to", required=True, metavar="TIME", help="end")
    c.add_argument("--schedule", help="which schedule (needed when there are several)")
    c.add_argument("--reason", help="why, shown with the override")
    c.set_defaults(handler=override, needs_db=True)

    c = sub.add_parser("overrides", help="list overrides", parents=parents)
    c.add_argument("--schedule", help="only this schedule's overrides")
    c.add_argument("--all", action="store_true", help="include past overrides")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=list_overrides_cmd, needs_db=True)

    c = sub.add_parser("cancel-override", help="cancel an override by id", parents=parents)
    c.add_argument("id", type=ROW_ID, help="the override's id, as `oncall overrides` lists them")
    c.set_defaults(handler=cancel_override_cmd, needs_db=True)

    c = sub.add_parser("export", help="the shifts as an iCalendar feed", parents=parents)
    c.add_argument("--ical", action="store_true", help="iCalendar (RFC 5545) output")
    c.add_argument("--schedule", help="only this schedule's shifts")
    c.add_argument("--days", type=number(0, 3660), default=60, help="how far ahead (default 60)")
    c.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    c.set_defaults(handler=export, needs_db=True)
    p = subparsers.add_parser(
        "services", help="the service catalogue: owner, escalation policy, who is paged first, on call now", parents=parents
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=show_services, needs_db=True)
    register_users(subparsers, parents)


def _user(ctx: Any, user_id: str) -> Any:
    if ctx.config is None:
        raise _usage("no configuration file: users live in pulseguard.toml (pass --config FILE or run `pulseguard init`)")
    user = ctx.config.user(user_id)
    if user is None:
        known = ", ".join(u.id for u in ctx.config.users) or "none: add [[users]] to the configuration"
        raise _usage(f"no user with id {user_id!r} (users: {known})")
    return user


def _reads_no_database(args: argparse.Namespace, command: str) -> None:
    """People live in the configuration: a --db given here would be read by nothing, and a
    mistyped one would pass unnoticed."""
    if "db" in vars(args):  # given on the command line (PULSEGUARD_DB is for the other commands)
        raise _usage(f"`pulseguard {command}` reads the people in the configuration, not a database: leave --db out")


async def list_users(args: argparse.Namespace, ctx: Any) -> int:
    """`pulseguard users`: each person with their contact methods and rules."""
    from engine.cli.common import print_json, print_table
    from engine.escalation.contacts import describe_user

    _reads_no_database(args, "users")

    users = [describe_user(u) for u in (ctx.config.users if ctx.config is not None else [])]
    if ctx.json or args.json:
        print_json(users)
        return EXIT_OK
    rows = [
        {
            "id": u["id"],
            "name": u["name"],
            "methods": ", ".join(m["name"] for m in u["contact"]) or "-",
            "rules": "; ".join(f"{r['after']}: {r['via']}" for r in u["rules"]) or ("by e-mail" if u["email"] else "-"),
        }
        for u in users
    ]
    print_table(
        rows,
        [("id", "user"), ("name", "name"), ("methods", "contact methods"), ("rules", "when paged")],
        empty="no users (add [[users]] to the configuration)",
    )
    return EXIT_OK


async def show_user(args: argparse.Namespace, ctx: Any) -> int:
    """`pulseguard users show NAME`: one person's methods and rules."""
    from engine.cli.common import print_json
    from engine.escalation.contacts import describe_user

    _reads_no_database(args, "users show")

    u = describe_user(_user(ctx, args.user))
    if ctx.json or args.json:
        print_json(u)
        return EXIT_OK
    print(f"{u['name']} ({u['id']})" if u["name"] != u["id"] else u["id"])
    print("contact methods:")
    for m in u["contact"] or []:
        via = f" via webhook {m['gateway']}" if m["gateway"] else ""
        print(f"  {m['name']:<12} {m['method']:<10} {m['to'] or '-'}{via}")
    if not u["contact"]:
        print("  (none)")
    print("when paged:")
    for r in u["rules"]:
        print(f"  {r['after']:<12} by {r['via']}")
    if not u["rules"]:
        print(f"  by e-mail to {u['email']}" if u["email"] else "  (no rules and no e-mail address: pages cannot reach this user)")
    return EXIT_OK


async def test_user(args: argparse.Namespace, ctx: Any) -> int:
    """`pulseguard users test NAME`: a test message to each method; non-zero when any fails."""
    from engine.cli.common import print_json, print_table
    from engine.escalation.contacts import send_tests

    user = _user(ctx, args.user)
    if not user.contact:
        raise _usage(f"user {user.id!r} has no contact methods (add [[users.contact]] entries)")
    results = await send_tests(ctx.config, user.id, ctx.actor)
    if ctx.json or args.json:
        print_json(results)
    else:
        rows = [{**r, "result": "ok" if r["ok"] else "FAILED"} for r in results]
        print_table(rows, [("method", "method"), ("destination", "destination"), ("result", "result"), ("reason", "reason")])
    return EXIT_OK if all(r["ok"] for r in results) else 1


def register_users(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("users", help="people: contact methods, contact rules, test messages", parents=parents)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=list_users, needs_db=False)
    sub = p.add_subparsers(dest="users_command", metavar="COMMAND", parser_class=subparsers._parser_class)
    c = sub.add_parser("show", help="one user's contact methods and rules", parents=parents)
    c.add_argument("user", help="the user's id")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=show_user, needs_db=False)
    c = sub.add_parser("test", help="send a test message to each of the user's contact methods", parents=parents)
    c.add_argument("user", help="the user's id")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=test_user, needs_db=True)
