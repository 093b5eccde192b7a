"""SQLite backend whose transactions take the write lock up front and never leak their lock.

Tortoise opens transactions with a deferred ``BEGIN``. With two processes on one file, a deferred
transaction that reads and then writes can fail at once with "database is locked" (the busy
handler is not consulted when a read snapshot must be upgraded). ``BEGIN IMMEDIATE`` waits on the
busy timeout instead, so concurrent writers queue rather than fail.

Tortoise's transaction context also keeps its connection lock if the task is cancelled (or the
BEGIN fails) while it waits for another process's write lock, after which every query in the
process hangs. The context here releases the lock and rolls back whatever BEGIN left behind.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from tortoise.backends.base.client import TransactionalDBClient
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            # The connection is in autocommit mode, so no transaction is pending here.
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class SafeTransactionContext(SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            try:
                await asyncio.shield(self._undo_begin())
            finally:
                self._trxlock.release()
            raise
        connection: TransactionalDBClient = self.connection  # Tortoise types it Any
        return connection

    async def _undo_begin(self) -> None:
        # aiosqlite runs statements in order, so this ROLLBACK follows a BEGIN that may still
        # complete in its thread after the task was cancelled.
        conn: Any = getattr(self.connection, "_connection", None)
        if conn is None:
            return
        try:
            await conn.execute("ROLLBACK")
        except (sqlite3.OperationalError, ValueError):
            pass  # no transaction was open, or the connection is closed


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> SqliteTransactionContext:
        return SafeTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient


def get_client_class(db_info: dict[str, Any]) -> type[SqliteClient]:
    return ImmediateSqliteClient
