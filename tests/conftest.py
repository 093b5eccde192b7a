"""Shared fixtures: a fresh, migrated database per test on SQLite, and on PostgreSQL when
PULSEGUARD_TEST_PG names a server (each test gets its own schema there).

Migrating costs ~0.3 s on SQLite and ~0.6 s on PostgreSQL, so the `db` fixture does not migrate
each test's database: the session migrates once, with the real migrations in a fresh process,
and each test starts from a copy of that result (the file on SQLite; the schema's pg_dump,
renamed, on PostgreSQL). Tests that need an unmigrated database (upgrades from old revisions,
the CLI's first run) use `database` / `sqlite_database`, which stay empty."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# The shared helpers in tests/support/ are imported as `support.…` by every test module.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import durations  # noqa: E402
from support.db import (  # noqa: E402
    PG_URL,
    REPO,
    MigratedTemplate,
    drop_pg_schema,
    pg_url_with_schema,
)

from engine.storage.db import Database, close_database, open_database, resolve_database  # noqa: E402

# Fixtures shared by several test files: the escalation receivers, the REST server, the seeded console.
pytest_plugins = ("support.escalation", "support.rest", "support.pilot")

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs PULSEGUARD_TEST_PG")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Longest first (by the last recorded run, tests/durations.json): under pytest-xdist each
    # long test starts early and the many short ones fill the workers up to the end, instead of
    # one worker finishing a long test alone. A test not yet recorded counts as its marker says.
    took = durations.load()

    def expected(item: pytest.Item) -> float:
        return took.get(item.nodeid, 10.0 if item.get_closest_marker("slow") else 0.5)

    items.sort(key=expected, reverse=True)
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


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A fresh, not yet opened database location on each backend."""
    if request.param == "sqlite":
        return resolve_database(str(tmp_path / "pulseguard.db"))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    db = resolve_database(pg_url_with_schema(schema))

    def drop() -> None:
        import asyncio

        asyncio.run(drop_pg_schema(schema))

    request.addfinalizer(drop)
    return db


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Database:
    return resolve_database(str(tmp_path / "pulseguard.db"))


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
        [pg_dump, "--dbname", PG_URL.split("?", 1)[0], "--schema", schema, "--inserts", "--no-owner", "--no-privileges"],
        capture_output=True,
        text=True,
        timeout=60,
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
        urls.append(pg_url_with_schema(pg_schema))
    subprocess.run(
        [sys.executable, "-c", _MIGRATE_ONCE, *urls],
        check=True,
        cwd=REPO,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")},
    )
    wal = sqlite_file.with_name(sqlite_file.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the template was not checkpointed on close"
    try:
        yield MigratedTemplate(sqlite_file, pg_schema, _pg_dump_schema(pg_schema) if pg_schema else None)
    finally:
        if pg_schema:
            import asyncio

            asyncio.run(drop_pg_schema(pg_schema))


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


@pytest.fixture
async def sdb(sqlite_database: Database, migrated_template: MigratedTemplate) -> AsyncIterator[Database]:
    """Like `db`, on SQLite only: for tests where the backend plays no part (console screens
    and keys; the service layer beneath them runs on both backends in its own tests)."""
    migrated_template.copy_sqlite(sqlite_database.path)  # type: ignore[arg-type]
    await open_database(sqlite_database)
    try:
        yield sqlite_database
    finally:
        await close_database()
