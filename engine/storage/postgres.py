"""PostgreSQL through Tortoise's asyncpg backend, with transactions that survive a lost connection.

Tortoise's pooled transaction takes a connection from the pool and makes it the task's current
connection before it sends BEGIN. When BEGIN fails (PostgreSQL restarted, failed over, or ended
the backend: the pooled connection is dead), Tortoise neither gives the connection back nor
restores the task's current connection: the pool is one connection smaller for good, and every
later query of that task, and of every task it starts, goes to the dead connection ("connection
is closed") until the process restarts. A long-lived loop (the deliverer recording outcomes, the
enricher reading the feed) never recovers, and the deliverer sends the same pages again and again
because it cannot record them. Here BEGIN's failure restores both.

And when a transaction fails because its connection was lost, Tortoise's ROLLBACK on that dead
connection raised its own "connection is closed" in place of the error that says what happened;
PostgreSQL has rolled the transaction back already when the connection went, so the original error
is kept.
"""

from __future__ import annotations

import logging
from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import TransactionalDBClient, TransactionContext, TransactionContextPooled
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

log = logging.getLogger("pulseguard.storage")


class SafePooledTransactionContext(TransactionContextPooled):
    async def __aenter__(self) -> TransactionalDBClient:
        await self.ensure_connection()
        pool: Any = self.client._parent._pool
        self.client._connection = await pool.acquire()
        self.token = get_connections().set(self.connection_name, self.client)
        try:
            await self.client.begin()
        except BaseException:
            get_connections().reset(self.token)
            await _release(pool, self.client._connection)
            raise
        return self.client

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        pool: Any = self.client._parent._pool
        try:
            if not self.client._finalized:
                if exc_type is None:
                    await self.client.commit()
                elif exc_type is not TransactionManagementError:
                    try:
                        await self.client.rollback()
                    except Exception as exc:
                        if not _connection_gone(self.client._connection):
                            raise
                        # PostgreSQL rolled it back when the connection went; keep the real error.
                        log.debug("rollback on a lost connection: %s", exc)
        finally:
            if pool:
                await _release(pool, self.client._connection)
            get_connections().reset(self.token)


def _connection_gone(connection: Any) -> bool:
    try:
        return bool(connection.is_closed())
    except Exception:  # a proxy already detached from its connection
        return True


async def _release(pool: Any, connection: Any) -> None:
    try:
        await pool.release(connection)
    except Exception as exc:  # a connection the pool cannot take back is closed by it
        log.debug("releasing a pooled connection failed: %s", exc)


class SafeAsyncpgDBClient(AsyncpgDBClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # libpq's parameters of the URL (sslmode=require, …): asyncpg reads them from a DSN only.
        self.dsn: str | None = self.extra.pop("dsn", None)

    async def create_pool(self, **kwargs: Any) -> Any:
        import asyncpg

        return await asyncpg.create_pool(self.dsn, **kwargs)

    def _in_transaction(self) -> TransactionContext:
        return SafePooledTransactionContext(TransactionWrapper(self), self._pool_init_lock)


client_class = SafeAsyncpgDBClient
