"""Which database, how to open it, and how its schema is brought up to date."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url

from engine.core.domain import InvalidInput

log = logging.getLogger("pulseguard.storage")

APP = "models"
MODELS = [
    "engine.storage.models",
    "engine.storage.monitor_models",
    "engine.storage.escalation_models",
    "engine.storage.oncall_models",
    "engine.storage.rest_models",
    "engine.storage.postmortem_models",
]
MIGRATIONS = "engine.storage.migrations"
# temp_store: a change on a busy API runs in a savepoint of a shared transaction
# (storage.sqlite.grouped_transaction), and a savepoint's journal that outgrows 64 KiB spills to
# a temporary file, a write per page it touches; kept in memory it costs a copy (measured:
# acknowledgements 1,100 against 1,650 a second, in process).
SQLITE_PRAGMAS = {"journal_mode": "WAL", "busy_timeout": 30000, "synchronous": "NORMAL", "temp_store": "MEMORY"}
# Query parameters of a postgres:// URL that PulseGuard or Tortoise's pool reads; every other one
# (sslmode, sslrootcert, target_session_attrs, …) is libpq's, and asyncpg reads it from its DSN.
POOL_PARAMS = {
    "schema", "minsize", "maxsize", "application_name", "max_queries", "max_inactive_connection_lifetime",
    "statement_cache_size", "max_cached_statement_lifetime", "max_cacheable_statement_size",
}  # fmt: skip
SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


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
    default: bool = False  # the user data directory's file: nothing named it
    # Where it was named, for a message to say what to check ("--db", "[engine] db", …).
    named_by: str = "--db / PULSEGUARD_DB"

    @property
    def hint(self) -> str:
        return f"check {self.named_by}, or run `pulseguard init`"

    @property
    def where(self) -> str:
        """The location as a person named it: the file path, or the PostgreSQL label."""
        if self.kind == "sqlite":
            return str(self.path)
        return self.label

    @property
    def label(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:{self.path}"
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        # The schema as --db spells it: engines on two schemas of one database are told apart.
        schema = f"?schema={self.schema}" if self.schema else ""
        return f"postgres:{host}{':' + str(parts.port) if parts.port else ''}{parts.path}{schema}"

    @property
    def libpq_params(self) -> list[tuple[str, str]]:
        """The URL's libpq connection parameters (sslmode=require, …); `ssl` is read as sslmode."""
        query = parse_qsl(urlsplit(self.url).query, keep_blank_values=True)
        return [("sslmode" if k == "ssl" else k, v) for k, v in query if k not in POOL_PARAMS]

    @property
    def dsn(self) -> str:
        """The URL a direct asyncpg connection takes: PulseGuard's own parameters (schema) out,
        libpq's (sslmode, …) kept, so no connection is made with less security than asked."""
        parts = urlsplit(self.url)
        return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(self.libpq_params), ""))

    def tortoise_config(self) -> dict[str, Any]:
        if self.kind == "sqlite":
            connection: dict[str, Any] = {
                "engine": "engine.storage.sqlite",
                "credentials": {"file_path": str(self.path), **SQLITE_PRAGMAS},
            }
        else:
            parts = urlsplit(self.url)
            pool = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in POOL_PARAMS]
            connection = expand_db_url(urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pool), "")))
            connection["engine"] = "engine.storage.postgres"  # transactions that survive a lost connection
            credentials = connection["credentials"]
            credentials.setdefault("minsize", 1)
            credentials.setdefault("maxsize", 10)
            credentials["reset"] = keep_session
            if self.schema:
                credentials["schema"] = self.schema
            if libpq := self.libpq_params:
                credentials["dsn"] = f"postgres://?{urlencode(libpq)}"
        return {
            "connections": {"default": connection},
            "apps": {APP: {"models": MODELS, "default_connection": "default", "migrations": MIGRATIONS}},
            "use_tz": True,
            "timezone": "UTC",
        }


async def keep_session(conn: Any) -> None:
    """asyncpg's pool resets each connection it takes back with one more round trip (RESET ALL,
    UNLISTEN, CLOSE ALL, advisory unlock); PulseGuard leaves no session state on pooled
    connections (its advisory locks are per transaction, it listens on its own connection), so
    that round trip, one per statement outside a transaction, is skipped. An open transaction is
    still rolled back by the pool first."""


@asynccontextmanager
async def one_connection(client: Any) -> AsyncIterator[Any]:
    """PostgreSQL: a client for a few statements on one pooled connection, outside a
    transaction (each statement commits on its own). A read and the write that follows it then
    take the pool once instead of twice."""
    from tortoise.backends.asyncpg.client import TransactionWrapper

    async with client.acquire_connection() as raw:
        held = TransactionWrapper(client)  # Tortoise's client over one connection; no BEGIN is sent
        held._connection = raw
        yield held


def resolve_database(value: str | None = None) -> Database:
    """`--db` / PULSEGUARD_DB / config value, or the default file in the user data directory."""
    raw = (value or os.environ.get("PULSEGUARD_DB") or "").strip()
    if not raw:
        return Database("sqlite", "", default_db_path(), default=True)
    lowered = raw.lower()
    if lowered.startswith(("postgres://", "postgresql://")):
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
        except ValueError as exc:
            # Not the URL itself: it may hold a password.
            reason = str(exc)[:1].lower() + str(exc)[1:]
            raise InvalidInput("--db", f"not a PostgreSQL URL: {reason} (expected postgres://user@host:port/dbname)") from None
        if not parts.path.strip("/"):
            raise InvalidInput("--db", f"{raw!r} names no database (expected postgres://user@host/dbname)")
        schema = dict(parse_qsl(parts.query, keep_blank_values=True)).get("schema")
        if schema is not None and not SCHEMA_NAME.fullmatch(schema):
            raise InvalidInput(
                "--db",
                f"schema {schema!r} is not a PostgreSQL name PulseGuard uses (letters, digits and _, at most 63, not starting with a digit)",
            )
        return Database("postgres", raw, None, schema)
    if lowered.startswith("sqlite://"):
        rest = raw[len("sqlite://") :]
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


class DatabaseUnavailable(Exception):
    """The database cannot be used: one line naming it and the reason; the CLI exits `exit_code`."""

    exit_code = 1


class SchemaTooNew(DatabaseUnavailable):
    """A newer PulseGuard has migrated this database: this one must not run on it."""


class NoDatabase(DatabaseUnavailable):
    """Nothing is there, and this command may not create it (a mistyped --db, say)."""

    exit_code = 2


class NotADatabase(DatabaseUnavailable):
    """--db names a file that is not a SQLite database (notes, an image): bad input, left untouched."""

    exit_code = 2


PG_CONNECT_TIMEOUT = 10.0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def _check_sqlite(db: Database, *, create: bool, create_dirs: bool) -> bool:
    """Fail with the OS's reason before SQLite is asked: it would only say "unable to open
    database file", which the migrations then wait on for ever. True when the file holds no
    PulseGuard schema yet (and `create` allows making one)."""
    path = db.path
    assert path is not None
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:  # a parent that is a file, a directory we may not search, …
        raise DatabaseUnavailable(f"cannot open database {path}: {_reason(exc)}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise DatabaseUnavailable(f"cannot open database {path}: {os.strerror(errno.EISDIR)}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise DatabaseUnavailable(f"cannot open database {path}: not a regular file")
    if st is None:
        if not create:
            raise NoDatabase(f"no PulseGuard database at {path} ({db.hint})")
        parent = path.parent
        if not parent.is_dir():
            if not create_dirs:
                raise DatabaseUnavailable(
                    f"cannot create database {path}: directory {parent} does not exist (create it, or check {db.named_by})"
                )
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(f"cannot create database {path}: {parent}: {_reason(exc)}") from None
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if st is None else 0), 0o644)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot {'create' if st is None else 'open'} database {path}: {_reason(exc)}") from None
    os.close(fd)
    try:
        con = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=10, isolation_level=None)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables and create:
                # An empty file can still refuse writes (a special file, a full disk): the
                # migrations would wait on it for ever, so write once now.
                con.execute("CREATE TABLE pulseguard_probe (x INTEGER)")
                con.execute("DROP TABLE pulseguard_probe")
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise NotADatabase(f"cannot open database {path}: not a SQLite database") from None
        from engine.storage.diskfull import no_space_left

        if no_space_left(str(path)):  # SQLite says "disk I/O error" when it cannot size the -shm file
            raise DatabaseUnavailable(f"cannot open database {path}: disk full") from None
        raise DatabaseUnavailable(f"cannot open database {path}: {exc}") from None
    if "tortoise_migrations" in tables:
        return False
    if tables:  # another program's database: never add our tables to it
        raise NoDatabase(f"{path} is a SQLite database, but not a PulseGuard one ({db.hint})")
    if not create:
        raise NoDatabase(f"no PulseGuard database at {path} ({db.hint})")
    return True


async def _check_postgres(db: Database, *, create: bool) -> bool:
    """Connect once with a short timeout and say plainly what is missing. True when the
    database (or the schema) has no PulseGuard tables yet and `create` allows making them."""
    import asyncpg

    parts = urlsplit(db.url)
    name = parts.path.strip("/")
    server = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    try:
        conn = await asyncpg.connect(db.dsn, timeout=PG_CONNECT_TIMEOUT)
    except asyncpg.InvalidCatalogNameError:
        raise NoDatabase(
            f"no PostgreSQL database {name!r} on {server} (create it with `createdb {name}`, or check {db.named_by})"
        ) from None
    except asyncpg.ClientConfigurationError as exc:
        # asyncpg refuses the URL's parameters (sslmode=bogus) before connecting: bad input, not a refusal by the server.
        raise InvalidInput("--db", str(exc)) from None
    except (OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {server}: {_reason(exc)}") from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"PostgreSQL at {server} refused database {name!r}: {exc}") from None
    try:
        schema = db.schema or await conn.fetchval("SELECT coalesce(current_schema(), 'public')")
        present = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'tortoise_migrations'",
            schema,
        )
        if present:
            return False
        if not create:
            raise NoDatabase(f"no PulseGuard database at {db.where} ({db.hint})")
        return True  # the schema is made by the migrations, under the migration lock
    finally:
        await conn.close()


async def check_database(db: Database, *, create: bool = True, create_dirs: bool = True) -> bool:
    """Make sure the database can be opened, without the ORM. True when it is new: no
    PulseGuard schema yet (created by the migrations next). Raises NoDatabase when there is
    none and `create` is false, DatabaseUnavailable when it cannot be opened (with the reason).
    `create_dirs` allows making the SQLite file's missing parent directories."""
    if db.kind == "sqlite":
        return _check_sqlite(db, create=create, create_dirs=create_dirs)
    return await _check_postgres(db, create=create)


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

    conn = await asyncpg.connect(db.dsn, timeout=PG_CONNECT_TIMEOUT)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
    finally:
        await conn.close()


def migration_names() -> list[str]:
    """The migrations this release ships, in order."""
    folder = Path(__file__).with_name("migrations")
    return sorted(p.stem for p in folder.glob("[0-9]*.py"))


async def _applied_migrations() -> list[str] | None:
    """The migrations this database has had, None when it has none yet."""
    from tortoise.exceptions import OperationalError

    try:
        rows = await Tortoise.get_connection("default").execute_query_dict("SELECT name FROM tortoise_migrations WHERE app = 'models'")
    except OperationalError as exc:
        # Only a missing table means "not migrated yet"; anything else (a file SQLite cannot
        # open, a read-only database) would otherwise send the migrations waiting on it.
        if "no such table" in str(exc) or "does not exist" in str(exc):
            return None
        raise
    return sorted(r["name"] for r in rows)


def _refuse_newer(db: Database, applied: list[str] | None) -> None:
    known = migration_names()
    unknown = sorted(set(applied or ()) - set(known))
    if unknown:
        raise SchemaTooNew(
            f"the database at {db.where} has a newer schema than this PulseGuard (it has migration {unknown[-1]}; "
            f"this release knows up to {known[-1]}): upgrade PulseGuard here before running it on this database"
        )


def migration_lock_key(db: Database) -> int:
    """The PostgreSQL advisory lock one migrator of this database (and schema) holds."""
    digest = hashlib.blake2b(f"pulseguard-migrate:{db.schema or ''}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def _migration_lock(db: Database) -> AsyncIterator[None]:
    """One migrator at a time on PostgreSQL: engines starting together (or during a rolling
    upgrade) wait for the one migrating, then find the schema current. SQLite runs one engine."""
    if db.kind != "postgres":
        yield
        return
    import asyncpg

    conn = await asyncpg.connect(db.dsn, timeout=PG_CONNECT_TIMEOUT)
    try:
        key = migration_lock_key(db)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            log.warning("another PulseGuard process is migrating %s; waiting for it", db.where)
            await conn.execute("SELECT pg_advisory_lock($1)", key)
        yield
    finally:
        await conn.close()  # ends the session, which releases the lock


async def open_database(
    db: Database, *, migrate_schema: bool = True, global_fallback: bool = True, create: bool = True, create_dirs: bool = True
) -> bool:
    """Bring the schema up to date, then initialise Tortoise for this process. True when the
    database was new (see `check_database` for `create` and `create_dirs`).

    The global fallback lets tasks created before init (widget message pumps, server handlers)
    use the connection; see DEPENDENCIES.md on the task-bound context. Planning migrations
    costs ~0.2 s, so an up-to-date database skips it.
    """
    from tortoise.backends.base import executor

    # Tortoise caches compiled INSERT/DELETE statements keyed by connection name and table,
    # not by dialect: a process that reopens on another backend would reuse the wrong SQL.
    new = await check_database(db, create=create, create_dirs=create_dirs)
    executor.EXECUTOR_CACHE.clear()
    await Tortoise.init(config=db.tortoise_config(), _enable_global_fallback=global_fallback)
    try:
        applied = None if new else await _applied_migrations()
        _refuse_newer(db, applied)
    except BaseException:
        await Tortoise.close_connections()
        raise
    if not migrate_schema or applied == migration_names():
        return new
    try:
        async with _migration_lock(db):
            # Whoever held the lock before may have migrated already (or be a newer release).
            applied = await _applied_migrations()
            _refuse_newer(db, applied)
            await Tortoise.close_connections()
            if applied != migration_names():
                await migrate_database(db)
    finally:
        await Tortoise.close_connections()
    executor.EXECUTOR_CACHE.clear()
    await Tortoise.init(config=db.tortoise_config(), _enable_global_fallback=global_fallback)
    return new


async def close_database() -> None:
    from engine.storage.changes import stop_listening

    await stop_listening()
    # aiosqlite's worker thread is not a daemon: an unclosed connection would keep the process alive.
    await Tortoise.close_connections()


@asynccontextmanager
async def database(db: Database, *, migrate_schema: bool = True) -> AsyncIterator[Database]:
    await open_database(db, migrate_schema=migrate_schema)
    try:
        yield db
    finally:
        await close_database()
