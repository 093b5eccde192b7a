"""`pulseguard metrics push|query`: store one sample, read a series."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.cli.common import (
    EXIT_OK,
    LIMIT,
    Context,
    UsageError,
    named_as_typed,
    parse_time,
    print_json,
    print_table,
    short_time,
    takes_dash_values,
)


async def metrics_push(args: argparse.Namespace, ctx: Context) -> int:
    from engine.monitor.metrics import push_sample

    try:
        value = float(args.value)
    except ValueError:
        raise UsageError(f"VALUE: {args.value!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"VALUE: {args.value!r} is not a finite number")
    at = parse_time(args.at, "--at") if args.at else None
    with named_as_typed({"at": "--at", "series": "SERIES"}):
        stored = await push_sample(args.series, value, at)
    if ctx.json:
        print_json(stored)
    elif stored["stored"]:
        print(f"stored {stored['series']} = {stored['value']:g} at {short_time(stored['at'])}")
    else:
        print(f"already stored: {stored['series']} has a value at {short_time(stored['at'])}; nothing changed")
    return EXIT_OK


async def metrics_query(args: argparse.Namespace, ctx: Context) -> int:
    from engine.monitor.metrics import find_series, query_series

    since = parse_time(args.since, "--since") if args.since else datetime.now(UTC) - timedelta(hours=1)
    until = parse_time(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        raise UsageError("--until must be after --since")
    with named_as_typed({"series": "SERIES"}):
        points = await query_series(args.series, since=since, until=until, target=args.target, resolution=args.resolution, limit=args.limit)
    if not points and args.target and (targets := await _unknown_target(args.target, ctx)) is not None:
        # A mistyped --target would otherwise read as a target that has been quiet.
        raise UsageError(f"--target: no target {args.target!r} ({targets})")
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


async def _unknown_target(name: str, ctx: Context) -> str | None:
    """None when `name` is a configured or recorded target (or produced a series); otherwise
    the known targets, to name in the error."""
    from engine.storage.monitor_models import MetricSeries, MonitorTarget

    names = {t.name for t in getattr(ctx.config, "targets", None) or []}
    names |= set(await MonitorTarget.all().values_list("name", flat=True))
    if name in names or await MetricSeries.filter(target=name).exists():
        return None
    shown = sorted(names)
    if not shown:
        return "there are no targets"
    return "known targets: " + ", ".join(shown[:10]) + (", …" if len(shown) > 10 else "")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser_class = sub._parser_class

    p = sub.add_parser("metrics", help="push and query metric series", parents=[common])
    msub = p.add_subparsers(dest="metrics_command", metavar="COMMAND", required=True, parser_class=parser_class)
    c = msub.add_parser("push", help='store one sample: SERIES is name or name{label="value"}', parents=[common])
    c.add_argument("series", metavar="SERIES", help='series name, e.g. queue_depth or queue_depth{job="x"}')
    c.add_argument("value", metavar="VALUE", help="the sample's value (a number)")
    takes_dash_values(c)  # -inf, -1e3: a value, which the sample's check judges
    c.add_argument("--at", metavar="T", help="when it was measured (ISO 8601 or an age like 5m; default now)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=metrics_push, needs_db=True)
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
    c.set_defaults(handler=metrics_query, needs_db=True)
