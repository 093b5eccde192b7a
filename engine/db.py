"""Which database, how to open it, and how its schema is brought up to date."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url

from engine.domain import InvalidInput

APP = "models"
MODELS = ["engine.models", "engine.monitor.models", "engine.escalation.models", "engine.oncall.models", "engine.rest.models", "engine.postmortem_models"]
MIGRATIONS = "engine.migrations"
SQLITE_PRAGMAS = {"journal_mode": "WAL", "busy_timeout": 30000, "synchronous": "NORMAL"}


def default_db_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("pulseguard", appauthor=False) / "pulseguard.db"


@dataclass(frozen=True)
class Database:
    """A resolved database location: `kind` is sqlite or postgres."""

    kind: str
    url: str
    path: Path | None = None
    schema: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:{self.path}"
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        return f"postgres:{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"

    def tortoise_config(self) -> dict[str, Any]:
        if self.kind == "sqlite":
            connection: dict[str, Any] = {
                "engine": "engine.storage.sqlite",
                "credentials": {"file_path": str(self.path), **SQLITE_PRAGMAS},
            }
        else:
            connection = expand_db_url(self.url)
            credentials = connection["credentials"]
            credentials.setdefault("minsize", 1)
            credentials.setdefault("maxsize", 10)
            if self.schema:
                credentials["schema"] = self.schema
        return {
            "connections": {"default": connection},
            "apps": {APP: {"models": MODELS, "default_connection": "default", "migrations": MIGRATIONS}},
            "use_tz": True,
            "timezone": "UTC",
        }


def resolve_database(value: str | None = None) -> Database:
    """`--db` / PULSEGUARD_DB / config value, or the default file in the user data directory."""
    raw = (value or os.environ.get("PULSEGUARD_DB") or "").strip()
    if not raw:
        return Database("sqlite", "", default_db_path())
    lowered = raw.lower()
    if lowered.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(raw)
        if not parts.path.strip("/"):
            raise InvalidInput("--db", f"{raw!r} names no database (expected postgres://user@host/dbname)")
        schema = None
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        schema = query.get("schema")
        return Database("postgres", raw, None, schema)
    if lowered.startswith("sqlite://"):
        rest = raw[len("sqlite://"):]
        if rest.startswith("/"):
            path = Path(rest)
        else:
            path = Path(rest).expanduser().resolve()
        if not rest or rest == "/":
            raise InvalidInput("--db", f"{raw!r} names no file (expected sqlite:///path/to/file.db)")
        return Database("sqlite", raw, path)
    if "://" in raw:
        scheme = raw.split("://", 1)[0]
        raise InvalidInput("--db", f"unsupported database scheme {scheme!r} (expected a file path, sqlite:///… or postgres://…)")
    return Database("sqlite", raw, Path(raw).expanduser().resolve())


async def migrate_database(db: Database, target: str | None = None) -> None:
    """Create or upgrade the schema to the newest migration (or to `target`, e.g. '0001_initial')."""
    from tortoise.migrations.api.migrate import migrate

    if db.kind == "sqlite":
        db.path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    elif db.schema:
        await _ensure_pg_schema(db)
    await migrate(config=db.tortoise_config(), target=f"{APP}.{target}" if target else None)


async def _ensure_pg_schema(db: Database) -> None:
    import asyncpg

    url = db.url.split("?", 1)[0].replace("postgresql://", "postgres://", 1)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
    finally:
        await conn.close()


def migration_names() -> list[str]:
    """The migrations this release ships, in order."""
    folder = Path(__file__).with_name("migrations")
    return sorted(p.stem for p in folder.glob("[0-9]*.py"))


async def _schema_is_current() -> bool:
    from tortoise.exceptions import OperationalError

    try:
        rows = await Tortoise.get_connection("default").execute_query_dict(
            "SELECT name FROM tortoise_migrations WHERE app = 'models'"
        )
    except OperationalError:  # a new database: no migrations table yet
        return False
    return sorted(r["name"] for r in rows) == migration_names()


async def open_database(db: Database, *, migrate_schema: bool = True, global_fallback: bool = True) -> None:
    """Bring the schema up to date, then initialise Tortoise for this process.

    The global fallback lets tasks created before init (widget message pumps, server handlers)
    use the connection; see DEPENDENCIES.md on the task-bound context. Planning migrations
    costs ~0.2 s, so an up-to-date database skips it.
    """
    from tortoise.backends.base import executor

    # Tortoise caches compiled INSERT/DELETE statements keyed by connection name and table,
    # not by dialect: a process that reopens on another backend would reuse the wrong SQL.
    executor.EXECUTOR_CACHE.clear()
    if db.kind == "sqlite":
        db.path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    elif db.schema:
        await _ensure_pg_schema(db)
    await Tortoise.init(config=db.tortoise_config(), _enable_global_fallback=global_fallback)
    if not migrate_schema or await _schema_is_current():
        return
    await Tortoise.close_connections()
    try:
        await migrate_database(db)
    finally:
        await Tortoise.close_connections()
    executor.EXECUTOR_CACHE.clear()
    await Tortoise.init(config=db.tortoise_config(), _enable_global_fallback=global_fallback)


async def close_database() -> None:
    # aiosqlite's worker thread is not a daemon: an unclosed connection would keep the process alive.
    await Tortoise.close_connections()


@asynccontextmanager
async def database(db: Database, *, migrate_schema: bool = True) -> AsyncIterator[Database]:
    await open_database(db, migrate_schema=migrate_schema)
    try:
        yield db
    finally:
        await close_database()
