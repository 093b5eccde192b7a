"""`pulseguard engine`: the engine run headless, with its API when asked."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from engine.cli.common import (
    EXIT_OK,
    Context,
    UsageError,
)


def configure_logging(quiet: bool, verbose: bool, config: Any = None) -> None:
    from engine.core import logs

    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logs.configure(level, config)


async def run_engine(args: argparse.Namespace, ctx: Context) -> int:
    if getattr(args, "action", None) == "status":
        return await show_status(args, ctx)
    from engine.config.loading import default_config
    from engine.runtime.engine import Engine

    config = ctx.config or default_config()
    configure_logging(args.quiet, args.verbose, config)
    for warning in config.missing_env():
        print(f"warning: {warning}", file=sys.stderr)

    def say(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    def role_changed(role: str) -> None:
        if stop.is_set():
            return  # stopping: the leader services wind down, nothing to announce
        if role == "engine" and engine.cluster is not None:
            members = len(engine.cluster.members)
            say(
                f"engine: joined the cluster on {ctx.database.label} as {engine.holder} "
                f"({members} engine{'s' if members != 1 else ''}; probing {len(engine.cluster.owned)} of {engine.cluster.buckets} buckets)"
            )
        elif role == "engine":
            say(f"engine: running ({len(config.targets)} targets, {len(config.triggers)} triggers) on {ctx.database.label}")
        elif engine.lease.problem:  # our own database trouble, not another process
            say(f"engine: paused on {ctx.database.label}: {engine.lease.problem}; resuming when it can be written")
        else:
            say(f"engine: standby on {ctx.database.label}: another process holds the engine lease; taking over if it stops")

    stop = asyncio.Event()
    engine = Engine(config, database=ctx.database, role="headless", on_role_change=role_changed, cluster=config.engine.cluster)
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
        if engine.cluster is None and not await engine.wait_leader(0.5):
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


def _seconds(delta: float) -> str:
    return f"{delta:.0f} s" if abs(delta) < 120 else f"{delta / 60:.0f} min"


async def show_status(args: argparse.Namespace, ctx: Context) -> int:
    """`pulseguard engine status`: the engines on this database, their buckets, module leases,
    heartbeats and probe lag (a cluster), or who holds the engine lease (one engine)."""
    from datetime import UTC, datetime

    from engine.cli.common import print_json, print_table
    from engine.runtime.cluster import cluster_view

    view = await cluster_view()
    now: datetime = view["now"]
    live = [m for m in view["members"] if m["expires_at"] > now]
    claimed = {s["bucket"]: s["holder"] for s in view["shards"] if s["holder"] and s["expires_at"] and s["expires_at"] > now}
    leases = view["leases"]

    def stamped(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}

    if ctx.json:
        print_json(
            {
                "database": ctx.database.label,
                "mode": "cluster" if view["members"] or view["shards"] else "single",
                "engines": [
                    {**m, "alive": m["expires_at"] > now, "buckets": sum(1 for h in claimed.values() if h == m["holder"])}
                    for m in view["members"]
                ],
                "buckets": {"total": len(view["shards"]), "claimed": len(claimed)},
                "leases": [{**row, "expired": row["expires_at"] < now} for row in leases],
            }
        )
        return EXIT_OK
    if view["members"] or view["shards"]:
        print(
            f"cluster on {ctx.database.label}: {len(live)} engine{'s' if len(live) != 1 else ''} running, {len(claimed)} of {len(view['shards'])} buckets claimed"
        )
        rows = []
        for m in view["members"]:
            info = m["info"]
            alive = m["expires_at"] > now
            rows.append(
                {
                    "engine": m["holder"],
                    "state": "running" if alive else "gone",
                    "version": m["version"],
                    "buckets": sum(1 for h in claimed.values() if h == m["holder"]) if alive else None,
                    "modules": ", ".join(info.get("modules") or []) or None,
                    "beat": _seconds((now - m["beat_at"]).total_seconds()) + " ago",
                    "lag": f"{info['lag_p99_ms']:.0f} ms" if info.get("lag_p99_ms") is not None else None,
                    "probes": info.get("probes"),
                }
            )
        print()
        print_table(
            rows,
            [("engine", "engine"), ("state", "state"), ("version", "version"), ("buckets", "buckets"), ("modules", "modules"),
             ("beat", "heartbeat"), ("lag", "lag p99"), ("probes", "probes")],
            empty="(no engine is running: start one with `pulseguard engine`)",
        )  # fmt: skip
        print()
    table = [
        {
            "name": row["name"].removeprefix("module:"),
            "holder": row["holder"] if row["expires_at"] > now else f"nobody (was {row['holder']})",
            "version": row["version"] or None,
            "expires": ("in " + _seconds((row["expires_at"] - now).total_seconds())) if row["expires_at"] > now else "expired",
        }
        for row in leases
    ]
    if not leases and not view["members"]:
        print(f"no engine has run on {ctx.database.label} yet (start one with `pulseguard engine`)")
        return EXIT_OK
    print_table(
        table, [("name", "module" if view["shards"] else "lease"), ("holder", "held by"), ("version", "version"), ("expires", "expires")]
    )
    if not view["members"]:
        engine_lease = next((row for row in leases if row["name"] == "engine"), None)
        if engine_lease is not None:
            state = "running" if engine_lease["expires_at"] > datetime.now(UTC) else "not running"
            print(f"\none engine at a time on {ctx.database.label} (the engine lease): {state}")
    return EXIT_OK


def listen_address(args: argparse.Namespace, config: Any) -> str | None:
    """Where the headless engine serves its API: --api, else `[engine] api`, else nowhere."""
    api: str | None = getattr(args, "api", None) or config.engine.api
    return api


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("engine", help="run the engine headless (probes, triggers, escalation, API); Ctrl-C stops it", parents=[common])
    p.add_argument("action", nargs="?", choices=["status"], help="status: list the engines on this database, their buckets and modules")
    p.add_argument("--json", action="store_true", help="with status: machine-readable output")
    p.add_argument("--quiet", "-q", action="store_true", help="print warnings only")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p.add_argument("--api", metavar="HOST:PORT", help="also serve the REST API and status page here (or [engine] api)")
    p.set_defaults(handler=run_engine, needs_db=True, runs_engine=True)  # the engine wires escalation itself
