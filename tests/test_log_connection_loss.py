"""While PostgreSQL restarts, every loop of the engine logged its traceback each round (98 in
15 s in a trial with a proxy cut for 15 s): a lost or unreachable database connection is now one
line per logger and message, at most once in REPEAT_SECONDS, the next saying how many were left
out. An HTTP client's connection error keeps its traceback. Real PostgreSQL (a backend ended with
pg_terminate_backend) and a real refused TCP port."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from support.db import PG_URL
from support.receivers import free_port

from engine.core import logs
from engine.storage.outcome import connection_summary

pytestmark = pytest.mark.skipif(not PG_URL, reason="a connection ended by PostgreSQL: PULSEGUARD_TEST_PG")


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logs.protect(handler)
    log = logging.getLogger("pulseguard.test.connection_loss")
    log.addHandler(handler)
    log.propagate = False
    logs.summarize_exceptions(connection_summary)
    try:
        yield log, out
    finally:
        logs.summarize_exceptions(None)
        log.removeHandler(handler)


async def lost_connection_error() -> BaseException:
    conn = await asyncpg.connect(PG_URL.split("?", 1)[0])
    admin = await asyncpg.connect(PG_URL.split("?", 1)[0])
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    finally:
        await admin.close()
    try:
        await conn.fetchval("SELECT 1")
    except Exception as exc:
        return exc
    finally:
        conn.terminate()
    raise AssertionError("the ended backend still answered")


async def test_a_lost_database_connection_is_one_line_then_counted(logged, monkeypatch) -> None:
    log, out = logged
    exc = await lost_connection_error()
    clock = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: clock[0])
    for _ in range(5):
        try:
            raise exc
        except Exception:
            log.exception("deliverer: recording outcomes failed")
    text = out.getvalue()
    assert "Traceback" not in text and text.count("\n") == 1, text
    assert text.startswith("pulseguard.test.connection_loss: deliverer: recording outcomes failed (database connection lost: "), text
    clock[0] += logs.REPEAT_SECONDS + 1
    try:
        raise exc
    except Exception:
        log.exception("deliverer: recording outcomes failed")
    assert out.getvalue().splitlines()[1].endswith(f"[4 more like it in the last {logs.REPEAT_SECONDS:.0f} s]"), out.getvalue()


async def test_an_unreachable_database_is_one_line(logged) -> None:
    log, out = logged
    try:
        await asyncpg.connect(f"postgres://postgres@127.0.0.1:{free_port()}/test", timeout=5)
    except OSError:
        log.exception("engine lease: cannot renew")
    text = out.getvalue()
    assert "Traceback" not in text and "(database connection unreachable: " in text, text


async def test_an_http_clients_connection_error_keeps_its_traceback(logged) -> None:
    log, out = logged
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"http://127.0.0.1:{free_port()}/hook")
        except httpx.ConnectError:
            log.exception("webhook: sending failed")
    text = out.getvalue()
    assert "Traceback" in text and "database connection" not in text, text
