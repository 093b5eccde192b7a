"""`pulseguard targets`: each target's state, last result and latency."""

from __future__ import annotations

import argparse
from datetime import timedelta

from engine.cli.common import (
    EXIT_OK,
    Context,
    UsageError,
    age,
    print_json,
    print_table,
)
from engine.core.timefmt import format_time


async def show_targets(args: argparse.Namespace, ctx: Context) -> int:
    from engine.monitor.metrics import list_targets, target_address
    from engine.runtime.cluster import cluster_summary
    from engine.runtime.lease import Lease

    rows = await list_targets()
    known = {r["name"] for r in rows}
    if ctx.config is not None:
        for t in ctx.config.targets:
            if t.name not in known:
                # An engine never probes a disabled target: it is not waiting for its first probe.
                enabled = getattr(t, "enabled", True)
                rows.append(
                    {
                        "name": t.name,
                        "kind": t.kind,
                        "address": target_address(t),
                        "service": t.service,
                        "interval": t.interval,
                        "timeout": t.timeout,
                        "active": enabled,
                        "state": "unknown" if enabled else "disabled",
                        "last_at": None,
                        "last_ok": None,
                        "last_latency_ms": None,
                        "last_status_code": None,
                        "last_error": "never probed (no engine has run with this target)"
                        if enabled
                        else "not probed: enabled = false in the configuration",
                        "last_ok_at": None,
                        "last_change_at": None,
                        "cert_days_left": None,
                        "updated_at": None,
                    }
                )
        rows.sort(key=lambda r: r["name"])
    # A cluster's engines hold no engine lease: they probe while any of them runs.
    cluster = await cluster_summary()
    lease = None if cluster is not None else await Lease().current()
    if ctx.json:
        print_json({"engine": lease, "cluster": cluster, "targets": rows})
        return EXIT_OK
    table = []
    running = cluster["running"] > 0 if cluster is not None else lease is not None and not lease["expired"]
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
    if cluster is not None:
        n = cluster["running"]
        print(f"\ncluster: {n} engine{'s' if n != 1 else ''} running (pulseguard engine status for each one's buckets)")
    elif lease is None:
        print("\nno engine has run on this database yet (start one with `pulseguard engine`)")
    elif lease["expired"]:
        print(f"\nno engine is running (the last one, {lease['holder']}, stopped or died)")
    else:
        print(f"\nengine: {lease['holder']}")
    return EXIT_OK


async def ping_heartbeat(args: argparse.Namespace, ctx: Context) -> int:
    """`pulseguard heartbeat NAME`: a job on a machine with PulseGuard pings without curl."""
    from engine.monitor.heartbeats import heartbeat_targets, record_ping

    known = {t.name: t for t in heartbeat_targets(ctx.config.targets if ctx.config is not None else [])}
    target = known.get(args.name)
    if target is None:
        names = ", ".join(sorted(known)) or 'none is configured (a [[targets]] entry with kind = "heartbeat")'
        raise UsageError(f"{args.name!r} is not a heartbeat target (heartbeat targets: {names})")
    at = await record_ping(target.name, "cli")
    if not args.quiet:
        # In the display zone, as every time shown to a person; and when the next ping is due.
        due = at + timedelta(seconds=target.interval + target.grace)
        print(f"pinged {target.name} at {format_time(at, seconds=True)}; missed unless it pings again by {format_time(due, seconds=True)}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("targets", help="each target's state, last result and latency", parents=[common])
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=show_targets, needs_db=True)
    p = sub.add_parser("heartbeat", help="ping a heartbeat target (what a job's curl to /api/heartbeats/TOKEN does)", parents=[common])
    p.add_argument("name", help="the heartbeat target's name")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.set_defaults(handler=ping_heartbeat, needs_db=True)
