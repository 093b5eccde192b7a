"""SQLite backend whose transactions take the write lock up front.

Tortoise opens transactions with a deferred ``BEGIN``. With two processes on one file, a deferred
transaction that reads and then writes can fail at once with "database is locked" (the busy
handler is not consulted when a read snapshot must be upgraded). ``BEGIN IMMEDIATE`` waits on the
busy timeout instead, so concurrent writers queue rather than fail.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            # The connection is in autocommit mode, so no transaction is pending here.
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> SqliteTransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient


def get_client_class(db_info: dict) -> type[SqliteClient]:
    return ImmediateSqliteClient
