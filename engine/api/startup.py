"""Starting what a front end talks to: the configuration and the actor from the command line,
the database it names, an in-process Engine (or the demo's), and the read side of monitoring.

Everything heavy (the configuration model, the ORM, the engine) is imported inside the
function that needs it: the console draws its first frame before any of it loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.domain import DEFAULT_ROOT_CAUSE_CATEGORIES
from engine.core.inputs import os_user


@dataclass
class StartContext:
    """Who acts and the loaded configuration (None: no file found)."""

    actor: str
    config: Any = None

    @property
    def categories(self) -> list[str]:
        return root_cause_categories(self.config)


def root_cause_categories(config: Any) -> list[str]:
    """The root-cause categories: the defaults, then the configuration's own."""
    extra = []
    if config is not None:
        extra = list(getattr(getattr(config, "engine", None), "root_cause_categories", None) or [])
    return list(dict.fromkeys([*DEFAULT_ROOT_CAUSE_CATEGORIES, *extra]))


def config_for(args: argparse.Namespace) -> Any:
    """The configuration file named by --config / PULSEGUARD_CONFIG / the usual places, or None."""
    from engine.config.location import find_config

    path = find_config(getattr(args, "config", None))
    if path is None:
        return None
    from engine.config.loading import load_config

    return load_config(path)


def load_start_context(args: argparse.Namespace) -> StartContext:
    """The actor (--actor, else the login name) and the configuration; times are then shown in
    the configuration's zone."""
    from engine.core import timefmt

    ctx = StartContext(actor=(getattr(args, "actor", None) or os_user()).strip())
    if getattr(args, "needs_config", True):
        ctx.config = config_for(args)
    timefmt.configure(ctx.config)
    return ctx


def database_for(args: argparse.Namespace, config: Any) -> Any:
    """The database --db, $PULSEGUARD_DB or the configuration names (engine.storage.db.Database)."""
    from engine.storage.db import resolve_database

    given = getattr(args, "db", None)
    if given is not None and not given.strip():
        from engine.core.domain import InvalidInput

        # `--db "$UNSET"` would otherwise fall back to PULSEGUARD_DB, the configuration or the
        # default file: a command meant for one database would act on another.
        raise InvalidInput("--db", "is empty (expected a file path, sqlite:///… or postgres://…; leave --db out for the usual one)")
    configured = getattr(getattr(config, "engine", None), "db", None) if config is not None else None
    from_env = os.environ.get("PULSEGUARD_DB")
    database = resolve_database(given or from_env or configured)
    named_by = "--db" if given else "PULSEGUARD_DB" if from_env else "[engine] db" if configured else None
    if named_by is not None:
        database = dataclasses.replace(database, named_by=named_by)
    if database.kind == "sqlite" and not database.default and database.path is not None:
        # Bad input, named where it was given, before anything is opened (a directory exited 1,
        # "cannot open database DIR: Is a directory", as if the disk had failed; /dev/null and a
        # path too long for the system did the same).
        why = _not_a_database_path(database.path)
        if why:
            from engine.core.domain import InvalidInput

            raise InvalidInput(database.named_by, why)
    return database


_SPECIAL_FILES = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"))


def _not_a_database_path(path: Path) -> str:
    """What is wrong with `path` as a SQLite database file that the user must change, or "" (a
    missing file, or one the system cannot reach for another reason, is the open's to report)."""
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return f"{str(path)!r} is too long a path for this system (File name too long): use a shorter one"
        return ""
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a directory (expected a database file, e.g. {path / 'pulseguard.db'})"
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _SPECIAL_FILES if test(st.st_mode)), "a socket")
        return f"{path} is {kind}, not a file (expected a database file, e.g. ./pulseguard.db)"
    return ""


async def open_database(database: Any, **options: Any) -> bool:
    """engine.storage.db.open_database: True when the database was new."""
    from engine.storage.db import open_database as open_db

    return await open_db(database, **options)


async def close_database() -> None:
    from engine.storage.db import close_database as close_db

    await close_db()


def default_config() -> Any:
    """The configuration an engine runs with when no file was found."""
    from engine.config.loading import default_config as default

    return default()


def new_engine(config: Any, database: Any, *, role: str, on_role_change: Callable[[str], None]) -> Any:
    """An Engine (engine.runtime.engine) for this process, not started yet. Beside a cluster of
    engines (`[engine] cluster = true`) a console runs none of the engine's loops: the servers'
    engines probe and page, the console reads and writes incidents."""
    from engine.runtime.engine import Engine

    cluster = bool(getattr(getattr(config, "engine", None), "cluster", False))
    return Engine(config, database=database, role=role, on_role_change=on_role_change, cluster=cluster, loops=not cluster)


def monitor_queries() -> Any:
    """The monitoring engine's read side (targets, metric series)."""
    from engine.runtime.queries import MonitorQueries

    return MonitorQueries()


async def start_demo(**options: Any) -> Any:
    """The demo (engine.runtime.demo): a flaky local service, its database and a started engine."""
    from engine.runtime.demo import start_demo as start

    return await start(**options)


def warm_local_imports() -> None:
    """Import what a local console needs (run in a thread after the first frame)."""
    from engine.storage import import_tortoise

    import_tortoise()
    import engine.api.local  # noqa: F401
    import engine.runtime.queries  # noqa: F401
    import engine.storage.db  # noqa: F401


def warm_engine_imports() -> None:
    """Import the engine and the plugin modules its start loads (run in a thread, so the
    console's event loop does not wait for them)."""
    import importlib

    from engine.runtime.engine import discover_plugin_modules

    for name in discover_plugin_modules():
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112 - Engine.start() imports it again and reports the failure
            continue


def warm_remote_imports() -> None:
    """Import what a console attached to a remote engine needs (the configuration's modules
    load with the configuration, beside the first request)."""
    import httpcore  # noqa: F401 - httpx loads it with its first client

    import engine.api.remote  # noqa: F401
