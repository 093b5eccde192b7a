"""A postgres:// URL as operators write it: libpq's parameters (sslmode=…) are honoured by every
connection PulseGuard opens, and a schema name it cannot use is refused before anything is made.
Real PostgreSQL, the CLI in a subprocess."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.db import PG_URL, drop_pg_schema, pg_url_with_schema
from support.db import run_cli as run_cli_on

from engine.storage.db import resolve_database

pytestmark = pytest.mark.postgres


def _cli(url: str, *args: str):  # type: ignore[no-untyped-def]
    return run_cli_on(resolve_database(PG_URL), *args, PULSEGUARD_DB=url)


async def _server_has_ssl() -> bool:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.split("?", 1)[0], ssl="disable")
    try:
        return (await conn.fetchval("SHOW ssl")) == "on"
    finally:
        await conn.close()


async def _schema_exists(schema: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.split("?", 1)[0])
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema))
    finally:
        await conn.close()


def test_sslmode_in_the_url_is_honoured(tmp_path: Path) -> None:
    schema = f"t_ssl_{uuid.uuid4().hex[:10]}"
    try:
        plain = _cli(f"{pg_url_with_schema(schema)}&sslmode=disable", "incident", "create", "--title", "Disk full", "--severity", "low")
        assert plain.returncode == 0, plain.stderr  # was: "unexpected failure: TypeError: … 'sslmode'"
        asyncio.run(drop_pg_schema(schema))
        secure = _cli(f"{pg_url_with_schema(schema)}&sslmode=require", "incident", "create", "--title", "Disk full", "--severity", "low")
        if asyncio.run(_server_has_ssl()):
            assert secure.returncode == 0, secure.stderr
        else:  # never a plain-text connection when TLS is required
            assert secure.returncode == 1
            parts = urlsplit(PG_URL)
            server = f"{parts.hostname}:{parts.port or 5432}"
            assert secure.stderr.strip().splitlines() == [
                f'error: cannot reach PostgreSQL at {server}: PostgreSQL server at "{server}" rejected SSL upgrade'
            ]
            assert not asyncio.run(_schema_exists(schema))
    finally:
        asyncio.run(drop_pg_schema(schema))


@pytest.mark.parametrize("schema", ["ops team", 'x";drop', "1st"])
def test_a_schema_name_postgres_cannot_take_is_refused_with_one_line(schema: str) -> None:
    proc = _cli(pg_url_with_schema(schema), "incident", "create", "--title", "Disk full", "--severity", "low")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --db: schema") and "Traceback" not in proc.stderr
    assert not asyncio.run(_schema_exists(schema))
