"""Shared fixtures: a fresh, migrated database per test on SQLite, and on PostgreSQL when
PULSEGUARD_TEST_PG names a server (each test gets its own schema there)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.db import Database, close_database, open_database, resolve_database

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("PULSEGUARD_TEST_PG", "").strip()
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs PULSEGUARD_TEST_PG")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


# Textual pilot tests occasionally fail while the app tears down (a widget query after its
# screen is gone), never in what they assert; on a loaded 2-core machine one retry settles it.
PILOT_FILES = ("test_console_", "test_postmortem_console", "test_analytics_console")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.startswith(PILOT_FILES):
            item.add_marker(pytest.mark.flaky(reruns=1))
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="PULSEGUARD_TEST_PG is not set")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """The database, migrated and opened for this test's event loop."""
    await open_database(database)
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
