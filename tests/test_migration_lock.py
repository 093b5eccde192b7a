"""Schema migrations are safe with several PulseGuard processes on one PostgreSQL database: one
migrator at a time (an advisory lock), the others wait and find the schema current; a release
older than the schema refuses to start with a clear message and changes nothing. Real
PostgreSQL, real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from support import REPO
from support.db import PG_URL, drop_pg_schema, pg_url_with_schema, run_cli

from engine.storage.db import Database, close_database, migration_names, open_database, resolve_database

pytestmark = pytest.mark.postgres

OPEN = """
import asyncio, sys
from engine.storage.db import close_database, open_database, resolve_database

async def main() -> None:
    await open_database(resolve_database(sys.argv[1]))
    await close_database()

asyncio.run(main())
"""


@pytest.fixture
def fresh_pg() -> Iterator[Database]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield resolve_database(pg_url_with_schema(schema))
    asyncio.run(drop_pg_schema(schema))


async def _applied(db: Database) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.split("?", 1)[0])
    try:
        rows = await conn.fetch(f'SELECT name FROM "{db.schema}".tortoise_migrations ORDER BY name')
    finally:
        await conn.close()
    return [r["name"] for r in rows]


def test_engines_starting_together_on_a_new_schema_migrate_it_once(fresh_pg):
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN, fresh_pg.url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert asyncio.run(_applied(fresh_pg)) == migration_names()


async def test_a_second_migrator_waits_for_the_one_holding_the_lock(fresh_pg):
    import asyncpg

    from engine.storage.db import migration_lock_key

    holder = await asyncpg.connect(PG_URL.split("?", 1)[0])
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migration_lock_key(fresh_pg))
        opening = asyncio.create_task(open_database(fresh_pg))
        await asyncio.sleep(1.5)
        assert not opening.done()  # waiting for the lock, not migrating beside its holder
        await holder.execute("SELECT pg_advisory_unlock($1)", migration_lock_key(fresh_pg))
        await asyncio.wait_for(opening, 60)
    finally:
        await holder.close()
        await close_database()
    assert await _applied(fresh_pg) == migration_names()


def test_a_release_older_than_the_schema_refuses_to_start_and_changes_nothing(fresh_pg):
    asyncio.run(_open_and_close(fresh_pg))
    assert run_cli(fresh_pg, "incident", "list", timeout=60).returncode == 0  # this schema, as it stands, is fine

    async def newer_release_was_here() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_URL.split("?", 1)[0])
        try:
            await conn.execute(
                f"INSERT INTO \"{fresh_pg.schema}\".tortoise_migrations (app, name, applied_at) VALUES ('models', '0999_future', now())"
            )
        finally:
            await conn.close()

    asyncio.run(newer_release_was_here())
    before = asyncio.run(_applied(fresh_pg))
    for argv in (["incident", "list"], ["engine", "--api", "127.0.0.1:0"]):
        proc = run_cli(fresh_pg, *argv, timeout=60)
        assert proc.returncode == 1, (argv, proc.stdout, proc.stderr)
        assert "newer" in proc.stderr and "0999_future" in proc.stderr and "upgrade PulseGuard" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert asyncio.run(_applied(fresh_pg)) == before


async def _open_and_close(db: Database) -> None:
    await open_database(db)
    await close_database()
