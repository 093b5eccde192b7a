"""The database and CLI pieces every test shares: the repository root, the PostgreSQL test server,
the migrated template, a direct read of every table, and running `pulseguard …` as a user would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.storage.db import Database
from support import REPO
from support.cli_proc import run_python

PG_URL = os.environ.get("PULSEGUARD_TEST_PG", "").strip()


def pg_url_with_schema(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}schema={schema}"


async def drop_pg_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.split("?", 1)[0].replace("postgresql://", "postgres://", 1))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@dataclass(frozen=True)
class MigratedTemplate:
    sqlite_file: Path
    pg_schema: str | None = None  # the name the dump's statements create
    pg_dump: str | None = None  # None: migrate each PostgreSQL schema (no usable pg_dump here)

    def copy_sqlite(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.sqlite_file, path)

    async def copy_pg(self, schema: str) -> bool:
        if self.pg_dump is None or self.pg_schema is None:
            return False
        import asyncpg

        script = re.sub(rf"\b{self.pg_schema}\b", schema, self.pg_dump)
        conn = await asyncpg.connect(PG_URL.split("?", 1)[0].replace("postgresql://", "postgres://", 1))
        try:
            await conn.execute(script)  # one implicit transaction
        finally:
            await conn.close()
        return True


def table_rows(database: Database) -> dict[str, list[tuple]]:
    """Every row of every table, read directly (not through the engine): for "changed nothing"."""
    if database.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(database.path) as con:  # type: ignore[arg-type]
            names = [
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            ]
            return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall() for n in names}

    async def read() -> dict[str, list[tuple]]:
        import asyncpg

        conn = await asyncpg.connect(PG_URL.split("?", 1)[0].replace("postgresql://", "postgres://", 1))
        try:
            names = [
                r[0]
                for r in await conn.fetch(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", database.schema
                )
            ]
            return {n: sorted((tuple(r) for r in await conn.fetch(f'SELECT * FROM "{database.schema}"."{n}"')), key=repr) for n in names}
        finally:
            await conn.close()

    import asyncio

    return asyncio.run(read())


def cli_env(database: Database, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    env["PULSEGUARD_DB"] = database.url if database.kind == "postgres" else str(database.path)
    env.update(extra)
    return env


def run_cli(
    database: Database, *args: str, actor: str = "tester", check: bool = False, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `pulseguard …` in a subprocess against `database`, as a user would."""
    argv = list(args)
    if actor and args and args[0] not in ("init", "config"):
        argv += ["--as", actor]
    proc = run_python(argv, env=cli_env(database, **env), cwd=REPO, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


class PgRowLock:
    """A psql session holding one incident's row lock (FOR UPDATE) in another process, let go
    synchronously: from a loop callback nothing else runs between the release and what follows.
    `blocked_sql` counts the sessions waiting on it (the test database is shared by parallel
    tests: a count of every lock wait in it would see theirs too, as it did in a CI run)."""

    def __init__(self, schema: str, incident_id: int) -> None:
        import subprocess

        self.proc = subprocess.Popen(["psql", "-X", "-At", "-q", PG_URL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(
            f'SET search_path TO "{schema}"; BEGIN; SELECT 1 FROM incident WHERE id = {incident_id} FOR UPDATE; '
            "SELECT 'held ' || pg_backend_pid();\n"
        )
        self.proc.stdin.flush()
        while not (line := self.proc.stdout.readline().strip()).startswith("held "):
            pass
        self.pid = int(line.split()[1])
        # Waiting on it, or on a session that waits on it (a second writer queues behind the first).
        self.blocked_sql = (
            f"WITH RECURSIVE chain(pid) AS (SELECT {self.pid} UNION SELECT a.pid FROM pg_stat_activity a, chain "
            "WHERE chain.pid = ANY(pg_blocking_pids(a.pid))) SELECT count(*) - 1 AS n FROM chain"
        )

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("COMMIT;\n\\q\n")
        self.proc.stdin.flush()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_engine(tmp_path: Path, config_text: str) -> subprocess.Popen[str]:
    """`pulseguard engine` as an operator starts it: its configuration and a SQLite file in
    `tmp_path`, no PULSEGUARD_* variables, a HOME of its own; stdout and stderr piped."""
    config = tmp_path / "pulseguard.toml"
    config.write_text(config_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    env["HOME"] = str(tmp_path / "home")
    return subprocess.Popen(
        [sys.executable, "-m", "pulseguard_tui", "engine", "--config", str(config), "--db", str(tmp_path / "pg.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
