"""The CLI as a user runs it: a subprocess against a real database file (and PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.cli_proc import run_python
from support.db import PG_URL, REPO, cli_env, run_cli, table_rows

from engine.cli.common import CREATE, NONE
from engine.cli.main import DB_ACCESS, build_parser, leaf_commands

# The tests name the database through PULSEGUARD_DB (support.db.run_cli): the hint names that.
HINT = "check PULSEGUARD_DB, or run `pulseguard init`"


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
        (
            "alice",
            [
                "incident",
                "create",
                "--title",
                "API down",
                "--severity",
                "critical",
                "--service",
                "api-server",
                "--tag",
                "db",
                "--description",
                "5xx on /health",
            ],
        ),
        ("bob", ["incident", "ack", "INC-1"]),
        ("bob", ["incident", "status", "INC-1", "identified", "--message", "connection pool exhausted", "--public"]),
        ("bob", ["incident", "comment", "INC-1", "raising pool size", "--internal"]),
        (
            "bob",
            [
                "incident",
                "evidence",
                "INC-1",
                "--log",
                str(log),
                "--from",
                "2026-11-27T10:04:00Z",
                "--to",
                "2026-11-27T10:10:00Z",
                "--description",
                "db errors",
            ],
        ),
        (
            "carol",
            [
                "incident",
                "resolve",
                "INC-1",
                "--root-cause",
                "pool too small",
                "--solution",
                "pool 20 -> 80",
                "--category",
                "database",
                "--verify",
                "p99 < 300ms",
            ],
        ),
    ]
    for actor, argv in steps:
        proc = run_cli(database, *argv, actor=actor)
        assert proc.returncode == 0, proc.stderr
    detail = json.loads(run_cli(database, "incident", "show", "INC-1", "--json", check=True).stdout)
    timeline = detail["timeline"]
    assert [e["kind"] for e in timeline] == ["created", "acknowledged", "status_changed", "commented", "evidence_added", "resolved"]
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
        (["incident", "status", "INC-1", "sleeping"], "unknown value 'sleeping' (expected one of: investigating, identified, monitoring)"),
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
    run_cli(
        sqlite_database, "incident", "create", "--title", "a much longer title", "--severity", "critical", "--assignee", "bob", check=True
    )
    lines = run_cli(sqlite_database, "incident", "list", check=True).stdout.splitlines()
    assert lines[0].split()[:3] == ["KEY", "SEVERITY", "STATUS"]
    assert lines[1].startswith("INC-2") and "critical" in lines[1]  # worst first
    title_col = lines[0].index("TITLE")
    assert lines[1][title_col:].startswith("a much longer title") and lines[2][title_col:].startswith("short")


def test_edit_corrects_title_and_services_and_refuses_bad_input_changing_nothing(sqlite_database):
    run_cli(sqlite_database, "incident", "create", "--title", "DB conn isues", "--severity", "high", "--service", "web", check=True)
    for args, message in (
        (["--title", " "], "error: --title: "),
        (["--service", "api", "--no-services"], "error: --no-services: give it or --service, not both"),
        (["--service", "bad name!"], "error: --service: "),
        ([], "error: incident edit: give --title, --description, --service or --no-services"),
    ):
        refused = run_cli(sqlite_database, "incident", "edit", "INC-1", *args)
        assert refused.returncode == 2 and refused.stderr.startswith(message), (args, refused.stderr)
    edited = run_cli(
        sqlite_database, "incident", "edit", "INC-1", "--title", "DB connection issues", "--service", "web", "--service", "api", check=True
    )
    assert edited.stdout.strip() == "INC-1 now reads: DB connection issues (services: web, api)"
    shown = run_cli(sqlite_database, "incident", "show", "INC-1", check=True).stdout
    assert "edited: title 'DB conn isues' → 'DB connection issues'" in shown
    again = run_cli(sqlite_database, "incident", "edit", "INC-1", "--no-services")
    assert again.returncode == 0 and again.stdout.strip().endswith("(services: -)"), again.stderr


def test_an_empty_filtered_list_says_nothing_matched_not_that_nothing_is_open(sqlite_database):
    """`incident list --tag zzz` said "no incidents open" while an incident was open: read at
    3 a.m. as the all-clear. It names the filters that matched nothing."""
    run_cli(sqlite_database, "incident", "create", "--title", "disk full", "--severity", "high", "--tag", "db", check=True)
    said = {
        argv: run_cli(sqlite_database, "incident", "list", *argv, check=True).stdout.strip()
        for argv in [("--tag", "zzz"), ("--severity", "low", "--tag", "db"), ("--status", "resolved"), ("--all", "--service", "a b")]
    }
    assert said == {
        ("--tag", "zzz"): "no open incidents match --tag zzz (--all includes resolved ones)",
        ("--severity", "low", "--tag", "db"): "no open incidents match --severity low --tag db (--all includes resolved ones)",
        ("--status", "resolved"): "no incidents match --status resolved",
        ("--all", "--service", "a b"): "no incidents match --service 'a b'",
    }
    assert "INC-1" in run_cli(sqlite_database, "incident", "list", "--tag", "db", check=True).stdout
    malformed = run_cli(sqlite_database, "incident", "list", "--tag", "a b")  # no incident can carry it
    assert (malformed.returncode, malformed.stdout) == (2, "")
    assert malformed.stderr.startswith("error: --tag: 'a b' is not a valid tag")


def test_console_options_with_a_command_are_refused_and_nothing_is_done(sqlite_database):
    """`pulseguard --connect URL --token T incident ack INC-1` acknowledged INC-1 in the local
    database (the console's options were parsed and ignored), and `--readonly` did not stop a write."""
    run_cli(sqlite_database, "incident", "create", "--title", "disk full", "--severity", "high", check=True)
    before = table_rows(sqlite_database)
    for argv, named in [
        (["--connect", "http://127.0.0.1:9", "--token", "t", "incident", "ack", "INC-1"], "--connect, --token"),
        (["--readonly", "incident", "ack", "INC-1"], "--readonly"),
        (["--theme", "light", "incident", "list"], "--theme"),
        (["--no-engine", "engine"], "--no-engine"),
    ]:
        proc = run_cli(sqlite_database, *argv)
        assert proc.returncode == 2 and proc.stdout == "", (argv, proc.stdout, proc.stderr)
        assert proc.stderr.startswith(f"error: {named}: the console's option") and "Nothing was done." in proc.stderr, proc.stderr
    assert table_rows(sqlite_database) == before
    # Without them the same command acts, and PULSEGUARD_TOKEN in the environment is no option given.
    run_cli(sqlite_database, "incident", "ack", "INC-1", check=True, PULSEGUARD_TOKEN="t")


def test_bad_database_url_is_one_line(sqlite_database):
    proc = run_cli(sqlite_database, "incident", "list", PULSEGUARD_DB="mysql://x/y")
    assert proc.returncode == 2 and "unsupported database scheme 'mysql'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("blank", ["", " "])
def test_a_blank_db_option_is_refused_rather_than_replaced(tmp_path, blank):
    # `--db "$UNSET"` acted on PULSEGUARD_DB ("") or created the default file (" ") instead.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "XDG_"))}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), PULSEGUARD_DB=str(tmp_path / "env.db"))
    for argv in (["incident", "create", "--title", "t", "--severity", "low"], ["incident", "list"]):
        proc = run_python([*argv, "--db", blank], env=env, cwd=tmp_path)
        assert (proc.returncode, proc.stdout) == (2, ""), (argv, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("error: --db: is empty (") and proc.stderr.count("\n") == 1, proc.stderr
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgres://pg:secret@127.0.0.1:99999/x", "port out of range 0-65535"),
        ("postgres://pg:secret@127.0.0.1:abc/x", "port could not be cast to integer value as 'abc'"),
        ("postgresql://pg:secret@[::1/x", "invalid IPv6 URL"),
    ],
)
def test_a_malformed_postgresql_url_is_bad_input(sqlite_database, url, reason):
    # Was "error: unexpected failure: ValueError: …", exit 1.
    proc = run_cli(sqlite_database, "incident", "list", "--db", url)
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr == f"error: --db: not a PostgreSQL URL: {reason} (expected postgres://user@host:port/dbname)\n"


def test_a_postgresql_url_parameter_the_client_refuses_is_bad_input(sqlite_database):
    # Was exit 1, "PostgreSQL at … refused database 'x'": no server was asked (none listens on port 1).
    proc = run_cli(sqlite_database, "incident", "list", "--db", "postgres://nobody@127.0.0.1:1/x?sslmode=bogus")
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr.startswith("error: --db: `sslmode` parameter must be one of: disable, allow, prefer, require")
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_a_value_starting_with_a_dash_is_read_as_a_value(migrated_database):
    """`incident snooze INC-1 -5m` took "-5m" for an unknown option and then said "the following
    arguments are required: DURATION"; `incident tag INC-1 db -flaky`, its help's own example,
    said "unrecognized arguments: -flaky". A negative duration now says so, naming the argument
    (exit 2, nothing changed), and a tag or a sample value may start with "-"."""
    db = migrated_database
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    run_cli(db, "incident", "tag", "INC-1", "db", "flaky", check=True)
    before = table_rows(db)
    negative = "is negative: a duration must be positive (e.g. 30m, 2h, 1d)\n"
    for argv, message in [
        (["incident", "snooze", "INC-1", "-5m"], f"error: DURATION: '-5m' {negative}"),
        (["silence", "extend", "1", "-1h"], f"error: DURATION: '-1h' {negative}"),
        (["maintenance", "add", "--title", "x", "--service", "db", "--for", "-2h"], f"error: --for: '-2h' {negative}"),
        (["silence", "add", "service=db", "--for", "-1h30m", "-c", "x"], f"error: --for: '-1h30m' {negative}"),
        (["metrics", "push", "queue_depth", "-inf"], "error: VALUE: '-inf' is not a finite number\n"),
    ]:
        proc = run_cli(db, *argv)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", message), argv
    assert table_rows(db) == before
    tagged = run_cli(db, "incident", "tag", "INC-1", "-flaky", "net", check=True)
    assert tagged.stdout == "INC-1 tags: db, net\n"
    pushed = run_cli(db, "metrics", "push", "queue_depth", "-1.5e3", "--json", check=True)
    assert json.loads(pushed.stdout)["value"] == -1500
    unknown = run_cli(db, "incident", "list", "-x")  # still no option of any command
    assert unknown.returncode == 2 and "unrecognized arguments: -x" in unknown.stderr


def test_a_very_long_refused_value_is_shortened_in_its_one_line_error(migrated_database):
    """A 10,000-character value refused was echoed whole: 10,000 x's on the terminal, the reason
    after them. It shows its first 60 characters and its length; nothing is changed."""
    db = migrated_database
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    before = table_rows(db)
    long = "x" * 10000
    shown = f"{'x' * 60}… (10000 characters)"
    for argv, message in [
        (
            ["incident", "create", "--title", "t", "--severity", long],
            f"error: --severity: unknown value '{'x' * 60}…' (10000 characters) (",
        ),
        (["incident", "snooze", "INC-1", long], f"error: DURATION: '{'x' * 60}…' (10000 characters) is not a duration"),
        (["incident", "tag", "INC-1", long], f"error: tag: '{'x' * 60}…' (10000 characters) is not a valid tag"),
        # Refused by the command it was typed to, whose --help lists what it takes.
        (["incident", "list", long], f"pulseguard incident list: unrecognized arguments: {shown} (see pulseguard incident list --help)"),
        (["incident", "severity", "INC-1", long], f"error: severity: unknown value '{'x' * 60}…' (10000 characters) ("),
    ]:
        proc = run_cli(db, *argv)
        assert (proc.returncode, proc.stdout) == (2, ""), (argv[:3], proc.stderr[:300])
        assert proc.stderr.startswith(message) and len(proc.stderr) < 250 and proc.stderr.count("\n") == 1, proc.stderr[:300]
    assert table_rows(db) == before


def test_a_zero_or_too_long_duration_is_refused_naming_the_argument(migrated_database):
    """`incident snooze INC-1 0m` said "duration: must be positive" (and 8d "duration: is too
    long …"), naming neither the value nor DURATION as the help does; a zero --for of a
    maintenance window said "--start: None with --for 0m …". Now they read like the negative
    case: the argument, the value, the reason (exit 2, nothing changed)."""
    db = migrated_database
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    run_cli(db, "silence", "add", "service=db", "--for", "1h", "-c", "x", check=True)
    before = table_rows(db)
    zero = "is zero: a duration must be positive (e.g. 30m, 2h, 1d)\n"
    for argv, message in [
        (["incident", "snooze", "INC-1", "0m"], f"error: DURATION: '0m' {zero}"),
        (["incident", "snooze", "INC-1", "0.0000001s"], f"error: DURATION: '0.0000001s' {zero}"),
        (["incident", "snooze", "INC-1", "8d"], "error: DURATION: '8d' is too long: a snooze lasts at most 7 days\n"),
        (["silence", "extend", "1", "0s"], f"error: DURATION: '0s' {zero}"),
        (["silence", "add", "service=db", "--for", "0h", "-c", "x"], f"error: --for: '0h' {zero}"),
        (["maintenance", "add", "--title", "x", "--service", "db", "--for", "0m"], f"error: --for: '0m' {zero}"),
        (["incident", "correlate", "INC-1", "--window", "0m"], f"error: --window: '0m' {zero}"),
        # As the API refuses it: the engine looks a day around the start at most.
        (["incident", "correlate", "INC-1", "--window", "99d"], "error: --window: '99d' is longer than the engine looks (1d)\n"),
    ]:
        proc = run_cli(db, *argv)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", message), argv
    assert table_rows(db) == before


def test_default_database_lives_in_the_user_data_dir(tmp_path):
    from engine.storage.db import resolve_database

    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "XDG_"))}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return run_python(list(argv), env={**clean, **env}, cwd=tmp_path)

    path = tmp_path / "data" / "pulseguard" / "pulseguard.db"
    # A machine with no database yet: reading says so and creates nothing, not even the folder.
    proc = cli("incident", "list")
    # Nothing named it: the hint says how to name one.
    assert (
        proc.returncode == 2
        and proc.stderr == f"error: no PulseGuard database at {path} (check --db / PULSEGUARD_DB, or run `pulseguard init`)\n"
    )
    assert not (tmp_path / "data").exists()
    proc = cli("incident", "create", "--title", "t", "--severity", "low")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"created a new database at {path}\n"
    assert path.exists()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT title FROM incident").fetchone()[0] == "t"
    assert resolve_database(None).kind == "sqlite"


# --- which commands may create a database ----------------------------------------------------

# A valid call of every command that needs an existing database (read or change).
NEEDS_EXISTING = {
    "incident list": [],
    "incident show": ["INC-1"],
    "incident runbook": ["INC-1"],
    "incident ack": ["INC-1"],
    "incident status": ["INC-1", "identified"],
    "incident severity": ["INC-1", "high"],
    "incident assign": ["INC-1", "bob"],
    "incident edit": ["INC-1", "--title", "x"],
    "incident tag": ["INC-1", "db"],
    "incident comment": ["INC-1", "hi"],
    "incident update": ["INC-1", "looking"],
    "incident evidence": ["INC-1", "--url", "https://example.com/x"],
    "incident resolve": ["INC-1", "--root-cause", "x", "--solution", "y"],
    "incident reopen": ["INC-1"],
    "incident merge": ["INC-1", "--into", "INC-2"],
    "incident split": ["INC-1", "abc"],
    "incident false-positive": ["INC-1"],
    "incident verify": ["INC-1", "1"],
    "incident followup": ["INC-1", "--group", "process_changes", "-d", "x"],
    "incident correlate": ["INC-1"],
    "report": [],
    "followups": [],
    "followups done": ["1"],
    "followups ticket": ["1", "--key", "OPS-1"],
    "postmortem": ["INC-1"],
    "satisfaction": ["INC-1", "--customer", "4"],
    "targets": [],
    "heartbeat": ["nightly-backup"],
    "audit": [],
    "services": [],
    "users test": ["alice"],
    "metrics query": ["cpu"],
    "maintenance list": [],
    "maintenance end": ["1"],
    "silence list": [],
    "silence extend": ["1", "1h"],
    "silence expire": ["1"],
    "incident snooze": ["INC-1", "30m"],
    "incident unsnooze": ["INC-1"],
    "oncall": [],
    "oncall overrides": [],
    "oncall cancel-override": ["1"],
    "oncall export": [],
    "notifications": [],
    "notifications list": [],
    "notifications retry": ["1"],
    "token list": [],
    "token revoke": ["ci"],
    "statuspage build": ["site"],
    "escalation preview": ["--severity", "critical"],
    "export": [],
}


def test_every_command_declares_how_it_uses_the_database():
    commands = dict(leaf_commands(build_parser()))
    assert set(commands) == set(DB_ACCESS), "declare each new command's database use in engine/cli.py DB_ACCESS"
    for path, parser in commands.items():
        if parser._defaults.get("needs_db"):
            assert DB_ACCESS[path] != NONE, path
    assert {p for p, a in DB_ACCESS.items() if a not in (NONE, CREATE)} == set(NEEDS_EXISTING)


def test_commands_that_read_or_change_never_create_a_database(tmp_path):
    target = tmp_path / "typo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}

    def call(path: str) -> subprocess.CompletedProcess[str]:
        argv = [*path.split(), *NEEDS_EXISTING[path]]
        return run_python([*argv, "--db", str(target)], env=env, cwd=tmp_path)

    procs = {path: call(path) for path in NEEDS_EXISTING}
    expected = f"error: no PulseGuard database at {target} (check --db, or run `pulseguard init`)\n"
    wrong = {path: (p.returncode, p.stderr) for path, p in procs.items() if (p.returncode, p.stderr) != (2, expected)}
    assert not wrong
    assert all(p.stdout == "" for p in procs.values())
    assert sorted(os.listdir(tmp_path)) == []


def test_a_command_that_creates_says_so_once(sqlite_database):
    path = sqlite_database.path
    first = run_cli(sqlite_database, "token", "create", "ci", "--role", "viewer")
    assert first.returncode == 0 and first.stderr == f"created a new database at {path}\n"
    second = run_cli(sqlite_database, "incident", "create", "--title", "t", "--severity", "low", check=True)
    assert second.stderr == ""
    assert "INC-1" in run_cli(sqlite_database, "incident", "list", check=True).stdout


def test_a_create_command_does_not_make_a_mistyped_directory(tmp_path):
    target = tmp_path / "mistyped" / "pulseguard.db"
    proc = run_cli(_db(target), "incident", "create", "--title", "t", "--severity", "low")
    assert proc.returncode == 1 and proc.stderr == (
        f"error: cannot create database {target}: directory {target.parent} does not exist (create it, or check PULSEGUARD_DB)\n"
    )
    assert not target.parent.exists()


def _db(path: Path):
    from engine.storage.db import resolve_database

    return resolve_database(str(path))


# --- a database that cannot be opened fails at once, with the reason ---------------------------


def _refused(database, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    # A hang here was the defect: the timeout turns one into a failure rather than a stuck run.
    proc = run_cli(database, *argv, timeout=60, **env)
    assert proc.returncode != 0 and proc.stdout == "", (argv, proc.stdout, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def _engine_refused(database) -> str:
    proc = _refused(database, "engine")
    return proc.stderr


def test_a_directory_as_database_is_bad_input_named_where_it_was_given(tmp_path):
    """It exited 1, "cannot open database DIR: Is a directory", as if the disk had failed: a
    directory given as the database is bad input, named by --db, PULSEGUARD_DB or [engine] db."""
    folder = tmp_path / "data"
    folder.mkdir()
    database = _db(folder)
    reason = f"{folder} is a directory (expected a database file, e.g. {folder / 'pulseguard.db'})\n"
    config = tmp_path / "pg.toml"
    config.write_text(f'[engine]\ndb = "{folder}"\n')
    for argv in (
        ["incident", "list"],
        ["incident", "create", "--title", "t", "--severity", "low"],
        ["engine"],
        ["backup", str(tmp_path / "x.db")],
    ):
        for extra, named in (([], "PULSEGUARD_DB"), (["--db", f"sqlite://{folder}"], "--db"), (["--config", str(config)], "[engine] db")):
            env = {"PULSEGUARD_DB": ""} if named == "[engine] db" else {}
            proc = _refused(database, *argv, *extra, **env)
            assert (proc.returncode, proc.stderr) == (2, f"error: {named}: {reason}"), (argv, extra, proc.stderr)
    assert os.listdir(folder) == []


def test_a_device_or_a_path_too_long_as_database_is_bad_input_named_where_it_was_given(tmp_path):
    """--db /dev/null ("cannot open database /dev/null: not a regular file") and a path too long
    for the system ("database: [Errno 36] File name too long: …") exited 1, as if the disk had
    failed: bad input, named by --db or PULSEGUARD_DB, exit 2, before anything is opened."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    long_name = tmp_path / ("a" * 300)
    deep = Path(str(tmp_path) + "/a" * 3000)
    cases = [
        (Path("/dev/null"), "/dev/null is a character device, not a file (expected a database file, e.g. ./pulseguard.db)\n"),
        (fifo, f"{fifo} is a named pipe, not a file (expected a database file, e.g. ./pulseguard.db)\n"),
        # Quoted, so the line shows its start and its length, not all of it.
        (long_name, f"…' ({len(str(long_name))} characters) is too long a path for this system (File name too long): use a shorter one\n"),
        (deep, f"…' ({len(str(deep))} characters) is too long a path for this system (File name too long): use a shorter one\n"),
    ]
    for path, reason in cases:
        for argv in (
            ["incident", "list"],
            ["incident", "create", "--title", "t", "--severity", "low"],
            ["engine"],
            ["backup", str(tmp_path / "x.db")],
        ):
            for extra, named in (([], "PULSEGUARD_DB"), (["--db", str(path)], "--db")):
                proc = _refused(_db(path), *argv, *extra)
                assert proc.returncode == 2 and proc.stderr.startswith(f"error: {named}: "), (path, argv, extra, proc.stderr)
                assert proc.stderr.endswith(reason), (path, argv, proc.stderr)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


def test_init_refuses_a_database_path_that_cannot_be_one_before_writing_anything(tmp_path):
    """`pulseguard --db /dev/null init` wrote pulseguard.toml, then refused --db: the refusal
    comes first now, and nothing is written."""
    (tmp_path / "dir").mkdir()
    for argv, env, named in (
        (["--db", "/dev/null", "init"], {}, "--db"),
        (["init"], {"PULSEGUARD_DB": str(tmp_path / "dir")}, "PULSEGUARD_DB"),
    ):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
        home = {"HOME": str(tmp_path / "dir"), "XDG_CONFIG_HOME": str(tmp_path / "dir" / ".config")}
        proc = run_python(argv, env={**clean, **home, **env}, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: {named}: "), proc.stderr
        assert sorted(os.listdir(tmp_path)) == ["dir"], (argv, os.listdir(tmp_path))


# The start of a real PNG file (signature and header chunk): a picture passed as --db by mistake.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de") + b"\0" * 200


@pytest.mark.parametrize(("name", "content"), [("notes.db", b"these are my notes, not a database\n" * 50), ("photo.png", PNG)])
def test_a_file_that_is_not_sqlite_is_bad_input_and_left_alone(tmp_path, name, content):
    target = tmp_path / name
    target.write_bytes(content)
    before = target.stat().st_mtime_ns
    database = _db(target)
    # Bad input, like a --db that names nothing: exit 2, one line naming the file.
    for argv in (["incident", "list"], ["incident", "create", "--title", "t", "--severity", "low"], ["engine"], ["report"]):
        proc = _refused(database, *argv)
        assert proc.returncode == 2 and proc.stderr == f"error: cannot open database {target}: not a SQLite database\n", (argv, proc)
    assert target.read_bytes() == content and target.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no -journal or -wal beside it


def test_another_programs_sqlite_database_is_left_alone(tmp_path):
    target = tmp_path / "other.db"
    with sqlite3.connect(target) as con:
        con.execute("CREATE TABLE notes (body TEXT)")
    proc = _refused(_db(target), "incident", "create", "--title", "t", "--severity", "low")
    assert proc.returncode == 2 and f"{target} is a SQLite database, but not a PulseGuard one" in proc.stderr
    with sqlite3.connect(target) as con:
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["notes"]


def test_a_path_under_proc_fails_with_the_reason(tmp_path):
    proc = _refused(_db(Path("/proc/version")), "incident", "create", "--title", "t", "--severity", "low")
    assert proc.stderr.startswith("error: cannot open database /proc/version: ")
    proc = _refused(_db(Path("/proc/pulseguard.db")), "engine")
    assert proc.stderr == "error: cannot create database /proc/pulseguard.db: No such file or directory\n"


def test_a_database_on_a_read_only_mount_fails_with_the_reason(tmp_path, migrated_template):
    """Root ignores permission bits, so a read-only tmpfs in a private mount namespace stands
    in for a read-only disk (skipped where mounting is not allowed)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        import pytest

        pytest.skip("no private mount namespace here")
    mount = tmp_path / "ro"
    mount.mkdir()
    template = tmp_path / "template.db"
    migrated_template.copy_sqlite(template)
    cli = f"{sys.executable} -m pulseguard_tui --as tester --db {mount}/pulseguard.db"
    script = (
        f"mount -t tmpfs -o size=16m tmpfs {mount} && cp {template} {mount}/pulseguard.db && "
        f"mount -o remount,ro {mount} || exit 99; "
        f"for argv in 'incident list' 'incident create --title t --severity low' engine; do "
        f'timeout 60 {cli} $argv; echo "rc=$?"; done'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=REPO, env=env, timeout=200)
    if proc.returncode == 99:
        import pytest

        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.stdout.split() == ["rc=1"] * 3, (proc.stdout, proc.stderr)
    assert proc.stderr == f"error: cannot open database {mount}/pulseguard.db: Read-only file system\n" * 3


def _pg(url: str):
    from engine.storage.db import resolve_database

    return resolve_database(url)


def test_an_unreachable_postgresql_fails_with_the_reason():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    database = _pg(f"postgres://postgres@127.0.0.1:{port}/pulseguard")
    for argv in (["incident", "list"], ["engine"]):
        proc = _refused(database, *argv)
        assert proc.returncode == 1 and proc.stderr.startswith(f"error: cannot reach PostgreSQL at 127.0.0.1:{port}: ")


import pytest  # noqa: E402


@pytest.mark.postgres
def test_a_postgresql_database_that_does_not_exist_is_named(database):
    base = PG_URL.split("?", 1)[0].rsplit("/", 1)[0]
    missing = _pg(f"{base}/pulseguard_no_such_db")
    server = base.rsplit("@", 1)[-1].split("//")[-1]
    for argv in (["incident", "list"], ["incident", "create", "--title", "t", "--severity", "low"], ["engine"]):
        proc = _refused(missing, *argv)
        assert proc.returncode == 2 and proc.stderr == (
            f"error: no PostgreSQL database 'pulseguard_no_such_db' on {server} "
            "(create it with `createdb pulseguard_no_such_db`, or check PULSEGUARD_DB)\n"
        ), proc.stderr
    if database.kind == "postgres":  # a schema of an existing database: read fails, create makes it
        proc = run_cli(database, "incident", "list")
        assert proc.returncode == 2 and proc.stderr == f"error: no PulseGuard database at {database.where} ({HINT})\n"
        proc = run_cli(database, "incident", "create", "--title", "t", "--severity", "low", check=True)
        assert proc.stderr == f"created a new database at {database.where}\n"
        assert "INC-1" in run_cli(database, "incident", "list", check=True).stdout


# --- the engine says what it runs, and never drops another configuration's messages ------------


def test_engine_without_configuration_says_so_and_leaves_other_channels_pending(sqlite_database, tmp_path):
    config = tmp_path / "pulseguard.toml"
    config.write_text(
        '[integrations.slack]\nwebhook_url_env = "TEST_SLACK_URL"\nincident_channels = ["#ops"]\n\n'
        "[escalation_policy.critical]\nescalate_after_minutes = 30\n"
        '[[escalation_policy.critical.levels]]\nnotify = ["slack:#ops"]\n'
    )
    # Queued by a process with Slack configured, a minute ago (so due and unclaimed since) …
    run_cli(
        sqlite_database,
        "incident",
        "create",
        "--title",
        "API down",
        "--severity",
        "critical",
        "--config",
        str(config),
        TEST_SLACK_URL="http://127.0.0.1:9/hook",
        check=True,
    )
    with sqlite3.connect(sqlite_database.path) as con:
        con.execute("UPDATE notification SET next_attempt_at = datetime('now', '-1 minute'), created_at = datetime('now', '-1 minute')")
        assert con.execute("SELECT count(*) FROM notification WHERE destination = 'slack:#ops'").fetchone()[0] >= 1
    # … and an engine started without any configuration (an empty directory, no PULSEGUARD_CONFIG).
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**cli_env(sqlite_database), "HOME": str(empty), "XDG_CONFIG_HOME": str(empty / ".config"), "PYTHONPATH": str(REPO)}
    engine = subprocess.Popen(
        [sys.executable, "-m", "pulseguard_tui", "engine", "--as", "tester"],
        cwd=empty,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        rows: list = []
        while time.monotonic() < deadline:
            rows = json.loads(run_cli(sqlite_database, "notifications", "--json", check=True).stdout)
            if rows and all((r["error"] or "").startswith("waiting:") for r in rows):
                break
            time.sleep(0.3)
    finally:
        engine.send_signal(signal.SIGINT)
        out, err = engine.communicate(timeout=30)
    assert engine.returncode == 0, err
    assert rows and all(r["state"] == "pending" and r["attempts"] == 0 for r in rows), rows
    assert all(r["error"].startswith("waiting: no Slack webhook URL configured in engine ") for r in rows), rows
    lines = err.splitlines()
    assert lines[0] == "pulseguard engine: no configuration file: probing nothing, notifying nobody; see pulseguard init"
    assert lines[1] == f"pulseguard engine: database sqlite:{sqlite_database.path}"
    assert lines[2].startswith(f"pulseguard engine: {len(rows)} pending notification") and "(slack:#ops)" in lines[2]
    table = run_cli(sqlite_database, "notifications", check=True).stdout
    assert "pending" in table and "waiting: no Slack webhook URL" in table
    assert run_cli(sqlite_database, "notifications", "list", check=True).stdout == table  # the spelling the docs use
    shown = run_cli(sqlite_database, "incident", "show", "INC-1", check=True).stdout
    assert "notify_waiting  notification to #ops waiting: no Slack webhook URL" in shown


def test_engine_start_summary_names_the_postgresql_schema():
    from engine.config.loading import parse_config_text
    from engine.runtime.engine import start_summary
    from engine.storage.db import resolve_database

    # Engines on two schemas of one database must not describe themselves alike.
    database = resolve_database("postgres://pg@db.internal:5432/ops?schema=team_a")
    lines = start_summary(parse_config_text(""), database)
    assert "pulseguard engine: database postgres:db.internal:5432/ops?schema=team_a" in lines, lines
    assert database.where == "postgres:db.internal:5432/ops?schema=team_a"


def test_engine_start_summary_names_what_it_runs(sqlite_database, tmp_path):
    from engine.config.loading import parse_config_text
    from engine.runtime.engine import start_summary

    config = parse_config_text(
        '[integrations.slack]\nwebhook_url_env = "TEST_SLACK_URL"\n\n[integrations.email]\nsmtp_host = "127.0.0.1"\n'
        'from = "pg@example.com"\n\n[escalation_policy.critical]\nescalate_after_minutes = 5\n'
        '[escalation_policy.high]\nescalate_after_minutes = 15\n\n[[targets]]\nname = "api"\nkind = "http"\n'
        'url = "http://127.0.0.1:9/health"\n'
    )
    config._path = tmp_path / "pulseguard.toml"
    os.environ["TEST_SLACK_URL"] = "http://127.0.0.1:9/hook"
    try:
        lines = start_summary(config, sqlite_database, api_url="http://127.0.0.1:8080")
    finally:
        del os.environ["TEST_SLACK_URL"]
    assert lines == [
        f"pulseguard engine: configuration {tmp_path / 'pulseguard.toml'}; database sqlite:{sqlite_database.path}",
        "pulseguard engine: 1 target, 0 triggers, 2 channels (slack, email), policies critical/high; REST on 127.0.0.1:8080",
    ]


def test_a_missing_database_names_where_it_was_given(tmp_path):
    """The hint said "check --db / PULSEGUARD_DB" for a path the configuration's [engine] db gave."""
    target = tmp_path / "nodir" / "x.db"
    config = tmp_path / "p.toml"
    config.write_text(f'[engine]\ndb = "{target}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    proc = run_python(["incident", "list", "--config", str(config)], env=env, cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2,
        f"error: no PulseGuard database at {target} (check [engine] db, or run `pulseguard init`)\n",
    )
    proc = run_python(["incident", "create", "--title", "t", "--severity", "low", "--config", str(config)], env=env, cwd=tmp_path)
    assert (
        proc.stderr
        == f"error: cannot create database {target}: directory {target.parent} does not exist (create it, or check [engine] db)\n"
    )
    assert not target.parent.exists()
