"""A handler's Context built from the parsed arguments: the actor, the configuration and the database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.api.startup import config_for
from engine.api.startup import database_for as database_named
from engine.cli.common import CREATE, Context, UsageError, os_user


def load_context(args: argparse.Namespace) -> Context:
    ctx = Context(actor=_actor(getattr(args, "actor", None)), json=bool(getattr(args, "json", False)))
    if getattr(args, "needs_config", True):
        ctx.config = config_for(args)
    from engine.core import timefmt

    timefmt.configure(ctx.config)
    return ctx


def _actor(given: str | None) -> str:
    """Who acts: --as NAME, else the login name. A name the audit log and the timeline would show
    on two lines (`--as $'alice\\nbob'`) or with invisible characters was stored as given; a
    refusal names --as (the service's "actor: …" named no option)."""
    if given is None:
        return os_user().strip()
    name = given.strip()
    if not name.isprintable():
        raise UsageError(f"--as: {given!r} is not a name (it holds a line break, control or invisible character)")
    if len(name) > 64:
        raise UsageError(f"--as: {given!r} is longer than 64 characters")
    return name


def load_config_for(args: argparse.Namespace) -> Any:
    """The configuration file named by --config / PULSEGUARD_CONFIG / the usual places, or None."""
    return config_for(args)


def database_for(args: argparse.Namespace, ctx: Context) -> Any:
    return database_named(args, ctx.config)


async def open_database_for(args: argparse.Namespace, ctx: Context, access: str) -> Any:
    """Open the database the command names; only CREATE may make a new one, and then it says so.
    Missing parent directories are made only for the default location: a directory that does
    not exist in --db is more likely a typo than a wish."""
    from engine.storage.db import open_database

    ctx.database = database_for(args, ctx)
    created = await open_database(ctx.database, create=access == CREATE, create_dirs=ctx.database.default)
    ctx.extras["created_database"] = created
    if created:
        print(f"created a new database at {ctx.database.where}", file=sys.stderr)
    return ctx.database


async def init_database(args: argparse.Namespace, config_path: Path) -> bool:
    """`pulseguard init`: create the database the new configuration (or --db) names, if missing.
    True when it was created."""
    from engine.config.loading import load_config
    from engine.storage.db import close_database

    ctx = Context(actor=os_user(), config=load_config(config_path))
    try:
        await open_database_for(args, ctx, CREATE)
    finally:
        await close_database()
    return bool(ctx.extras.get("created_database"))
