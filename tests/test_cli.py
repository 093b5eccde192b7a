"""The CLI as a user runs it: a subprocess against a real database file (and PostgreSQL)."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import run_cli, table_rows


@pytest.mark.slow
def test_full_lifecycle_through_the_cli(database, tmp_path):
    log = tmp_path / "app.log"
    log.write_text(
        "2026-11-27T10:00:00+00:00 INFO start\n"
        "2026-11-27T10:05:00+00:00 ERROR db timeout\n"
        "Traceback: line 1\n"
        "2026-11-27T10:30:00+00:00 INFO recovered\n"
    )
    steps = [
        ("alice", ["incident", "create", "--title", "API down", "--severity", "critical", "--service", "api-server",
                   "--tag", "db", "--description", "5xx on /health"]),
        ("bob", ["incident", "ack", "INC-1"]),
        ("bob", ["incident", "status", "INC-1", "identified", "--message", "connection pool exhausted", "--public"]),
        ("bob", ["incident", "comment", "INC-1", "raising pool size", "--internal"]),
        ("bob", ["incident", "evidence", "INC-1", "--log", str(log), "--from", "2026-11-27T10:04:00Z",
                 "--to", "2026-11-27T10:10:00Z", "--description", "db errors"]),
        ("carol", ["incident", "resolve", "INC-1", "--root-cause", "pool too small", "--solution", "pool 20 -> 80",
                   "--category", "database", "--verify", "p99 < 300ms"]),
    ]
    for actor, argv in steps:
        proc = run_cli(database, *argv, actor=actor)
        assert proc.returncode == 0, proc.stderr
    detail = json.loads(run_cli(database, "incident", "show", "INC-1", "--json", check=True).stdout)
    timeline = detail["timeline"]
    assert [e["kind"] for e in timeline] == [
        "created", "acknowledged", "status_changed", "commented", "evidence_added", "resolved"]
    assert [e["actor"] for e in timeline] == ["alice", "bob", "bob", "bob", "bob", "carol"]
    assert all(e["at"] for e in timeline)
    assert detail["evidence"][0]["content"] == "2026-11-27T10:05:00+00:00 ERROR db timeout\nTraceback: line 1\n"
    assert detail["updates"][0]["public"] is True and detail["comments"][0]["internal_only"] is True
    human = run_cli(database, "incident", "show", "INC-1", check=True).stdout
    for text in ("API down", "acknowledged", "identified", "internal", "evidence", "resolved (database)", "carol"):
        assert text in human

    listed = json.loads(run_cli(database, "incident", "list", "--all", "--json", check=True).stdout)
    assert [(r["key"], r["status"]) for r in listed] == [("INC-1", "resolved")]

    before = table_rows(database)  # every table, so a refusal that wrote anything anywhere shows
    refusals = [
        (["incident", "resolve", "INC-1", "--root-cause", "x", "--solution", "y"], "already resolved"),
        (["incident", "ack", "INC-1"], "reopen it"),
        (["incident", "create", "--title", "x", "--severity", "urgent"], "unknown value 'urgent'"),
        (["incident", "show", "INC-404"], "no incident INC-404"),
        (["incident", "status", "INC-1", "sleeping"], "unknown value 'sleeping'"),
        (["incident", "evidence", "INC-1", "--url", "not a url"], "is not a URL"),
        (["incident", "evidence", "INC-1", "--log", str(log), "--from", "yesterday-ish", "--to", "now"], "--from"),
        (["incident", "create", "--severity", "low"], "--title"),
        (["incident", "frobnicate", "INC-1"], "invalid choice"),
    ]
    with ThreadPoolExecutor(3) as pool:  # independent refusals: a few processes at a time
        procs = list(pool.map(lambda argv: run_cli(database, *argv), [argv for argv, _ in refusals]))
    for (argv, message), proc in zip(refusals, procs):
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
        assert message in proc.stderr, (argv, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    assert table_rows(database) == before


def test_list_is_an_aligned_table(sqlite_database):
    run_cli(sqlite_database, "incident", "create", "--title", "short", "--severity", "low", check=True)
    run_cli(sqlite_database, "incident", "create", "--title", "a much longer title", "--severity", "critical",
            "--assignee", "bob", check=True)
    lines = run_cli(sqlite_database, "incident", "list", check=True).stdout.splitlines()
    assert lines[0].split()[:3] == ["KEY", "SEVERITY", "STATUS"]
    assert lines[1].startswith("INC-2") and "critical" in lines[1]  # worst first
    title_col = lines[0].index("TITLE")
    assert lines[1][title_col:].startswith("a much longer title") and lines[2][title_col:].startswith("short")


def test_bad_database_url_is_one_line(sqlite_database):
    proc = run_cli(sqlite_database, "incident", "list", PULSEGUARD_DB="mysql://x/y")
    assert proc.returncode == 2 and "unsupported database scheme 'mysql'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_default_database_lives_in_the_user_data_dir(tmp_path):
    from engine.db import resolve_database

    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "XDG_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pulseguard_tui", "incident", "create", "--title", "t", "--severity", "low"],
        capture_output=True, text=True, env={**clean, **env}, cwd=tmp_path, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "data" / "pulseguard" / "pulseguard.db"
    assert path.exists()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT title FROM incident").fetchone()[0] == "t"
    assert resolve_database(None).kind == "sqlite"
