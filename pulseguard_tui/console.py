"""`pulseguard` with no subcommand: open the console.

Order matters: the database is opened in the same task that then awaits `app.run_async()`
(Tortoise's context is task-bound; the global fallback covers widget tasks), the engine loops
run beside the app when this process wins the engine lease, and the database is closed in
`finally` (aiosqlite's worker thread would otherwise keep the process alive).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from engine.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError, database_for, load_context
from engine.domain import DomainError


def build_settings(args: argparse.Namespace, config: Any, categories: list[str]) -> Any:
    """ConsoleSettings from the command line and the `[console]` section of the config."""
    from pulseguard_tui.settings import ConsoleSettings, choose_theme

    section = getattr(config, "console", None)
    theme = choose_theme(getattr(args, "theme", None), getattr(section, "theme", None))
    return ConsoleSettings(
        theme=theme,
        readonly=bool(getattr(args, "readonly", False) or getattr(section, "readonly", False)),
        bell=bool(getattr(section, "bell", True)),
        keymap=dict(getattr(section, "keymap", {}) or {}),
        users=[u.id for u in getattr(config, "users", []) or []],
        services=[s.name for s in getattr(config, "services", []) or []],
        categories=categories,
    )


async def _run(args: argparse.Namespace, ctx: Any, settings: Any) -> int:
    from engine.api import LocalEngine
    from engine.db import close_database, open_database
    from pulseguard_tui.app import PulseGuardApp
    from pulseguard_tui.engine_host import EngineHost, monitor_queries

    db = database_for(args, ctx)
    api = LocalEngine(ctx.actor, readonly=settings.readonly, db_label=db.label, categories=ctx.categories, role="console")
    api.targets_provider = monitor_queries()
    await open_database(db)
    host = None
    try:
        app = PulseGuardApp(api, settings)
        if not getattr(args, "no_engine", False):
            from engine.config import default_config

            host = EngineHost(api, ctx.config or default_config(), db)
            host.app = app
            host.start_soon()
        await app.run_async()
    finally:
        try:
            if host is not None:
                await host.stop()
        finally:
            await close_database()
    return EXIT_OK


async def _run_demo(args: argparse.Namespace, actor: str, settings: Any) -> int:
    """`pulseguard demo` in a terminal: the demo's engine in this process, under the console."""
    from engine.api import LocalEngine
    from engine.monitor.demo import start_demo
    from pulseguard_tui.app import PulseGuardApp
    from pulseguard_tui.engine_host import EngineHost, monitor_queries

    handles = await start_demo(keep=bool(getattr(args, "keep", False)))
    try:
        api = LocalEngine(actor, readonly=settings.readonly, db_label=handles.database.label, role=handles.engine.role)
        api.targets_provider = monitor_queries()
        settings.services = [s.name for s in handles.config.services]
        app = PulseGuardApp(api, settings)
        host = EngineHost(api, handles.config, handles.database, engine=handles.engine)
        host.app = app
        host.start_soon()
        app.notify("demo: a flaky local service is probed; incidents open within about a minute",
                   title="PulseGuard demo", timeout=12)
        await app.run_async()
    finally:
        directory = handles.directory
        await handles.stop()
    if getattr(args, "keep", False):
        print(f"demo database kept: {directory / 'pulseguard.db'} (configuration beside it)")
    return EXIT_OK


def run_demo_console(args: argparse.Namespace) -> int:
    """The demo under the console (when stdin and stdout are a terminal)."""
    from engine.cli import os_user
    from pulseguard_tui.settings import ConsoleSettings, ThemeError, choose_theme

    try:
        theme = choose_theme(getattr(args, "theme", None), None)
    except ThemeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = ConsoleSettings(theme=theme, readonly=bool(getattr(args, "readonly", False)))
    actor = (getattr(args, "actor", None) or os_user()).strip()
    try:
        return asyncio.run(_run_demo(args, actor, settings))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("PULSEGUARD_DEBUG"):
            raise
        print(f"error: the demo failed: {type(exc).__name__}: {exc} (PULSEGUARD_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_ERROR


def run_console(args: argparse.Namespace) -> int:
    """Open the console; every expected failure is one line on stderr and an exit code."""
    from pulseguard_tui.settings import ThemeError

    if getattr(args, "connect", None):
        print("error: --connect: attaching to a remote engine's API is not available in this version; "
              "run the console on a machine that reaches the database (--db)", file=sys.stderr)
        return EXIT_USAGE
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("error: the console needs a terminal; for scripts use a subcommand, e.g. `pulseguard incident list`",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        ctx = load_context(args)
        settings = build_settings(args, ctx.config, ctx.categories)
        return asyncio.run(_run(args, ctx, settings))
    except (DomainError, UsageError, ThemeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        if problems:
            for line in problems:
                print(f"error: {line}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, (OSError, ConnectionError)) or type(exc).__module__.startswith(("asyncpg", "tortoise", "sqlite3")):
            print(f"error: database: {exc}", file=sys.stderr)
            return EXIT_ERROR
        if os.environ.get("PULSEGUARD_DEBUG"):
            raise
        print(f"error: unexpected failure: {type(exc).__name__}: {exc} (PULSEGUARD_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_ERROR
