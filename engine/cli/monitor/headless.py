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


def listen_address(args: argparse.Namespace, config: Any) -> str | None:
    """Where the headless engine serves its API: --api, else `[engine] api`, else nowhere."""
    api: str | None = getattr(args, "api", None) or config.engine.api
    return api


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("engine", help="run the engine headless (probes, triggers, escalation, API); Ctrl-C stops it", parents=[common])
    p.add_argument("--quiet", "-q", action="store_true", help="print warnings only")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p.add_argument("--api", metavar="HOST:PORT", help="also serve the REST API and status page here (or [engine] api)")
    p.set_defaults(handler=run_engine, needs_db=True, runs_engine=True)  # the engine wires escalation itself
