"""Shared fixtures: a fresh, migrated database per test on SQLite, and on PostgreSQL when
PULSEGUARD_TEST_PG names a server (each test gets its own schema there).

Migrating costs ~0.3 s on SQLite and ~0.6 s on PostgreSQL, so the `db` fixture does not migrate
each test's database: the session migrates once, with the real migrations in a fresh process,
and each test starts from a copy of that result (the file on SQLite; the schema's pg_dump,
renamed, on PostgreSQL). Tests that need an unmigrated database (upgrades from old revisions,
the CLI's first run) use `database` / `sqlite_database`, which stay empty."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.storage.db import Database, close_database, open_database, resolve_database

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("PULSEGUARD_TEST_PG", "").strip()
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs PULSEGUARD_TEST_PG")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="PULSEGUARD_TEST_PG is not set")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _display_zone_per_test() -> Iterator[None]:
    """Loading a configuration with `[engine] timezone` sets the process's display zone (as the
    CLI does once per run); in a test process it must not outlive the test that set it."""
    yield
    from engine.core import timefmt

    timefmt.set_display_zone(None)


def _pg_url_with_schema(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}schema={schema}"


async def _drop_pg_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.split("?", 1)[0].replace("postgresql://", "postgres://", 1))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A fresh, not yet opened database location on each backend."""
    if request.param == "sqlite":
        return resolve_database(str(tmp_path / "pulseguard.db"))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    db = resolve_database(_pg_url_with_schema(schema))

    def drop() -> None:
        import asyncio

        asyncio.run(_drop_pg_schema(schema))

    request.addfinalizer(drop)
    return db


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Database:
    return resolve_database(str(tmp_path / "pulseguard.db"))


@dataclass(frozen=True)
class MigratedTemplate:
    sqlite_file: Path
    pg_schema: str | None = None  # the name the dump's statements create
    pg_dump: str | None = None  # None: migrate each PostgreSQL schema (no usable pg_dump here)

    def copy_sqlite(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.sqlite_file, path)

    async def copy_pg(self, schema: str) -> bool:
        if self.pg_dump is None or self.pg_schema is None:
            return False
        import asyncpg

        script = re.sub(rf"\b{self.pg_schema}\b", schema, self.pg_dump)
        conn = await asyncpg.connect(PG_URL.split("?", 1)[0].replace("postgresql://", "postgres://", 1))
        try:
            await conn.execute(script)  # one implicit transaction
        finally:
            await conn.close()
        return True


_MIGRATE_ONCE = """
import asyncio, sys
from engine.storage.db import close_database, open_database, resolve_database

async def main() -> None:
    for url in sys.argv[1:]:
        await open_database(resolve_database(url))
        await close_database()

asyncio.run(main())
"""


def _pg_dump_schema(schema: str) -> str | None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    proc = subprocess.run(
        [pg_dump, "--dbname", PG_URL.split("?", 1)[0], "--schema", schema, "--inserts", "--no-owner",
         "--no-privileges"],
        capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0 or f"CREATE SCHEMA {schema};" not in proc.stdout:
        return None
    # Plain SQL that qualifies every name with the schema; psql's meta-commands (\\restrict) go.
    return "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("\\"))


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplate]:
    """The newest schema, made once per session by the real migrations in a separate process."""
    sqlite_file = tmp_path_factory.mktemp("template") / "pulseguard.db"
    urls = [str(sqlite_file)]
    pg_schema = f"tmpl_{uuid.uuid4().hex[:16]}" if PG_URL else None
    if pg_schema:
        urls.append(_pg_url_with_schema(pg_schema))
    subprocess.run([sys.executable, "-c", _MIGRATE_ONCE, *urls], check=True, cwd=REPO, timeout=120,
                   env={k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")})
    wal = sqlite_file.with_name(sqlite_file.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the template was not checkpointed on close"
    try:
        yield MigratedTemplate(sqlite_file, pg_schema, _pg_dump_schema(pg_schema) if pg_schema else None)
    finally:
        if pg_schema:
            import asyncio

            asyncio.run(_drop_pg_schema(pg_schema))


@pytest.fixture
def migrated_database(database: Database, migrated_template: MigratedTemplate) -> Database:
    """`database` already migrated but not opened here: for tests that only drive subprocesses
    (the CLI's first run on an empty database is covered in test_cli and test_migrations)."""
    if database.kind == "sqlite":
        migrated_template.copy_sqlite(database.path)  # type: ignore[arg-type]
    else:
        import asyncio

        asyncio.run(migrated_template.copy_pg(database.schema))  # type: ignore[arg-type]
    return database


def table_rows(database: Database) -> dict[str, list[tuple]]:
    """Every row of every table, read directly (not through the engine): for "changed nothing"."""
    if database.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(database.path) as con:  # type: ignore[arg-type]
            names = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall() for n in names}

    async def read() -> dict[str, list[tuple]]:
        import asyncpg

        conn = await asyncpg.connect(PG_URL.split("?", 1)[0].replace("postgresql://", "postgres://", 1))
        try:
            names = [r[0] for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
                database.schema)]
            return {n: sorted((tuple(r) for r in await conn.fetch(f'SELECT * FROM "{database.schema}"."{n}"')), key=repr)
                    for n in names}
        finally:
            await conn.close()

    import asyncio

    return asyncio.run(read())


@pytest.fixture
async def db(database: Database, migrated_template: MigratedTemplate) -> AsyncIterator[Database]:
    """The database, migrated and opened for this test's event loop."""
    if database.kind == "sqlite":
        migrated_template.copy_sqlite(database.path)  # type: ignore[arg-type]
    else:
        await migrated_template.copy_pg(database.schema)  # type: ignore[arg-type]
    await open_database(database)  # migrates only if the copy is not current
    try:
        yield database
    finally:
        await close_database()


def cli_env(database: Database, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    env["PULSEGUARD_DB"] = database.url if database.kind == "postgres" else str(database.path)
    env.update(extra)
    return env


def run_cli(database: Database, *args: str, actor: str = "tester", check: bool = False,
            timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `pulseguard …` in a subprocess against `database`, as a user would."""
    cmd = [sys.executable, "-m", "pulseguard_tui", *args]
    if actor and args and args[0] not in ("init", "config"):
        cmd += ["--as", actor]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(database, **env), cwd=REPO, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc
