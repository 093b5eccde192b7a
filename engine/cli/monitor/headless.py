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
    from engine.storage.outcome import connection_summary

    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logs.configure(level, config)
    if not verbose:  # while PostgreSQL restarts, one line per loop and message, not a traceback each round
        logs.summarize_exceptions(connection_summary)


async def run_engine(args: argparse.Namespace, ctx: Context) -> int:
    if getattr(args, "action", None) == "status":
        return await show_status(args, ctx)
    from engine.config.loading import default_config
    from engine.runtime.engine import Engine

    config = ctx.config or default_config()
    configure_logging(args.quiet, args.verbose, config)
    # What `config check` warns of about targets and triggers, said where the engine runs too.
    for warning in [*config.missing_env(), *config.monitoring_warnings()]:
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
            # What it probes and evaluates: disabled targets and triggers are not running.
            targets = sum(1 for t in config.targets if getattr(t, "enabled", True))
            triggers = sum(1 for t in config.triggers.values() if getattr(t, "enabled", True))
            counts = f"{targets} target{'' if targets == 1 else 's'}, {triggers} trigger{'' if triggers == 1 else 's'}"
            say(f"engine: running ({counts}) on {ctx.database.label}")
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

        sock = ctx.extras.pop("api_socket", None)  # taken by before_database
        try:
            api = attach_api(engine, listen, sock=sock)
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
    # No reload on SIGHUP: say so and keep running. SIGHUP's default ended the process at once,
    # with no hand-over of the lease, and left whoever sent it believing the file was reloaded.
    loop.add_signal_handler(signal.SIGHUP, lambda: _no_reload(config))
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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await engine.stop()
    say("engine: stopped")
    return EXIT_OK


def _no_reload(config: Any) -> None:
    path = getattr(config, "path", None)
    logging.getLogger("pulseguard.engine").warning(
        "SIGHUP: the engine reads its configuration only at start; nothing was reloaded (restart it to apply changes%s)",
        f" to {path}" if path else "",
    )


def _seconds(delta: float) -> str:
    return f"{delta:.0f} s" if abs(delta) < 120 else f"{delta / 60:.0f} min"


async def show_status(args: argparse.Namespace, ctx: Context) -> int:
    """`pulseguard engine status`: the engines on this database, their buckets, module leases,
    heartbeats and probe lag (a cluster), or who holds the engine lease (one engine)."""
    from engine.cli.common import print_json, print_table
    from engine.runtime.cluster import cluster_summary
    from engine.runtime.lease import Lease

    cluster = await cluster_summary()
    lease = None if cluster is not None else await Lease().current()
    if ctx.json:
        print_json({"database": ctx.database.label, "mode": "cluster" if cluster else "single", "cluster": cluster, "engine_lease": lease})
        return EXIT_OK
    if cluster is None:
        if lease is None:
            print(f"no engine has run on {ctx.database.label} yet (start one with `pulseguard engine`)")
        elif lease["expired"]:
            print(f"one engine at a time on {ctx.database.label}: none is running (the last one, {lease['holder']}, stopped or died)")
        else:
            print(f"one engine at a time on {ctx.database.label}: {lease['holder']} runs it (the engine lease)")
        return EXIT_OK
    n = cluster["running"]
    print(
        f"cluster on {ctx.database.label}: {n} engine{'s' if n != 1 else ''} running, "
        f"{cluster['buckets']['claimed']} of {cluster['buckets']['total']} buckets claimed\n"
    )
    rows = [
        {
            **e,
            "state": "running" if e["alive"] else "gone",
            "buckets": e["buckets"] if e["alive"] else None,
            "modules": ", ".join(e["modules"]) or None,
            "beat": f"{_seconds(e['beat_seconds_ago'])} ago",
            "lag": f"{e['lag_p99_ms']:.0f} ms" if e["lag_p99_ms"] is not None else None,
        }
        for e in cluster["engines"]
    ]
    print_table(
        rows,
        [("engine", "engine"), ("state", "state"), ("version", "version"), ("buckets", "buckets"), ("modules", "modules"),
         ("beat", "heartbeat"), ("lag", "lag p99"), ("probes", "probes")],
        empty="(no engine is running: start one with `pulseguard engine`)",
    )  # fmt: skip
    print()
    modules = [
        {
            **m,
            "holder": m["holder"] if m["held"] else f"nobody (was {m['holder']})",
            "expires": f"in {_seconds(m['expires_in_seconds'])}" if m["held"] else "expired",
        }
        for m in cluster["modules"]
    ]
    print_table(
        modules,
        [("module", "module"), ("holder", "held by"), ("version", "version"), ("expires", "expires")],
        empty="(no module has run yet)",
    )
    return EXIT_OK


def before_database(args: argparse.Namespace, ctx: Context) -> None:
    """What can refuse the engine's start without a database, checked before one is opened (or
    created): `[engine] cluster = true` on SQLite, a bad --api address, a port in use."""
    if getattr(args, "action", None) == "status":
        return
    from engine.api.startup import database_for
    from engine.config.loading import default_config
    from engine.core.errors import StartupError

    config = ctx.config or default_config()
    database = database_for(args, config)
    if config.engine.cluster and database.kind != "postgres":
        raise StartupError(
            f"[engine] cluster = true needs PostgreSQL, and {database.label} is SQLite: "
            "engines cannot share a SQLite file (remove the setting to run one engine here)"
        )
    listen = listen_address(args, config)
    if listen:
        from engine.rest.server import ApiAddressError, take_port

        try:
            sock = take_port(listen)
        except ApiAddressError as exc:
            raise UsageError(str(exc)) from None
        ctx.extras["api_socket"] = sock
        ctx.extras.setdefault("on_exit", []).append(sock.close)  # closing twice is harmless


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
    # runs_engine: the engine wires escalation itself
    p.set_defaults(handler=run_engine, before_database=before_database, needs_db=True, runs_engine=True)
