"""Monitoring subcommands: `engine`, `targets`, `metrics push|query`, `maintenance add|list|end`
and `demo`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.cli.common import (
    EXIT_OK,
    LIMIT,
    ROW_ID,
    Context,
    UsageError,
    age,
    number,
    parse_duration,
    parse_time,
    print_json,
    print_table,
    say,
    short_time,
)

UTC = UTC


# --- engine ---------------------------------------------------------------------------------


def _configure_logging(quiet: bool, verbose: bool, config: Any = None) -> None:
    from engine.core import logs

    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logs.configure(level, config)


async def _engine(args: argparse.Namespace, ctx: Context) -> int:
    from engine.config.loading import default_config
    from engine.runtime.engine import Engine

    config = ctx.config or default_config()
    _configure_logging(args.quiet, args.verbose, config)
    for warning in config.missing_env():
        print(f"warning: {warning}", file=sys.stderr)

    def say(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    def role_changed(role: str) -> None:
        if stop.is_set():
            return  # stopping: the leader services wind down, nothing to announce
        if role == "engine":
            say(f"engine: running ({len(config.targets)} targets, {len(config.triggers)} triggers) on {ctx.database.label}")
        elif engine.lease.problem:  # our own database trouble, not another process
            say(f"engine: paused on {ctx.database.label}: {engine.lease.problem}; resuming when it can be written")
        else:
            say(f"engine: standby on {ctx.database.label}: another process holds the engine lease; taking over if it stops")

    stop = asyncio.Event()
    engine = Engine(config, database=ctx.database, role="headless", on_role_change=role_changed)
    listen = listen_address(args, config)
    api_url = None
    if listen:  # no --api and no [engine] api: no port is opened
        from engine.rest.server import ApiAddressError, attach_api

        try:
            api = attach_api(engine, listen)
        except ApiAddressError as exc:
            raise UsageError(str(exc)) from None
        api_url = api.url
        say(f"engine: API and status page on {api.url}")
    # What this process runs, on stderr (a service manager's log): an engine started without
    # its configuration must not look like one that pages people.
    from engine.notify.channels import settings_from_config
    from engine.notify.deliverer import pending_unservable
    from engine.runtime.engine import start_summary

    summary = start_summary(
        config,
        ctx.database,
        api_url=api_url,
        new_database=bool(ctx.extras.get("created_database")),
        waiting=await pending_unservable(settings_from_config(config)),
    )
    for line in summary:
        if not args.quiet or "no configuration file" in line or "pending notification" in line:  # --quiet: the warnings
            print(line, file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start()
        if not await engine.wait_leader(0.5):
            current = await engine.lease.current()
            if current and not current["expired"] and not engine.is_leader:
                role_changed("standby")
                say(f"engine: lease held by {current['holder']}")
        await stop.wait()
        say("engine: stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await engine.stop()
    say("engine: stopped")
    return EXIT_OK


# --- targets --------------------------------------------------------------------------------


async def _targets(args: argparse.Namespace, ctx: Context) -> int:
    from engine.monitor.metrics import list_targets, target_address
    from engine.runtime.lease import Lease

    rows = await list_targets()
    known = {r["name"] for r in rows}
    if ctx.config is not None:
        for t in ctx.config.targets:
            if t.name not in known:
                rows.append(
                    {
                        "name": t.name,
                        "kind": t.kind,
                        "address": target_address(t),
                        "service": t.service,
                        "interval": t.interval,
                        "timeout": t.timeout,
                        "active": True,
                        "state": "unknown",
                        "last_at": None,
                        "last_ok": None,
                        "last_latency_ms": None,
                        "last_status_code": None,
                        "last_error": "never probed (no engine has run with this target)",
                        "last_ok_at": None,
                        "last_change_at": None,
                        "cert_days_left": None,
                        "updated_at": None,
                    }
                )
        rows.sort(key=lambda r: r["name"])
    lease = await Lease().current()
    if ctx.json:
        print_json({"engine": lease, "targets": rows})
        return EXIT_OK
    table = []
    running = lease is not None and not lease["expired"]
    for r in rows:
        latency = r["last_latency_ms"]
        state = r["state"]
        if not running and state in ("up", "down"):
            state = f"no data (was {state})"  # nobody is probing: the last state is history
        table.append(
            {
                "name": r["name"],
                "kind": r["kind"],
                "state": state,
                "latency": f"{latency:.0f} ms" if latency is not None else None,
                "code": r["last_status_code"],
                "checked": age(r["last_at"]) + " ago" if r["last_at"] else None,
                "error": r["last_error"],
                "service": r["service"],
                "cert": f"{r['cert_days_left']:.0f} d" if r.get("cert_days_left") is not None else None,
            }
        )
    print_table(
        table,
        [
            ("name", "target"),
            ("kind", "kind"),
            ("state", "state"),
            ("latency", "latency"),
            ("code", "code"),
            ("checked", "checked"),
            ("cert", "cert"),
            ("service", "service"),
            ("error", "last error"),
        ],
        empty="no targets (add [[targets]] to the configuration)",
    )
    if lease is None:
        print("\nno engine has run on this database yet (start one with `pulseguard engine`)")
    elif lease["expired"]:
        print(f"\nno engine is running (the last one, {lease['holder']}, stopped or died)")
    else:
        print(f"\nengine: {lease['holder']}")
    return EXIT_OK


# --- metrics --------------------------------------------------------------------------------


async def _metrics_push(args: argparse.Namespace, ctx: Context) -> int:
    from engine.monitor.metrics import push_sample

    try:
        value = float(args.value)
    except ValueError:
        raise UsageError(f"VALUE: {args.value!r} is not a number") from None
    at = parse_time(args.at, "--at") if args.at else None
    stored = await push_sample(args.series, value, at)
    if ctx.json:
        print_json(stored)
    elif stored["stored"]:
        print(f"stored {stored['series']} = {stored['value']:g} at {short_time(stored['at'])}")
    else:
        print(f"already stored: {stored['series']} has a value at {short_time(stored['at'])}; nothing changed")
    return EXIT_OK


async def _metrics_query(args: argparse.Namespace, ctx: Context) -> int:
    from engine.monitor.metrics import find_series, query_series

    since = parse_time(args.since, "--since") if args.since else datetime.now(UTC) - timedelta(hours=1)
    until = parse_time(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        raise UsageError("--until must be after --since")
    points = await query_series(args.series, since=since, until=until, target=args.target, resolution=args.resolution, limit=args.limit)
    if ctx.json:
        print_json(points)
        return EXIT_OK
    if not points:
        known = await find_series(args.series, args.target)
        if not known and not args.target:
            print(f"no series {args.series!r} (for a probe series such as response_time, give --target)")
        else:
            print(f"no samples of {args.series!r} since {short_time(since.isoformat())}")
        return EXIT_OK
    rolled = "count" in points[0]
    rows = []
    for p in points:
        row = {"at": short_time(p["at"]), "target": p.get("target"), "value": _num(p["value"])}
        if rolled:
            row.update(count=p["count"], min=_num(p["min"]), max=_num(p["max"]), p95=_num(p["p95"]))
        elif p.get("error"):
            row["note"] = p["error"]
        rows.append(row)
    columns = [("at", "time"), ("target", "target"), ("value", "mean" if rolled else "value")]
    if rolled:
        columns += [("count", "count"), ("min", "min"), ("max", "max"), ("p95", "p95")]
    else:
        columns.append(("note", "note"))
    print_table(rows, columns)
    return EXIT_OK


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"


# --- maintenance ----------------------------------------------------------------------------


async def _maintenance_add(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    start = parse_time(args.start, "--start") if args.start else datetime.now(UTC)
    if args.end and args.duration:
        raise UsageError("give either --end or --for, not both")
    if args.end:
        end = parse_time(args.end, "--end")
    elif args.duration:
        end = start + parse_duration(args.duration, "--for")
    else:
        raise UsageError("give the end of the window with --end T or --for DURATION (e.g. --for 2h)")
    if not (args.service or args.target):
        raise UsageError("name what the window covers with --service NAME or --target NAME")
    service_names: set[str] = set()
    if ctx.config is not None:
        target_names = {t.name for t in ctx.config.targets}
        service_names = {s.name for s in ctx.config.services} | {t.service for t in ctx.config.targets if t.service}
        for name in args.target or []:
            if name not in target_names:
                print(f"warning: no target {name!r} in the configuration", file=sys.stderr)
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


async def _maintenance_list(args: argparse.Namespace, ctx: Context) -> int:
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


async def _maintenance_end(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    window = await services.end_maintenance(args.id, ctx.actor)
    say(f"maintenance #{window.id} ended: {window.title}")
    return EXIT_OK


# --- demo -----------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace, ctx: Context) -> int:
    from engine.runtime.demo import run_demo_printing

    return await run_demo_printing(duration=args.duration, keep=args.keep)


# --- registration ---------------------------------------------------------------------------


def listen_address(args: argparse.Namespace, config: Any) -> str | None:
    """Where the headless engine serves its API: --api, else `[engine] api`, else nowhere."""
    api: str | None = getattr(args, "api", None) or config.engine.api
    return api


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser_class = sub._parser_class

    p = sub.add_parser("engine", help="run the engine headless (probes, triggers, escalation, API); Ctrl-C stops it", parents=[common])
    p.add_argument("--quiet", "-q", action="store_true", help="print warnings only")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p.add_argument("--api", metavar="HOST:PORT", help="also serve the REST API and status page here (or [engine] api)")
    p.set_defaults(handler=_engine, needs_db=True, runs_engine=True)  # the engine wires escalation itself

    p = sub.add_parser("targets", help="each target's state, last result and latency", parents=[common])
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_targets, needs_db=True)

    p = sub.add_parser("metrics", help="push and query metric series", parents=[common])
    msub = p.add_subparsers(dest="metrics_command", metavar="COMMAND", required=True, parser_class=parser_class)
    c = msub.add_parser("push", help='store one sample: SERIES is name or name{label="value"}', parents=[common])
    c.add_argument("series", metavar="SERIES", help='series name, e.g. queue_depth or queue_depth{job="x"}')
    c.add_argument("value", metavar="VALUE", help="the sample's value (a number)")
    c.add_argument("--at", metavar="T", help="when it was measured (ISO 8601 or an age like 5m; default now)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=_metrics_push, needs_db=True)
    c = msub.add_parser("query", help="samples of a series (raw, or per-minute rollups for long spans)", parents=[common])
    c.add_argument("series", metavar="SERIES", help='e.g. cpu_percent, queue_depth{job="x"}, response_time --target api')
    c.add_argument("--since", metavar="D", help="start: an age like 15m, 2h, 7d or an ISO time (default 1h)")
    c.add_argument("--until", metavar="T", help="end: an ISO time or an age (default now)")
    c.add_argument("--target", help="only this target's series (needed for response_time and ok)")
    c.add_argument(
        "--resolution", choices=["auto", "raw", "minute"], default="auto", help="raw samples, per-minute rollups, or auto (by the range)"
    )
    c.add_argument("--limit", type=LIMIT, default=10_000, help="at most this many points (default 10000)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=_metrics_query, needs_db=True)

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
    c.set_defaults(handler=_maintenance_add, needs_db=True)
    c = msub.add_parser("list", help="current and upcoming windows (--all: past ones too)", parents=[common])
    c.add_argument("--all", action="store_true", help="include ended windows")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=_maintenance_list, needs_db=True)
    c = msub.add_parser("end", help="end a window now", parents=[common])
    c.add_argument("id", type=ROW_ID, metavar="ID", help="the window's id, as `maintenance list` shows it")
    c.set_defaults(handler=_maintenance_end, needs_db=True)

    p = sub.add_parser("demo", help="a flaky local service, probed until incidents open (no configuration needed)", parents=[common])
    p.add_argument(
        "--duration", type=number(0, 10**9), default=None, metavar="SECONDS", help="stop after this long (default: until Ctrl-C)"
    )
    p.add_argument("--keep", action="store_true", help="keep the demo database and print its path")
    p.set_defaults(handler=_demo, needs_db=False)
