"""SQLite transactions: a cancelled wait for another process's write lock leaves nothing stuck."""

from __future__ import annotations

import asyncio
import sqlite3

from tortoise.transactions import in_transaction

from engine.incidents import services
from engine.storage.models import Incident


async def test_cancelled_begin_releases_the_lock(sqlite_database):
    from engine.storage.db import close_database, open_database

    await open_database(sqlite_database)
    other = sqlite3.connect(sqlite_database.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock

        async def write() -> None:
            async with in_transaction():
                await services.create_incident(title="blocked", severity="low", actor="x")

        task = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.sleep(0.3)
        # The cancelled task waits for its BEGIN to finish before it rolls back and lets go.
        other.execute("ROLLBACK")
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        assert task.cancelled()
        # Both plain queries and new transactions go through afterwards.
        inc = await asyncio.wait_for(services.create_incident(title="after", severity="low", actor="x"), 5)
        assert inc.key == "INC-1"
        assert await asyncio.wait_for(Incident.all().count(), 5) == 1
    finally:
        other.close()
        await close_database()


async def test_writers_in_two_connections_queue_instead_of_failing(sqlite_database):
    from engine.storage.db import close_database, open_database

    await open_database(sqlite_database)
    other = sqlite3.connect(sqlite_database.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(services.create_incident(title="waits", severity="low", actor="x"))
        await asyncio.sleep(0.5)
        assert not task.done()  # waiting on the busy timeout, not failed with "database is locked"
        other.execute("ROLLBACK")
        assert (await asyncio.wait_for(task, 10)).key == "INC-1"
    finally:
        other.close()
        await close_database()
