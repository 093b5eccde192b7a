"""PostgreSQL ending the engine's connections (a restart, a failover, pg_terminate_backend): the
task whose transaction lost its connection works again on the next one, the pool keeps all its
connections, and a request whose write lost its connection is told so with a 503. Real
PostgreSQL; the backends are ended with pg_terminate_backend at the moment that matters."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from support.db import PG_URL
from support.rest import running_api
from tortoise import Tortoise
from tortoise.backends.asyncpg.client import TransactionWrapper
from tortoise.transactions import in_transaction

from engine.incidents.services import lifecycle
from engine.storage.models import Incident

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_db(db: Any) -> Any:
    if db.kind != "postgres":
        pytest.skip("PostgreSQL's connections")
    return db


@pytest.fixture
async def admin() -> Any:
    conn = await asyncpg.connect(PG_URL.split("?", 1)[0])
    try:
        yield conn
    finally:
        await conn.close()


async def _terminate(admin: Any, connection: Any) -> None:
    pid = connection.get_server_pid()
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    for _ in range(100):  # until this process has seen its connection go
        if connection.is_closed():
            return
        await asyncio.sleep(0.01)


async def test_a_transaction_whose_begin_loses_its_connection_leaves_the_task_and_the_pool_working(pg_db, admin, monkeypatch) -> None:
    real_begin = TransactionWrapper.begin
    cut = 0

    async def begin_on_a_terminated_backend(self: Any) -> None:
        nonlocal cut
        if cut == 0:  # PostgreSQL ends the backend between the pool's hand-over and BEGIN
            cut += 1
            await _terminate(admin, self._connection)
        await real_begin(self)

    monkeypatch.setattr(TransactionWrapper, "begin", begin_on_a_terminated_backend)
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver says about a dead connection
        async with in_transaction():
            pass
    assert cut == 1

    # The same task (a long-lived loop: the deliverer, the enricher) reads and writes again.
    assert await Incident.all().count() == 0
    async with in_transaction():
        await Incident.all().count()

    # And the pool has all its connections: as many transactions as it holds run at once.
    size: int = Tortoise.get_connection("default")._pool._maxsize  # type: ignore[attr-defined]

    async def hold() -> None:
        async with in_transaction() as conn:
            await conn.execute_query("SELECT pg_sleep(0.2)")

    await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(size))), 10)


async def test_a_write_whose_connection_is_cut_gets_503_not_a_500(pg_db, admin, monkeypatch) -> None:
    real_next_number = lifecycle.next_number
    cut = 0

    async def number_then_cut(conn: Any) -> int:
        nonlocal cut
        number: int = await real_next_number(conn)
        if cut == 0:  # inside the incident's transaction: PostgreSQL ends the backend
            cut += 1
            await _terminate(admin, conn._connection)
        return number

    monkeypatch.setattr(lifecycle, "next_number", number_then_cut)
    async with running_api() as api, api.client("responder") as client:
        response = await client.post("/api/incidents", json={"title": "Checkout errors", "severity": "high"})
        assert cut == 1
        assert response.status_code == 503, response.text
        assert response.headers.get("Retry-After")
        assert "connection" in response.json()["message"]

        again = await client.post("/api/incidents", json={"title": "Checkout errors", "severity": "high"})
        assert again.status_code == 201, again.text
    assert await Incident.all().count() == 1
