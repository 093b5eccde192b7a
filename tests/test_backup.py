"""`pulseguard backup PATH`: a consistent SQLite copy while another process writes; PostgreSQL
answers with the pg_dump command to use."""

from __future__ import annotations

import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.db import REPO, cli_env, run_cli

from engine.storage.db import Database, resolve_database


def _copy_is_consistent(path: Path) -> int:
    """Integrity, and every incident with the 'created' event written in its transaction."""
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        incidents = con.execute("SELECT COUNT(*) FROM incident").fetchone()[0]
        created = con.execute("SELECT COUNT(*) FROM event WHERE kind = 'created'").fetchone()[0]
        counter = con.execute("SELECT value FROM key_counter WHERE name = 'incident'").fetchone()[0]
    assert created == incidents and counter == incidents
    return incidents


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_backup_while_another_process_writes(migrated_database: Database, tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "tests/support/hammer_worker.py", str(migrated_database.path), "writer", "1000000"],
        cwd=REPO,
        env=cli_env(migrated_database),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        counts = []
        for i in range(3):
            # Wait until the writer has written more since the last copy.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with sqlite3.connect(migrated_database.path, timeout=30) as con:  # type: ignore[arg-type]
                    now = con.execute("SELECT COUNT(*) FROM incident").fetchone()[0]
                if now > (counts[-1] if counts else 0):
                    break
                time.sleep(0.1)
            target = tmp_path / f"copy{i}.db"
            proc = run_cli(migrated_database, "backup", str(target))
            assert proc.returncode == 0, proc.stderr
            assert writer.poll() is None, "the writer stopped before the copy was taken"
            assert f"backed up sqlite:{migrated_database.path} to {target}" in proc.stdout and "integrity ok" in proc.stdout
            counts.append(_copy_is_consistent(target))
            assert not list(tmp_path.glob(".copy*")), "a partial file was left behind"
        assert counts == sorted(set(counts)) and counts[0] > 0
    finally:
        writer.terminate()
        writer.wait(timeout=30)
    # The copy is a PulseGuard database the CLI reads as it is.
    copy = resolve_database(str(tmp_path / "copy2.db"))
    listed = run_cli(copy, "incident", "list", "--all", "--json", "--limit", "100000", check=True)
    import json

    assert len(json.loads(listed.stdout)) == counts[-1]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_backup_refuses_to_overwrite_unless_forced(migrated_database: Database, tmp_path: Path) -> None:
    run_cli(migrated_database, "incident", "create", "--title", "one", "--severity", "low", check=True)
    target = tmp_path / "backup.db"
    target.write_text("precious")
    proc = run_cli(migrated_database, "backup", str(target))
    assert proc.returncode == 2
    assert proc.stderr == f"error: PATH: {target} already exists (--force replaces it)\n"
    assert target.read_text() == "precious"
    proc = run_cli(migrated_database, "backup", str(target), "--force")
    assert proc.returncode == 0, proc.stderr
    assert "(1 incident," in proc.stdout and _copy_is_consistent(target) == 1

    itself = run_cli(migrated_database, "backup", str(migrated_database.path), "--force")
    assert itself.returncode == 2 and "is the database itself" in itself.stderr
    nowhere = run_cli(migrated_database, "backup", str(tmp_path / "no" / "such" / "dir.db"))
    assert nowhere.returncode == 2 and "is not a directory" in nowhere.stderr


def test_backup_of_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    missing = resolve_database(str(tmp_path / "missing.db"))
    proc = run_cli(missing, "backup", str(tmp_path / "b.db"))
    assert proc.returncode == 2
    assert proc.stderr == f"error: no PulseGuard database at {missing.path} (check PULSEGUARD_DB, or run `pulseguard init`)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_backup_on_postgres_says_how_to_use_pg_dump(migrated_database: Database, tmp_path: Path) -> None:
    run_cli(migrated_database, "incident", "create", "--title", "pg one", "--severity", "low", check=True)
    target = tmp_path / "pulseguard.dump"
    proc = run_cli(migrated_database, "backup", str(target))
    assert proc.returncode == 2 and not target.exists()
    line = proc.stderr.strip()
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert line.startswith("error: backup copies SQLite databases; for PostgreSQL run: pg_dump ")
    assert f"--schema={migrated_database.schema}" in line and "(restore with pg_restore)" in line
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump is not installed here: the printed command is not run")
    command = line.split("run: ", 1)[1].rsplit(" (restore", 1)[0]
    subprocess.run(shlex.split(command), check=True, timeout=120, capture_output=True)
    listing = subprocess.run(["pg_restore", "--list", str(target)], check=True, capture_output=True, text=True).stdout
    assert f"TABLE DATA {migrated_database.schema} incident" in listing


def test_backup_of_a_file_that_is_not_a_database_says_so(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, just text that is long enough to have a header " * 10)
    proc = run_cli(resolve_database(str(notes)), "backup", str(tmp_path / "b.db"))
    assert proc.returncode == 2 and proc.stderr == f"error: cannot open database {notes}: not a SQLite database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
