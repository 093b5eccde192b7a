"""SQLite backend whose transactions take the write lock up front and never leak their lock.

Tortoise opens transactions with a deferred ``BEGIN``. With two processes on one file, a deferred
transaction that reads and then writes can fail at once with "database is locked" (the busy
handler is not consulted when a read snapshot must be upgraded). ``BEGIN IMMEDIATE`` waits on the
busy timeout instead, so concurrent writers queue rather than fail.

Tortoise's transaction context also keeps its connection lock if the task is cancelled (or the
BEGIN fails) while it waits for another process's write lock, after which every query in the
process hangs. The context here releases the lock and rolls back whatever BEGIN left behind.

An incident change (engine.incidents.services.timeline.change) is a handful of one-row statements
under the write lock. Each statement sent through aiosqlite's thread costs a thread hop and a turn
of the event loop, and on a busy API those turns, not SQLite, set how long the lock is held. Such
transactions ask for `inline_writes()`: their statements run on the calling thread (microseconds
each under WAL), so the lock is held for the transaction's own work only. BEGIN IMMEDIATE is tried
without waiting and, when another process holds the write lock, waits in aiosqlite's thread as
before, so the event loop never waits on another process.

Such transactions may also ask to be grouped (`grouped_transaction`): on a busy API, changes that
arrive while one is running join its transaction, each in its own savepoint, and the group commits
once. A commit writes every page the transaction dirtied to the WAL; the changes of one incident
share most of theirs (the incident's row, the indexes' last pages), so a group of four costs about
what two changes cost alone (measured: 737 against 288 µs a status update, raw SQLite).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import aiosqlite
from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError
from tortoise.transactions import in_transaction

_INLINE: ContextVar[bool] = ContextVar("pulseguard_sqlite_inline", default=False)


@contextmanager
def inline_writes() -> Iterator[None]:
    """Transactions opened inside run their statements on the calling thread (see the module's
    docstring): only for short transactions of a few one-row statements."""
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)


class _Cursor:
    """The little of aiosqlite's Cursor that callers of `execute` use."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """aiosqlite.Connection's statement methods run directly on its sqlite3 connection. Safe only
    while the caller holds Tortoise's connection lock (a transaction does): then no statement of
    aiosqlite's thread is pending, and none starts until the lock is released."""

    def __init__(self, conn: aiosqlite.Connection, busy_timeout: int) -> None:
        self._async = conn
        self._raw: sqlite3.Connection = conn._conn
        self._busy_timeout = busy_timeout

    def __getattr__(self, name: str) -> Any:
        return getattr(self._async, name)

    @property
    def total_changes(self) -> int:
        return self._raw.total_changes

    async def begin_immediate(self) -> None:
        raw = self._raw
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        finally:
            raw.execute(f"PRAGMA busy_timeout = {self._busy_timeout}")
        try:
            await self._async.execute("BEGIN IMMEDIATE")  # another process writes: wait off the loop
        except BaseException:
            await rollback_behind(self._async)
            raise

    async def execute(self, sql: str, parameters: Any = None) -> _Cursor:
        return _Cursor(self._raw.execute(sql, parameters or ()))

    async def execute_fetchall(self, sql: str, parameters: Any = None) -> list[Any]:
        return self._raw.execute(sql, parameters or ()).fetchall()

    async def execute_insert(self, sql: str, parameters: Any = None) -> tuple[int]:
        return (self._raw.execute(sql, parameters or ()).lastrowid or 0,)

    async def executemany(self, sql: str, parameters: Any) -> _Cursor:
        return _Cursor(self._raw.executemany(sql, parameters))

    async def commit(self) -> None:
        # Measured: committing here beats a hop to aiosqlite's thread (1,030 against 890 comments
        # a second, bench/api.py), although the loop waits for the WAL write.
        self._raw.commit()

    async def rollback(self) -> None:
        self._raw.rollback()


def _inline(client: SqliteClient, conn: aiosqlite.Connection) -> InlineConnection:
    return InlineConnection(conn, int(client.pragmas.get("busy_timeout", 30000)))


async def rollback_behind(conn: aiosqlite.Connection) -> None:
    """ROLLBACK in aiosqlite's thread, after what is queued there: a BEGIN whose caller was
    cancelled (or timed out) still runs to its end and would leave the connection in a
    transaction nobody owns, every later BEGIN refused and the write lock held. Waited for to its
    end even if cancelled again, so the caller lets go of the connection's lock only after it."""

    async def rollback() -> None:
        try:
            await conn.execute("ROLLBACK")
        except (sqlite3.Error, ValueError):
            pass  # no transaction was open, or the connection is closed

    task = asyncio.ensure_future(rollback())
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            # The connection is in autocommit mode, so no transaction is pending here.
            conn: Any = self._connection
            if isinstance(conn, InlineConnection):
                await conn.begin_immediate()
            else:
                await conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class SafeTransactionContext(SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            if _INLINE.get() and isinstance(self.connection._connection, aiosqlite.Connection):
                self.connection._connection = _inline(self.connection._parent, self.connection._connection)
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            try:
                conn: Any = getattr(self.connection, "_connection", None)
                if isinstance(conn, InlineConnection):
                    conn = conn._async  # behind anything still queued in its thread
                if conn is not None:
                    await rollback_behind(conn)
            finally:
                self._trxlock.release()
            raise
        connection: TransactionalDBClient = self.connection  # Tortoise types it Any
        return connection


class Checkpointer:
    """Checkpoints the WAL from its own connection, in a worker thread, instead of inside a commit.

    SQLite checkpoints automatically in the commit that takes the WAL past 1,000 pages: that
    commit copies the pages back into the database and syncs it, some milliseconds in which the
    write lock is held (measured: 1 % of the commits of a busy incident, 45 % of all commit time).
    With automatic checkpoints off on the process's connection, this looks at the WAL's size every
    `interval` seconds and, once it has passed the same 1,000 pages, runs a PASSIVE checkpoint,
    which never blocks writers or readers. A process that stops leaves the rest to SQLite, which
    checkpoints when the last connection closes."""

    PAGES = 1000  # SQLite's own wal_autocheckpoint default

    def __init__(self, path: str, page_size: int, interval: float = 0.25) -> None:
        self.path = path
        self.wal = path + "-wal"
        self.limit = self.PAGES * (page_size + 24)  # a WAL frame is a page and its 24-byte header
        self.interval = interval
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pulseguard-sqlite-checkpoint")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval)
                return
            except TimeoutError:
                pass
            try:
                if os.path.getsize(self.wal) < self.limit:  # noqa: ASYNC240 (one stat of a local file)
                    continue
                # Shielded: a checkpoint under way finishes on its connection before anything
                # closes that connection (closing it under a running statement crashes).
                await asyncio.shield(self._checkpoint_async())
            except (OSError, sqlite3.Error):
                continue  # no WAL yet, or a failed round: the next one tries again

    async def _checkpoint_async(self) -> None:
        async with self._busy:
            await asyncio.to_thread(self._checkpoint)

    def _checkpoint(self) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def stop(self) -> None:
        """Stop after the checkpoint under way, if any, and close the connection."""
        if self._task is not None:
            self._stopping.set()
            task, self._task = self._task, None
            try:
                await task
            except asyncio.CancelledError:
                pass
        async with self._busy:  # a shielded checkpoint may outlive a cancelled task
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await asyncio.to_thread(conn.close)


class CommitGroup:
    """One transaction that changes join while it is open, each in its own savepoint and in turn
    (see `grouped_transaction`). It commits once no member is left running: in a callback after
    the last one leaves, so the changes ready in the same turn of the event loop join first."""

    # Members at most, so a steady stream of changes still commits and readers get their turn.
    MAX = 32

    def __init__(self, client: ImmediateSqliteClient) -> None:
        self.client = client
        self.turn = asyncio.Lock()
        self.wrapper: ImmediateTransactionWrapper | None = None
        self.raw: sqlite3.Connection | None = None  # the wrapper's sqlite3 connection
        self.running = 0  # members joined and not yet left
        self.size = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A failed commit with every member gone (cancelled) is nobody's to read.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.finished = False

    def open_to_join(self) -> bool:
        return not self.finished and self.size < self.MAX

    async def begin(self) -> ImmediateTransactionWrapper:
        """Take the connection's lock and BEGIN IMMEDIATE (the first member in turn does)."""
        if self.wrapper is not None:
            return self.wrapper
        client = self.client
        await client._lock.acquire()
        try:
            if not client._connection:
                await client.create_connection(with_db=True)
            conn = client._connection
            assert conn is not None
            inline = _inline(client, conn)
            wrapper = ImmediateTransactionWrapper(client)
            wrapper._connection = inline  # type: ignore[assignment]
            await wrapper.begin()  # a BEGIN cut short rolls itself back (begin_immediate)
        except BaseException:
            client._lock.release()
            raise
        self.wrapper, self.raw = wrapper, inline._raw
        return wrapper

    def left(self) -> None:
        self.running -= 1
        if self.running == 0:
            asyncio.get_running_loop().call_soon(self._finish)

    def _close(self) -> None:
        self.finished = True
        if self.client._group is self:
            self.client._group = None

    def broke(self, exc: BaseException) -> None:
        """The transaction is gone with what the members before stored in it: they fail too."""
        self._close()
        if self.wrapper is not None:
            self.wrapper._finalized = True
            self.wrapper = None
            self.client._lock.release()
        if not self.done.done():
            self.done.set_exception(exc)

    def _finish(self) -> None:
        if self.running or self.finished:
            return  # a change joined meanwhile: the last to leave finishes
        self._close()
        wrapper, self.wrapper = self.wrapper, None
        raw = self.raw
        if wrapper is None or raw is None:  # nobody began: every member failed to
            self.done.set_result(None)
            return
        try:
            if not raw.in_transaction:
                raise sqlite3.OperationalError("the transaction was rolled back before it could commit")
            raw.commit()
        except BaseException as exc:
            try:
                raw.rollback()
            except sqlite3.Error:
                pass
            self.done.set_exception(exc)
        else:
            self.done.set_result(None)
        finally:
            wrapper._finalized = True
            self.client._lock.release()


class ImmediateSqliteClient(SqliteClient):
    _checkpointer: Checkpointer | None = None
    _group: CommitGroup | None = None

    async def create_connection(self, with_db: bool) -> None:
        if not self._connection:
            # Opened in aiosqlite's thread and also used, under the connection lock, from the
            # event loop's (InlineConnection).
            self._connection = await aiosqlite.connect(self.filename, isolation_level=None, check_same_thread=False)
            self._connection._conn.row_factory = sqlite3.Row
            for pragma, val in self.pragmas.items():
                cursor = await self._connection.execute(f"PRAGMA {pragma}={val}")
                await cursor.close()
            if self.filename != ":memory:" and str(self.pragmas.get("journal_mode", "")).upper() == "WAL":
                cursor = await self._connection.execute("PRAGMA wal_autocheckpoint=0")
                await cursor.close()
                cursor = await self._connection.execute("PRAGMA page_size")
                page_size = int((await cursor.fetchone() or [4096])[0])
                await cursor.close()
                self._checkpointer = Checkpointer(self.filename, page_size)
                self._checkpointer.start()
            await self._post_connect()

    async def close(self) -> None:
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            await checkpointer.stop()
        await super().close()

    def _in_transaction(self) -> SqliteTransactionContext:
        return SafeTransactionContext(ImmediateTransactionWrapper(self), self._lock)


@asynccontextmanager
async def grouped_transaction(client: ImmediateSqliteClient) -> AsyncIterator[TransactionalDBClient]:
    """A transaction of `client`'s that may be shared with changes running at about the same
    time (see CommitGroup): inside it this change has the connection to itself, in a savepoint
    rolled back if it raises (then it raises at once: none of its writes are stored). It returns
    once the group has committed, so what follows it sees its writes stored; a failed commit
    raises here, for every member. Only for short transactions run inline (inline_writes)."""
    while True:
        group = client._group
        if group is None or not group.open_to_join():
            group = client._group = CommitGroup(client)
        group.running += 1
        group.size += 1
        turn = False
        try:
            turn = await group.turn.acquire()
            if not group.finished:
                wrapper = await group.begin()
                raw = group.raw
                assert raw is not None
                if raw.in_transaction:
                    break
                # SQLite rolled the transaction back under a change that went on regardless.
                group.broke(sqlite3.OperationalError("the transaction was rolled back before it could commit"))
        except BaseException:
            if turn:
                group.turn.release()
            group.left()
            raise
        group.turn.release()  # it broke while this change waited: join another
        group.left()
    try:
        raw.execute("SAVEPOINT pulseguard_change")
        token = get_connections().set(wrapper.connection_name, wrapper)
        try:
            yield wrapper
        except BaseException as exc:
            if raw.in_transaction:
                raw.execute("ROLLBACK TO pulseguard_change")
                raw.execute("RELEASE pulseguard_change")
            else:  # SQLite rolled the whole transaction back (disk full, I/O error)
                group.broke(exc)
            raise
        else:
            if not raw.in_transaction:  # rolled back under this change, which went on: its writes are lost
                lost = sqlite3.OperationalError("the transaction was rolled back before it could commit")
                group.broke(lost)
                raise lost
            raw.execute("RELEASE pulseguard_change")
        finally:
            get_connections().reset(token)
    finally:
        group.turn.release()
        group.left()
    await asyncio.shield(group.done)


def change_transaction() -> AbstractAsyncContextManager[TransactionalDBClient]:
    """The transaction of one incident change: grouped on SQLite (see grouped_transaction),
    Tortoise's own elsewhere and inside a caller's transaction."""
    client = connections.get("default")
    if isinstance(client, ImmediateSqliteClient):
        return grouped_transaction(client)
    return in_transaction()


client_class = ImmediateSqliteClient


def get_client_class(db_info: dict[str, Any]) -> type[SqliteClient]:
    return ImmediateSqliteClient
