"""Option values the CLI took and then did something else than asked with: an empty value read
as "not given" (`silence add … --until ""` made a silence of --for alone, `--start ""` one
starting now, `report --since ""` reported the default window, `--as ""` acted as the OS user),
`demo --duration 0`. Each is refused naming the option (exit 2, one line) and stores nothing.
Real `pulseguard` processes on a real (migrated) database, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli_proc import run_python
from support.db import cli_env, run_cli, table_rows

CONFIG = """
[[users]]
id = "alice"
email = "alice@example.com"
[[users]]
id = "bob"
email = "bob@example.com"
[[services]]
name = "db"
[[schedules]]
name = "primary"
rotation = "weekly"
handoff = "monday 09:00"
users = ["alice", "bob"]
"""


def empty(option: str) -> str:
    return f"error: {option}: is empty (give a value, or leave {option} out)\n"


def test_an_empty_or_blank_option_value_is_refused_and_nothing_is_stored(migrated_database, tmp_path: Path) -> None:
    db = migrated_database
    config = tmp_path / "pulseguard.toml"
    config.write_text(CONFIG)
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", "--config", str(config), check=True)
    run_cli(db, "silence", "add", "service=db", "--for", "1h", "-c", "deploy", "--config", str(config), check=True)
    before = table_rows(db)
    silences = run_cli(db, "silence", "list", "--json", "--config", str(config), check=True).stdout
    for argv, option in [
        (["silence", "add", "service=db", "-c", "x", "--for", "2h", "--until", ""], "--until"),
        (["silence", "add", "service=db", "-c", "x", "--until=", "--for", "2h"], "--until"),
        (["silence", "add", "service=db", "-c", "x", "--for", "2h", "--start", "  "], "--start"),
        (["silence", "add", "service=db", "-c", "x", "--for", "2h", "--sta", ""], "--start"),  # abbreviated: named in full
        (["silence", "add", "service=db", "-c", "", "--for", "2h"], "-c"),  # named as typed
        (["maintenance", "add", "--title", "m", "--service", "db", "--for", "1h", "--end", ""], "--end"),
        (["maintenance", "add", "--title", "m", "--service", "db", "--end", "+1h", "--start", ""], "--start"),
        (["oncall", "override", "bob", "--covers", "alice", "--from", "now", "--to", "", "--schedule", "primary"], "--to"),
        (["incident", "evidence", "INC-1", "--url", "https://example.com/x", "-d", " "], "-d"),
        (["incident", "resolve", "INC-1", "--root-cause", "disk", "--solution", "", "--category", "capacity"], "--solution"),
        (["report", "--since", ""], "--since"),
        (["metrics", "query", "queue_depth", "--since", ""], "--since"),
        (["audit", "--since", ""], "--since"),
        (["incident", "list", "--limit", " "], "--limit"),
        (["incident", "ack", "INC-1", "--as", ""], "--as"),
    ]:
        proc = run_cli(db, *argv, "--config", str(config))
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", empty(option)), argv
    assert table_rows(db) == before
    assert run_cli(db, "silence", "list", "--json", "--config", str(config), check=True).stdout == silences


def test_an_empty_or_blank_argument_is_refused_naming_it(migrated_database, tmp_path: Path) -> None:
    """`config check ""` checked the usual file, `statuspage build ""` wrote the status page into
    the current directory, `init "  "` and `backup " "` wrote a file named with spaces."""
    db = migrated_database
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    run_cli(db, "silence", "add", "service=db", "--for", "1h", "-c", "deploy", check=True)
    before = table_rows(db)
    here = tmp_path / "cwd"
    here.mkdir()
    for argv, name in [
        (["config", "check", ""], "FILE"),
        (["init", "  "], "FILE"),
        (["statuspage", "build", ""], "DIR"),
        (["backup", " "], "PATH"),
        (["export", "--output", " "], None),
        (["incident", "snooze", "INC-1", ""], "DURATION"),
        (["incident", "comment", "INC-1", "  "], "text"),
        (["silence", "extend", "1", ""], "DURATION"),
        (["silence", "expire", " "], "ID"),
    ]:
        proc = run_python([*argv, *(["--as", "tester"] if argv[0] not in ("init", "config") else [])], env=cli_env(db), cwd=here)
        said = f"error: {name}: is empty\n" if name else empty("--output")
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", said), argv
    assert sorted(here.iterdir()) == []
    assert table_rows(db) == before


def test_an_empty_postmortem_text_still_clears_it_as_its_help_says(migrated_database) -> None:
    db = migrated_database
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)

    def written() -> tuple[str, str]:
        document = json.loads(run_cli(db, "postmortem", "INC-1", "--json", check=True).stdout)
        return document["postmortem"]["summary"], document["impact"]["financial_impact"]

    run_cli(db, "postmortem", "INC-1", "--summary", "the disk filled", "--financial", "none", check=True)
    assert written() == ("the disk filled", "none")
    run_cli(db, "postmortem", "INC-1", "--summary", "", "--financial", "", check=True)
    assert written() == ("", "")
    helped = run_cli(db, "postmortem", "--help", check=True).stdout
    assert helped.count("('' clears it)") == 3, helped


def test_demo_refuses_a_duration_that_is_not_positive_or_more_than_a_day(tmp_path: Path) -> None:
    """`demo --duration 0` started the demo and stopped it at once (exit 0), and 1e9 seconds was
    taken too; it is seconds from 1 to a day, refused otherwise before anything starts."""
    import subprocess
    import sys

    from support.db import REPO

    for value in ("0", "-1", "0.5", "86401", "1e9"):
        proc = subprocess.run(
            [sys.executable, "-m", "pulseguard_tui", "demo", "--duration", value], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        said = f"pulseguard demo: argument --duration: '{value}' is out of range (1 to 86400) (see pulseguard demo --help)\n"
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", said), value  # no "demo: flaky service on …"
    for value in ("nan", "inf", "Infinity"):  # said to be out of range: they are no number of seconds at all
        proc = subprocess.run(
            [sys.executable, "-m", "pulseguard_tui", "demo", "--duration", value], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        said = f"pulseguard demo: argument --duration: '{value}' is not a finite number (see pulseguard demo --help)\n"
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", said), value


def test_evidence_refuses_a_log_range_without_a_log(migrated_database) -> None:
    """`incident evidence INC-1 --url … --from 10:00` stored the link and dropped the range."""
    db = migrated_database
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    before = table_rows(db)
    for extra, option in [(["--from", "10:00"], "--from"), (["--to", "now"], "--to"), (["--from", "0", "--to", "-1"], "--from")]:
        proc = run_cli(db, "incident", "evidence", "INC-1", "--url", "https://example.com/graph", *extra)
        said = f"error: {option}: only goes with --log (the time range of a log excerpt)\n"
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", said), extra
    assert table_rows(db) == before
    run_cli(db, "incident", "evidence", "INC-1", "--url", "https://example.com/graph", check=True)
    assert table_rows(db) != before


def test_as_refuses_a_name_with_a_line_break_or_invisible_characters(migrated_database) -> None:
    """`--as $'alice\\nroot'` was stored as the actor: the audit log and the timeline showed a
    second line of the user's making; over 64 characters the refusal said "actor: …", naming no
    option. Both name --as now (exit 2, nothing stored); a name with a space is still a name."""
    db = migrated_database
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    before = table_rows(db)
    invisible = "is not a name (it holds a line break, control or invisible character)"
    for name, said in [
        ("alice\nroot", f"error: --as: 'alice\\nroot' {invisible}\n"),
        ("alice\u202eeci", f"error: --as: 'alice\\u202eeci' {invisible}\n"),
        ("x" * 65, f"error: --as: '{'x' * 65}' is longer than 64 characters\n"),
    ]:
        proc = run_cli(db, "incident", "comment", "INC-1", "hello", "--as", name, actor="")
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", said), name
    assert table_rows(db) == before
    run_cli(db, "incident", "comment", "INC-1", "hello", "--as", "Alice Jansen", actor="", check=True)
    shown = json.loads(run_cli(db, "incident", "show", "INC-1", "--json", check=True).stdout)
    assert [c["author"] for c in shown["comments"]][-1] == "Alice Jansen"


def test_refusals_of_incident_create_list_and_followup_name_the_option_typed(migrated_database) -> None:
    """`incident create --assignee 'a b'` said "assignee: …", `incident list --status 0`
    "status: …", `incident followup … --owner 'a b'` "owner: …", `incident resolve
    --root-cause` "root_cause: …", `incident assign INC-1 'a b'` "assignee: …", `maintenance
    add --target 'a b'` "target: …": fields the user never typed.
    They name the option now (exit 2, nothing stored)."""
    db = migrated_database
    run_cli(db, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    before = table_rows(db)
    for argv, said in [
        (["incident", "create", "--title", "t", "--severity", "0"], "error: --severity: unknown value '0' (expected one of:"),
        (["incident", "create", "--title", "t", "--severity", "high", "--assignee", "a b"], "error: --assignee: 'a b' is not a valid name"),
        (["incident", "create", "--title", "t", "--severity", "high", "--tag", "a b"], "error: --tag: 'a b' is not a valid tag"),
        (["incident", "create", "--title", "x" * 301, "--severity", "high"], "error: --title: is 301 characters long (at most 300)"),
        (["incident", "list", "--status", "0"], "error: --status: unknown value '0' (expected one of:"),
        (["incident", "list", "--severity", "-1"], "error: --severity: unknown value '-1' (expected one of:"),
        (["incident", "followup", "INC-1", "--group", "x", "-d", "y"], "error: --group: unknown value 'x' (expected one of:"),
        (["incident", "followup", "INC-1", "--group", "process_changes", "-d", "y", "--owner", "a b"], "error: --owner: 'a b' is not"),
        (["incident", "resolve", "INC-1", "--root-cause", "\x1b", "--solution", "s"], "error: --root-cause: holds only control"),
        (["incident", "resolve", "INC-1", "--root-cause", "r", "--solution", "s", "--category", "nope"], "error: --category: unknown"),
        (["incident", "assign", "INC-1", "a b"], "error: WHO: 'a b' is not a valid name"),
        (["maintenance", "add", "--title", "t", "--target", "a b", "--for", "1h"], "error: --target: 'a b' is not a valid name"),
        (["maintenance", "add", "--title", "t", "--service", "a b", "--for", "1h"], "error: --service: 'a b' is not a valid name"),
        (["maintenance", "add", "--title", "\x01", "--target", "web", "--for", "1h"], "error: --title: holds only control"),
    ]:
        proc = run_cli(db, *argv)
        assert (proc.returncode, proc.stdout) == (2, ""), (argv, proc.stderr)
        assert proc.stderr.startswith(said) and proc.stderr.count("\n") == 1, (argv, proc.stderr)
    assert table_rows(db) == before


def test_oncall_override_refusals_name_the_argument_typed(migrated_database, tmp_path: Path) -> None:
    """`oncall override 'a b'` said "user: no user with id 'a b'" (and --covers "covers: …"):
    fields the user never typed. They name USER and --covers; nothing is stored."""
    db = migrated_database
    config = tmp_path / "pulseguard.toml"
    config.write_text(CONFIG)
    before = table_rows(db)
    for argv, said in [
        (["a b"], "error: USER: no user with id 'a b' (users: alice, bob)"),
        (["alice", "--covers", "zed"], "error: --covers: no user with id 'zed' (users: alice, bob)"),
    ]:
        proc = run_cli(db, "oncall", "override", *argv, "--from", "now", "--to", "+2h", "--config", str(config))
        assert (proc.returncode, proc.stdout) == (2, ""), (argv, proc.stderr)
        assert proc.stderr == said + "\n", (argv, proc.stderr)
    assert table_rows(db) == before
