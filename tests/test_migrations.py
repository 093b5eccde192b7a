"""A database made by an earlier schema revision opens, upgrades itself and keeps its data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support.db import run_cli

from engine.incidents import services
from engine.incidents.queries import incident_detail
from engine.storage.db import close_database, migrate_database, open_database

MIGRATIONS = sorted(p.stem for p in (Path(__file__).parents[1] / "engine" / "storage" / "migrations").glob("0*.py"))


async def test_upgrade_from_first_revision_keeps_data(database):
    assert len(MIGRATIONS) >= 2, "needs an earlier revision to upgrade from"
    await migrate_database(database, target="0001_initial")
    await close_database()
    # Write rows the way the first release did: raw SQL against the revision-1 schema.
    from tortoise import Tortoise
    from tortoise.backends.base import executor

    executor.EXECUTOR_CACHE.clear()
    await Tortoise.init(config=database.tortoise_config())
    try:
        conn = Tortoise.get_connection("default")
        await conn.execute_script(
            "INSERT INTO key_counter (name, value) VALUES ('incident', 7);"
            "INSERT INTO incident (number, title, description, severity, status, source, services, tags,"
            " created_at, created_by, updated_at, verification_steps, false_positive, impact, satisfaction,"
            " related, external_refs, escalation, analysis, version)"
            " VALUES (7, 'legacy outage', '', 'high', 'investigating', 'manual', '[\"api\"]', '[]',"
            " '2026-01-01 10:00:00+00:00', 'alice', '2026-01-01 10:00:00+00:00', '[]', false, '{}', '{}',"
            " '[]', '{}', '{}', '{}', 0);"
        )
        applied = await conn.execute_query_dict("SELECT name FROM tortoise_migrations")
    finally:
        await close_database()
    assert [r["name"] for r in applied] == ["0001_initial"]

    await open_database(database)  # upgrades to the newest revision
    try:
        conn = Tortoise.get_connection("default")
        applied = [r["name"] for r in await conn.execute_query_dict("SELECT name FROM tortoise_migrations")]
        assert applied == MIGRATIONS
        old = await incident_detail("INC-7")
        assert old["title"] == "legacy outage" and old["services"] == ["api"]
        await services.comment("INC-7", "still here after the upgrade", "bob")
        new = await services.create_incident(title="after upgrade", severity="low", actor="bob")
        assert new.key == "INC-8"  # the counter survived too
    finally:
        await close_database()


def test_cli_opens_old_database(sqlite_database, tmp_path):
    import asyncio

    asyncio.run(_make_old(sqlite_database))
    with sqlite3.connect(sqlite_database.path) as con:
        assert con.execute("SELECT count(*) FROM tortoise_migrations").fetchone()[0] == 1
    proc = run_cli(sqlite_database, "incident", "list", "--json", check=True)
    assert proc.stdout.strip() == "[]"
    with sqlite3.connect(sqlite_database.path) as con:
        assert con.execute("SELECT count(*) FROM tortoise_migrations").fetchone()[0] == len(MIGRATIONS)


async def _make_old(database) -> None:
    try:
        await migrate_database(database, target="0001_initial")
    finally:
        await close_database()


async def _at_0005_with_list_correlation(database) -> None:
    """A database at 0005 holding an anomaly incident as 0005's engine wrote it: correlation a
    bare list of series changes, one of them for a dashed target name."""
    await migrate_database(database, target="0005_postmortem")
    await close_database()
    from tortoise import Tortoise
    from tortoise.backends.base import executor

    executor.EXECUTOR_CACHE.clear()
    await Tortoise.init(config=database.tortoise_config())
    try:
        conn = Tortoise.get_connection("default")
        analysis = (
            '{"anomaly":{"series":"checkout-api/response_time","score":0.9,"value":870.0,"at":"2026-01-01T10:00:00+00:00",'
            '"expected_band":[90.0,140.0],"sensitivity":"medium","signature":[0.1,0.9]},'
            '"correlation":[{"series":"checkout-api/response_time","kind":"sudden_jump","label":"sudden jump",'
            '"onset":"2026-01-01T09:59:00+00:00","magnitude":30.0,"before":110.0,"after":870.0,"relative_change":6.9,'
            '"score":9.5},{"kind":"stable","label":"stable"}],"pattern":null}'
        )
        await conn.execute_script(
            "INSERT INTO key_counter (name, value) VALUES ('incident', 3);"
            "INSERT INTO incident (number, title, description, severity, status, source, services, tags,"
            " created_at, created_by, updated_at, verification_steps, false_positive, impact, satisfaction,"
            " related, external_refs, escalation, analysis, version, target, trigger)"
            " VALUES (3, 'Anomaly on checkout-api/response_time', '', 'high', 'triggered', 'anomaly', '[]', '[\"anomaly\"]',"
            " '2026-01-01 10:00:00+00:00', 'engine', '2026-01-01 10:00:00+00:00', '[]', false, '{}', '{}',"
            f" '[]', '{{}}', '{{}}', '{analysis}', 0, 'checkout-api', 'anomaly');"
        )
    finally:
        await close_database()


def test_upgrade_repairs_list_shaped_correlation_so_show_works(database):
    import asyncio

    asyncio.run(_at_0005_with_list_correlation(database))
    proc = run_cli(database, "incident", "show", "INC-3")  # opens the database: migrates to the newest revision
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Correlated metrics" in proc.stdout
    assert "checkout-api/response_time: sudden jump" in proc.stdout

    async def stored() -> dict:
        await open_database(database)
        try:
            return (await incident_detail("INC-3"))["analysis"]
        finally:
            await close_database()

    analysis = asyncio.run(stored())
    assert isinstance(analysis["correlation"], dict)
    assert [c["series"] for c in analysis["correlation"]["series"]] == ["checkout-api/response_time"]
    assert analysis["correlation"]["related_incidents"] == []
    assert analysis["anomaly"]["series"] == "checkout-api/response_time"
    assert "pattern" not in analysis


async def test_upgrade_drops_only_the_indexes_the_composites_cover(database):
    """0016 drops the single-column stream, state and next_attempt_at indexes of the outbox and
    state and due_at of the escalation timers, and keeps the rest; the deliverer's and the timer
    loop's due-row queries still find their rows through an index."""
    from tortoise import Tortoise

    await migrate_database(database, target="0015_audit_hardening")
    await close_database()
    await open_database(database)
    indexed: dict[str, list[str]] = {}
    try:
        conn = Tortoise.get_connection("default")
        for table in ("notification", "escalation_timer"):
            if database.kind == "sqlite":
                rows = await conn.execute_query_dict(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type = 'index' AND sql IS NOT NULL", [table]
                )
                found = [r["sql"].split(" ON ")[1].split("(", 1)[1].rstrip(")") for r in rows]
            else:
                rows = await conn.execute_query_dict(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 AND indexname LIKE 'idx_%'",
                    [table],
                )
                found = [r["indexdef"].split("(", 1)[1].rstrip(")") for r in rows]
            indexed[table] = sorted(columns.replace('"', "") for columns in found)
        if database.kind == "sqlite":
            for query, index in (
                (
                    "SELECT id FROM notification WHERE state = 'pending' AND next_attempt_at <= '2026-01-01' ORDER BY next_attempt_at, id",
                    "state_3d93e9",
                ),
                ("SELECT id FROM escalation_timer WHERE state = 'pending' AND due_at <= '2026-01-01' ORDER BY due_at, id", "state_e38127"),
            ):
                plan = await conn.execute_query_dict("EXPLAIN QUERY PLAN " + query)
                assert any("INDEX idx_" in r["detail"] and index in r["detail"] for r in plan), plan
    finally:
        await close_database()
    assert indexed["notification"] == ["created_at", "incident_id", "state, next_attempt_at", "stream, state"]
    assert indexed["escalation_timer"] == ["incident_id", "state, due_at"]


MIGRATIONS_MATCH_MODELS = """
import asyncio, sys
from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector
from engine.storage.db import Database

async def main():
    config = Database("sqlite", "", sys.argv[1]).tortoise_config()
    apps = {label: dict(app) for label, app in config["apps"].items()}
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, apps).changes()
    for writer in writers:
        for op in writer.operations:
            print(writer.app_label, type(op).__name__, getattr(op, "name", ""))

asyncio.run(main())
"""


def test_the_models_and_the_migrations_agree(tmp_path):
    """`makemigrations` (docs/development.md) finds nothing to write: every change to the models
    has its migration, and no model states anything (a table comment) the migrations do not."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", MIGRATIONS_MATCH_MODELS, str(tmp_path / "autodetect.db")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", f"the models differ from the migrations:\n{proc.stdout}"
