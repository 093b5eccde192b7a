"""`pulseguard` with no subcommand: open the console.

The first frame comes first: the console draws itself with what the command line says, then
(after that frame, importing off the event loop) it loads the configuration, opens the
database, builds the LocalEngine and starts the engine host. With `--connect URL` it opens no
database and runs no engine: a RemoteEngine talks to that engine's REST API instead. `open_database` enables
Tortoise's global fallback, so every task of the app can query. The engine loops run beside
the app (never as widget workers) when this process wins the engine lease, and the database is
closed in `finally` (aiosqlite's worker thread would otherwise keep the process alive).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
ENGINE_START_WAIT = 2.0  # seconds the in-process engine waits at most for the list's first page


def initial_settings(args: argparse.Namespace) -> Any:
    """What the first frame needs, from the command line and the remembered state only."""
    from pulseguard_tui.settings import ConsoleSettings, choose_theme

    return ConsoleSettings(theme=choose_theme(getattr(args, "theme", None), None), readonly=bool(getattr(args, "readonly", False)))


def apply_config(settings: Any, args: argparse.Namespace, config: Any, categories: list[str]) -> str | None:
    """Fold the `[console]` section and the users and services of the config into `settings`;
    returns the configured theme when it should replace the one the console started with."""
    from pulseguard_tui.settings import check_theme, load_state

    section = getattr(config, "console", None)
    settings.readonly = bool(getattr(args, "readonly", False) or getattr(section, "readonly", False))
    settings.bell = bool(getattr(section, "bell", True))
    settings.keymap = dict(getattr(section, "keymap", {}) or {})
    settings.users = [u.id for u in getattr(config, "users", []) or []]
    settings.services = [s.name for s in getattr(config, "services", []) or []]
    settings.categories = list(categories)
    configured = getattr(section, "theme", None)
    if not configured:
        return None
    theme = check_theme(configured, "[console] theme")  # ThemeError: the caller warns, keeps going
    if not getattr(args, "theme", None) and not os.environ.get("NO_COLOR") and not load_state().get("theme"):
        return theme
    return None


def exit_on_hangup(app: Any) -> None:
    """A closed terminal (an SSH session dropped) or a TERM signal ends the console the normal
    way, so the engine stops and the database closes. The handlers stay until the event loop
    closes: the hang-up is often repeated while the console is still cleaning up."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGHUP, signal.SIGTERM):
        loop.add_signal_handler(sig, app.exit)


def spare_teardown() -> None:
    """Called once the console has closed, right before the process exits: Python's own
    teardown would run full garbage collections over every object the console made (Textual's
    widgets and styles, the ORM's models, some 900 modules), which took a third of a CPU-second
    after q, measured, more than all the stopping before it. Moved into the collector's
    permanent generation (gc.freeze), they are skipped; the teardown still runs the atexit
    handlers, waits for threads and flushes files. Only for the process's own exit: the objects
    are never collected afterwards."""
    import gc

    gc.freeze()


def _warm_imports() -> None:
    from engine.api.startup import warm_local_imports
    from pulseguard_tui import engine_host

    warm_local_imports()
    engine_host.monitor_queries()


def _warm_remote_imports() -> None:
    from engine.api.startup import warm_remote_imports

    warm_remote_imports()


def remote_token(args: argparse.Namespace) -> str:
    """The API token for --connect: --token, else $PULSEGUARD_TOKEN ('' when neither)."""
    return (getattr(args, "token", None) or os.environ.get("PULSEGUARD_TOKEN") or "").strip()


def build_console(args: argparse.Namespace, settings: Any) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """The console app for these options, and what to run after it has exited (stop the engine,
    close the database or the HTTP client). The app connects after its first frame."""
    from pulseguard_tui.app import PulseGuardApp

    opened = False
    host: Any = None
    remote: Any = None

    def take_config(ctx: Any) -> None:
        from pulseguard_tui.settings import ThemeError

        try:
            theme = apply_config(settings, args, ctx.config, ctx.categories)
        except ThemeError as exc:  # cosmetic: say so and keep the theme we have
            theme = None
            app.notify(str(exc), severity="warning", timeout=10)
        app.apply_settings(theme)
        app.config = ctx.config

    async def connect_remote() -> Any:
        """--connect: the engine's REST API stands in for the database; nothing opens here.
        The configuration loads (in a thread) while the engine answers who the token is."""
        nonlocal remote
        await asyncio.to_thread(_warm_remote_imports)
        from engine.api.remote import RemoteEngine
        from engine.api.startup import load_start_context

        loading = asyncio.ensure_future(asyncio.to_thread(load_start_context, args))
        try:
            # The token's role decides: a viewer's console is read-only (the app keeps it so).
            remote = await RemoteEngine.connect(args.connect, remote_token(args))
        except Exception:
            await loading  # a bad configuration is reported first, as when it was read first
            raise
        take_config(await loading)  # a bad configuration: cleanup() closes the client
        from engine.api.display import display_zone, set_display_zone

        if display_zone() is None and remote.display_timezone:
            # No zone of its own: the engine's, so its timeline and the texts it wrote ("held
            # since 18:57 CET") read in one zone, as on a console beside it.
            try:
                set_display_zone(remote.display_timezone)
            except (ValueError, KeyError):  # a zone this machine does not know: stay local
                pass
        return remote

    async def connect() -> Any:
        """After the first frame: configuration, database, API, engine host."""
        nonlocal opened, host
        if getattr(args, "connect", None):
            return await connect_remote()
        # The configuration, the ORM and the models take longer to import than the console
        # takes to draw. Importing them in a thread from the very start slows the first frame
        # (the two share one interpreter lock), so the thread starts after it; keys work while
        # the database opens.
        await asyncio.to_thread(_warm_imports)
        from engine.api.local import LocalEngine
        from engine.api.startup import database_for, load_start_context, open_database
        from pulseguard_tui.engine_host import EngineHost, monitor_queries

        ctx = await asyncio.to_thread(load_start_context, args)
        take_config(ctx)
        db = database_for(args, ctx.config)
        created = await open_database(db, create=not settings.readonly, create_dirs=db.default)
        opened = True
        api = LocalEngine(
            ctx.actor, readonly=settings.readonly, db_label=db.label, categories=ctx.categories, role="console", new_database=created
        )
        api.known_services = list(settings.services or [])
        api.targets_provider = monitor_queries()
        api.config = ctx.config
        if not getattr(args, "no_engine", False):
            host = EngineHost(api, ctx.config, db)
            host.app = app
            app.engine_host = host
            # The engine's start shares the event loop: it waits for the list's first page.
            host.start_soon(after=partial(app.wait_for_list, ENGINE_START_WAIT))
        return api

    async def cleanup() -> None:
        try:
            if host is not None:
                await host.stop()
            if remote is not None:
                await remote.aclose()
        finally:
            if opened:
                from engine.api.startup import close_database

                await close_database()

    app = PulseGuardApp(settings=settings, connect=connect)
    if getattr(args, "connect", None):
        app.engine_state = {"role": "connecting…", "database": args.connect}
    return app, cleanup


async def _run(args: argparse.Namespace, settings: Any) -> int:
    app, cleanup = build_console(args, settings)
    exit_on_hangup(app)
    try:
        await app.run_async()
    finally:
        await cleanup()
    return int(app.return_code or EXIT_OK)


def run_console(args: argparse.Namespace) -> int:
    """Open the console; every expected failure is one line on stderr and an exit code."""
    from pulseguard_tui.settings import ThemeError

    url = getattr(args, "connect", None)
    if url is not None:
        if not url.startswith(("http://", "https://")):
            print(f"error: --connect: {url!r} is not an http(s) URL (e.g. http://engine.internal:8080)", file=sys.stderr)
            return EXIT_USAGE
        if not remote_token(args):
            print(
                "error: --connect needs an API token: pass --token T or set PULSEGUARD_TOKEN "
                "(on the engine: pulseguard token create NAME --role responder)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("error: the console needs a terminal; for scripts use a subcommand, e.g. `pulseguard incident list`", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = initial_settings(args)
        return asyncio.run(_run(args, settings))
    except ThemeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from pulseguard_tui.app import connect_error

        if os.environ.get("PULSEGUARD_DEBUG"):
            raise
        code, message = connect_error(exc)
        print(message, file=sys.stderr)
        return code


async def _run_demo(args: argparse.Namespace, actor: str, settings: Any) -> int:
    """`pulseguard demo` in a terminal: the demo's engine in this process, under the console."""
    from engine.api.local import LocalEngine
    from engine.api.startup import start_demo
    from pulseguard_tui.app import PulseGuardApp
    from pulseguard_tui.engine_host import EngineHost, monitor_queries

    handles = await start_demo(keep=bool(getattr(args, "keep", False)))
    host: Any = None
    try:
        api = LocalEngine(actor, readonly=settings.readonly, db_label=handles.database.label, role=handles.engine.role)
        api.targets_provider = monitor_queries()
        settings.services = [s.name for s in handles.config.services]
        api.known_services = list(settings.services)
        api.config = handles.config
        app = PulseGuardApp(api, settings, config=handles.config)
        host = EngineHost(api, handles.config, handles.database, engine=handles.engine)
        host.app = app
        app.engine_host = host
        host.start_soon()
        app.notify("demo: a flaky local service is probed; incidents open within about a minute", title="PulseGuard demo", timeout=12)
        exit_on_hangup(app)
        await app.run_async()
    finally:
        directory = handles.directory
        if host is not None:
            await host.stop()  # begun when the console started to close
        await handles.stop()
    if getattr(args, "keep", False):
        print(f"demo database kept: {directory / 'pulseguard.db'} (configuration beside it)")
    return EXIT_OK


def run_demo_console(args: argparse.Namespace) -> int:
    """The demo under the console (when stdin and stdout are a terminal)."""
    from engine.api.inputs import os_user
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
        print(f"error: the demo failed: {type(exc).__name__}: {exc} (PULSEGUARD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_ERROR
