"""SQLite transactions: a cancelled wait for another process's write lock leaves nothing stuck."""

from __future__ import annotations

import asyncio
import contextlib
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


async def test_an_incident_change_waits_off_the_event_loop_while_another_process_writes(sqlite_database):
    """Incident changes run their statements on the loop's thread (engine.storage.sqlite
    inline_writes); while another process holds the write lock, their BEGIN waits in aiosqlite's
    thread, so the loop goes on serving, and the change lands once the lock is let go."""
    from engine.storage.db import close_database, open_database

    await open_database(sqlite_database)
    incident = await services.create_incident(title="busy", severity="high", actor="x")
    other = sqlite3.connect(sqlite_database.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(ticker())
        task = asyncio.create_task(services.comment(incident.key, "written while another process writes", "alice"))
        await asyncio.sleep(0.5)
        assert not task.done()
        assert ticks >= 20  # the loop was not blocked by the wait (50 ticks at most in 0.5 s)
        other.execute("ROLLBACK")
        row = await asyncio.wait_for(task, 10)
        beat.cancel()
        assert row.id is not None
        comments = [c.content for c in await incident.comments.all()]
        assert comments == ["written while another process writes"]
        events = [e.kind for e in await incident.events.all().order_by("id")]
        assert events[-1] == "commented"
    finally:
        other.close()
        await close_database()


async def test_a_failed_incident_change_rolls_back_everything_it_wrote(sqlite_database):
    """A DomainError inside an incident change (run on the loop's thread) leaves no row behind,
    and the connection serves the next change."""
    from engine.core.domain import IllegalTransition
    from engine.storage.db import close_database, open_database
    from engine.storage.models import Comment, Event

    await open_database(sqlite_database)
    try:
        incident = await services.create_incident(title="resolved one", severity="low", actor="x")
        await services.acknowledge(incident.key, "alice")
        events = await Event.all().count()
        version = (await Incident.get(id=incident.id)).version
        try:
            await services.acknowledge(incident.key, "bob")  # already acknowledged: refused after the lock
        except IllegalTransition:
            pass
        else:
            raise AssertionError("a second acknowledgement was accepted")
        assert await Event.all().count() == events
        stored = await Incident.get(id=incident.id)
        assert stored.acknowledged_by == "alice"
        assert stored.version == version  # the lock's version bump was rolled back too
        await services.comment(incident.key, "next change goes through", "bob")
        assert await Comment.all().count() == 1
        assert await Event.all().count() == events + 1
    finally:
        await close_database()


async def test_the_wal_is_checkpointed_in_the_background_not_in_a_commit(sqlite_database):
    """Automatic checkpoints are off on the process's connection (a commit never copies the WAL
    back into the database); the background checkpointer does it soon after the WAL passes
    1,000 pages, as SQLite's own would."""
    import os

    from tortoise import connections

    from engine.storage.db import close_database, open_database
    from engine.storage.models import Comment

    await open_database(sqlite_database)
    try:
        incident = await services.create_incident(title="busy", severity="high", actor="x")
        checkpointer = connections.get("default")._checkpointer
        await checkpointer.stop()
        size = os.path.getsize(sqlite_database.path)
        for i in range(300):  # about 2,000 pages: SQLite's own checkpoint would run in three commits
            await services.comment(incident.key, f"note {i} " + "x" * 200, "alice")
        assert os.path.getsize(sqlite_database.path) == size  # no commit copied the WAL back
        assert os.path.getsize(checkpointer.wal) > checkpointer.limit
        checkpointer.start()
        deadline = asyncio.get_running_loop().time() + 5
        while os.path.getsize(sqlite_database.path) <= size:
            assert asyncio.get_running_loop().time() < deadline, "the WAL was never checkpointed"
            await asyncio.sleep(0.05)
        assert await Comment.all().count() == 300
    finally:
        await close_database()
    check = sqlite3.connect(sqlite_database.path)
    try:
        assert check.execute("SELECT count(*) FROM comment").fetchone()[0] == 300
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        check.close()


async def test_the_engine_connection_keeps_savepoint_journals_in_memory(sqlite_database):
    """Every change on a busy API runs in a savepoint of a shared transaction; its journal
    must not spill to a temporary file (a write per page), so temp_store is MEMORY."""
    from tortoise import connections

    from engine.storage.db import close_database, open_database

    await open_database(sqlite_database)
    try:
        await services.create_incident(title="opens the connection", severity="low", actor="x")
        raw = connections.get("default")._connection._conn
        assert raw.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
    finally:
        await close_database()


async def _commits_during(coro):  # type: ignore[no-untyped-def]
    """Run `coro` counting the COMMITs the process's connection sends, and return both."""
    from tortoise import connections

    raw = connections.get("default")._connection._conn
    commits: list[str] = []
    raw.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    try:
        result = await coro
    finally:
        raw.set_trace_callback(None)
    return result, len(commits)


async def test_changes_arriving_together_share_a_commit_and_each_returns_once_stored(sqlite_database):
    """Twenty comments posted at once join one transaction (engine.storage.sqlite.CommitGroup)
    instead of committing twenty times, and none returns before it is committed: another
    connection, which sees only what is committed, finds each comment as soon as its call returns."""
    from engine.storage.db import close_database, open_database
    from engine.storage.models import Comment

    await open_database(sqlite_database)
    reader = sqlite3.connect(sqlite_database.path)
    try:
        incident = await services.create_incident(title="busy", severity="high", actor="x")
        version = (await Incident.get(id=incident.id)).version
        found: list[int] = []

        async def post(i: int) -> None:
            row = await services.comment(incident.key, f"note {i}", "alice")
            found.append(reader.execute("SELECT count(*) FROM comment WHERE id = ?", (row.id,)).fetchone()[0])

        _, commits = await _commits_during(asyncio.gather(*(post(i) for i in range(20))))
        assert found == [1] * 20
        assert commits < 10, f"{commits} commits for 20 changes arriving together"
        assert await Comment.filter(incident_id=incident.id).count() == 20
        events = [e.kind for e in await incident.events.all()]
        assert events.count("commented") == 20
        assert (await Incident.get(id=incident.id)).version == version + 20  # one bump per change
    finally:
        reader.close()
        await close_database()


async def test_a_refused_change_in_a_shared_commit_leaves_the_others_stored(sqlite_database):
    """A change refused inside a shared transaction rolls back its own savepoint only: its lock's
    version bump is gone, the changes before and after it in the group are committed."""
    from engine.core.domain import IllegalTransition
    from engine.storage.db import close_database, open_database
    from engine.storage.models import Comment, Event

    await open_database(sqlite_database)
    try:
        acked = await services.create_incident(title="acknowledged", severity="low", actor="x")
        await services.acknowledge(acked.key, "alice")
        other = await services.create_incident(title="busy", severity="high", actor="x")
        version = (await Incident.get(id=acked.id)).version
        events = await Event.filter(incident_id=acked.id).count()
        results, commits = await _commits_during(
            asyncio.gather(
                services.comment(other.key, "before", "bob"),
                services.acknowledge(acked.key, "bob"),  # refused after its lock
                services.comment(other.key, "after", "bob"),
                return_exceptions=True,
            )
        )
        assert isinstance(results[1], IllegalTransition)
        assert commits == 1  # one transaction held all three
        assert sorted(c.content for c in await Comment.filter(incident_id=other.id)) == ["after", "before"]
        stored = await Incident.get(id=acked.id)
        assert (stored.version, stored.acknowledged_by) == (version, "alice")
        assert await Event.filter(incident_id=acked.id).count() == events
    finally:
        await close_database()


async def test_a_commit_that_fails_fails_every_change_that_shared_it(sqlite_database):
    """When the shared transaction cannot commit (here a deferred foreign key one change broke,
    checked by SQLite at COMMIT), every change in it raises and none of them is stored; the
    connection then serves the next change."""
    from engine.core.clock import utcnow
    from engine.incidents.services.timeline import change
    from engine.storage.db import close_database, open_database
    from engine.storage.models import Comment

    await open_database(sqlite_database)
    try:
        from tortoise import connections

        db = connections.get("default")
        await db.execute_script(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"
        )
        incident = await services.create_incident(title="busy", severity="high", actor="x")
        version = (await Incident.get(id=incident.id)).version

        async def orphan() -> None:
            async with change(incident.key, utcnow()) as c:
                await c.conn.execute_query("INSERT INTO child (parent_id) VALUES (42)")

        results = await asyncio.gather(
            services.comment(incident.key, "a", "bob"), orphan(), services.comment(incident.key, "b", "bob"), return_exceptions=True
        )
        assert all(isinstance(r, Exception) and "FOREIGN KEY" in str(r) for r in results), results
        assert await Comment.all().count() == 0
        assert (await Incident.get(id=incident.id)).version == version
        await services.comment(incident.key, "after", "bob")
        assert [c.content for c in await Comment.all()] == ["after"]
    finally:
        await close_database()


async def test_a_change_cancelled_while_its_group_commits_is_stored_and_leaves_nothing_held(sqlite_database):
    """A change whose caller is cancelled after its writes joined the shared transaction (while
    it waits for the commit) is committed with the others, as a change cancelled just after its
    own commit would be; the group's lock is let go and the next change goes through."""
    from engine.storage.db import close_database, open_database
    from engine.storage.models import Comment

    await open_database(sqlite_database)
    try:
        incident = await services.create_incident(title="busy", severity="high", actor="x")
        tasks = [asyncio.create_task(services.comment(incident.key, f"note {i}", "alice")) for i in range(3)]
        while not all(t.done() or t.get_coro().cr_await is not None for t in tasks):  # each has run until it waits
            await asyncio.sleep(0)
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        assert sorted(c.content for c in await Comment.filter(incident_id=incident.id)) == ["note 0", "note 1", "note 2"]
        await asyncio.wait_for(services.comment(incident.key, "after", "bob"), 5)
        assert await Comment.filter(incident_id=incident.id).count() == 4
    finally:
        await close_database()


async def test_an_incident_change_cancelled_while_another_process_writes_leaves_no_transaction_behind(sqlite_database):
    """The change's BEGIN waits in aiosqlite's thread and still completes after the caller is
    cancelled: it is rolled back before the connection is let go. Without that, the connection
    stayed in a transaction nobody owned: every later change refused, plain writes never
    committed, and the write lock held from every other process."""
    from engine.storage.db import close_database, open_database

    await open_database(sqlite_database)
    incident = await services.create_incident(title="busy", severity="high", actor="x")
    other = sqlite3.connect(sqlite_database.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        task = asyncio.create_task(services.comment(incident.key, "cancelled", "alice"))
        await asyncio.sleep(0.3)
        assert not task.done()
        task.cancel()
        await asyncio.sleep(0.3)
        other.execute("ROLLBACK")
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        assert task.cancelled()

        await asyncio.wait_for(services.comment(incident.key, "after", "bob"), 5)
        await asyncio.wait_for(Incident.filter(id=incident.id).update(title="renamed"), 5)
        # Committed, for every connection to read, and the write lock is free again.
        assert other.execute("SELECT title FROM incident WHERE id = ?", (incident.id,)).fetchone()[0] == "renamed"
        assert [r[0] for r in other.execute("SELECT content FROM comment WHERE incident_id = ?", (incident.id,))] == ["after"]
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        await close_database()


async def test_a_change_that_goes_on_after_sqlite_dropped_the_shared_transaction_fails_and_the_next_joins_a_new_one(sqlite_database):
    """A statement that fills the disk makes SQLite roll the whole shared transaction back. A
    change that catches that error and goes on must not return as if stored: it fails, as the
    change before it in the group does (its writes went with the transaction), and the change
    after it starts a new transaction instead of writing into none, and is stored."""
    from tortoise import connections
    from tortoise.exceptions import OperationalError

    from engine.core.clock import utcnow
    from engine.incidents.services.timeline import change
    from engine.storage.db import close_database, open_database

    await open_database(sqlite_database)
    try:
        incident = await services.create_incident(title="busy", severity="high", actor="x")
        db = connections.get("default")
        await db.execute_script("CREATE TABLE note (name TEXT PRIMARY KEY, body TEXT)")

        async def note(name: str) -> None:
            async with change(incident.key, utcnow()) as c:
                await c.conn.execute_query("INSERT INTO note (name, body) VALUES (?, '')", [name])

        async def goes_on() -> None:
            async with change(incident.key, utcnow()) as c:
                with contextlib.suppress(OperationalError):  # disk full: SQLite rolled back everything
                    await c.conn.execute_query("INSERT INTO note (name, body) VALUES ('big', ?)", ["x" * 200_000])

        pages = (await db.execute_query_dict("PRAGMA page_count"))[0]["page_count"]
        await db.execute_query(f"PRAGMA max_page_count = {pages + 3}")
        try:
            results = await asyncio.gather(note("first"), goes_on(), note("third"), return_exceptions=True)
        finally:
            await db.execute_query("PRAGMA max_page_count = 1073741823")
        assert [type(r).__name__ for r in results] == ["OperationalError", "OperationalError", "NoneType"], results
        assert "rolled back" in str(results[1])
        assert [r["name"] for r in await db.execute_query_dict("SELECT name FROM note")] == ["third"]
    finally:
        await close_database()
