"""`pulseguard oncall …` as a user runs it: real subprocesses on a real (already migrated) database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.db import run_cli, table_rows

CONFIG = """
[engine]
timezone = "Europe/Amsterdam"
[[users]]
id = "alice"
name = "Alice Jansen"
email = "alice@example.com"
[[users]]
id = "bob"
email = "bob@example.com"
[[users]]
id = "carol"
email = "carol@example.com"
[[schedules]]
name = "primary"
rotation = "weekly"
handoff = "monday 09:00"
start = 2025-03-03
users = ["alice", "bob", "carol"]
[[schedules]]
name = "secondary"
rotation = "daily"
handoff = "09:00"
users = ["bob", "carol"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "pulseguard.toml"
    path.write_text(CONFIG)
    return path


def cli(database, config_file, *args, **kw):
    return run_cli(database, *args, "--config", str(config_file), **kw)


def test_who_is_on_call_at_a_time_across_dst(migrated_database, config_file):
    database = migrated_database
    proc = cli(database, config_file, "oncall", "--at", "2025-03-31T08:59", "--schedule", "primary", "--json", check=True)
    data = json.loads(proc.stdout)
    [primary] = data["schedules"]
    assert primary["on_call"]["user"] == "alice"  # weeks from 2025-03-03: alice, bob, carol, alice (24 March)…
    assert primary["next_handoff"]["at"] == "2025-03-31T07:00:00+00:00"  # 09:00 CEST, the day after the DST change
    assert primary["next_handoff"]["to"] == "bob"
    assert primary["shifts"][0]["user"] == "alice" and primary["shifts"][0]["start"] == "2025-03-24T08:00:00+00:00"
    human = cli(database, config_file, "oncall", "--at", "2025-03-31T08:59", check=True).stdout
    assert "Alice Jansen (alice)" in human and "bob at Mon 2025-03-31 09:00 CEST" in human and "secondary" in human


@pytest.mark.slow
def test_override_then_list_show_and_cancel(migrated_database, config_file):
    database = migrated_database
    now = datetime.now(UTC)
    # who is on primary now? cover them for the next two hours
    data = json.loads(cli(database, config_file, "oncall", "--schedule", "primary", "--json", check=True).stdout)
    current = data["schedules"][0]["on_call"]["user"]
    other = next(u for u in ("alice", "bob", "carol") if u != current)
    proc = cli(
        database,
        config_file,
        "oncall",
        "override",
        other,
        "--covers",
        current,
        "--from",
        "now",
        "--to",
        "+2h",
        "--schedule",
        "primary",
        "--reason",
        "dentist",
        check=True,
        actor="dave",
    )
    assert proc.stdout.startswith(f"override #1: {other} covers {current} on primary")
    data = json.loads(cli(database, config_file, "oncall", "--schedule", "primary", "--json", check=True).stdout)
    assert data["schedules"][0]["on_call"]["user"] == other
    assert data["schedules"][0]["on_call"]["override"].startswith(f"{other} covers {current}")
    listed = json.loads(cli(database, config_file, "oncall", "overrides", "--json", check=True).stdout)
    assert [(o["id"], o["user"], o["covers"], o["reason"]) for o in listed] == [(1, other, current, "dentist")]
    # both people are told, through the outbox
    outbox = json.loads(cli(database, config_file, "notifications", "--json", check=True).stdout)
    assert {n["destination"] for n in outbox} == {f"email:{other}@example.com", f"email:{current}@example.com"}
    assert {n["kind"] for n in outbox} == {"override_notice"}
    cli(database, config_file, "oncall", "cancel-override", "1", check=True, actor="erin")
    # the people who made and cancelled it, on the timeline and in the audit log (not the engine)
    events = [r for r in table_rows(database)["event"] if "oncall_override" in r]
    assert len(events) == 2 and "dave" in events[0] and "erin" in events[1] and not any("pulseguard" in r for r in events)
    audited = json.loads(cli(database, config_file, "audit", "--json", check=True).stdout)
    assert [(e["actor"], e["action"]) for e in audited if e["action"] == "system.oncall_override"] == [
        ("erin", "system.oncall_override"),
        ("dave", "system.oncall_override"),
    ]
    data = json.loads(cli(database, config_file, "oncall", "--schedule", "primary", "--json", check=True).stdout)
    assert data["schedules"][0]["on_call"]["user"] == current
    again = cli(database, config_file, "oncall", "cancel-override", "1")
    assert again.returncode == 2 and "already cancelled" in again.stderr
    # --all adds past overrides, never cancelled ones
    assert json.loads(cli(database, config_file, "oncall", "overrides", "--all", "--json", check=True).stdout) == []
    del now


@pytest.mark.parametrize(
    "args,message",
    [
        (["oncall", "override", "carol", "--from", "now", "--to", "+1h"], "say which schedule"),
        (["oncall", "override", "zed", "--from", "now", "--to", "+1h", "--schedule", "primary"], "no user with id 'zed'"),
        (["oncall", "override", "carol", "--from", "+2h", "--to", "+1h", "--schedule", "primary"], "error: --to: '+1h' ("),
        (["oncall", "override", "carol", "--from", "+2h", "--to", "+1h", "--schedule", "primary"], "is not after --from '+2h' ("),
        # Already over: it read "end: must be after the start", naming no option.
        (["oncall", "override", "carol", "--from", "now", "--to", "-1h", "--schedule", "primary"], "error: --to: '-1h' ("),
        (["oncall", "override", "carol", "--to", "2020-01-01T10:00", "--from", "now", "--schedule", "primary"], "has already passed: an"),
        (["oncall", "override", "carol", "--from", "yesterday", "--to", "+1h", "--schedule", "primary"], "is not a time"),
        # The clocks skip 02:00–03:00 in Amsterdam on these Sundays: refused, not moved to 03:30.
        (["oncall", "--at", "2026-03-29T02:30"], "error: --at: '2026-03-29T02:30' does not exist in Europe/Amsterdam (the clocks skip"),
        (
            ["oncall", "override", "bob", "--from", "2027-03-28T02:30", "--to", "2027-03-28T05:00", "--schedule", "secondary"],
            "error: --from: '2027-03-28T02:30' does not exist in Europe/Amsterdam (the clocks skip it that day)",
        ),
        # Both relative to the one "now" of the command: no override lasting a few microseconds.
        (
            ["oncall", "override", "bob", "--from", "+1h", "--to", "+1h", "--schedule", "secondary"],
            "is the same time as --from '+1h': an override must last some time",
        ),
        (["oncall", "--schedule", "tertiary"], "no schedule named 'tertiary'"),
        (["oncall", "export"], "--ical"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(migrated_database, config_file, args, message):
    database = migrated_database
    before = table_rows(database)
    proc = cli(database, config_file, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert table_rows(database) == before  # read directly: nothing written to any table


def test_ical_export_to_a_file(migrated_database, config_file, tmp_path):
    database = migrated_database
    out = tmp_path / "oncall.ics"
    proc = cli(
        database, config_file, "oncall", "export", "--ical", "--schedule", "secondary", "--days", "7", "--output", str(out), check=True
    )
    assert proc.stdout.startswith("wrote ")
    text = out.read_bytes().decode()
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.rstrip().endswith("END:VCALENDAR")
    assert 14 <= text.count("BEGIN:VEVENT") <= 16  # daily shifts: the past week and the next one
    assert "SUMMARY:On call: bob (secondary)" in text and "SUMMARY:On call: carol (secondary)" in text  # they alternate daily
    stdout = cli(database, config_file, "oncall", "export", "--ical", check=True).stdout
    assert "X-WR-CALNAME:PulseGuard on-call" in stdout and "(primary)" in stdout and "(secondary)" in stdout


def test_without_a_configuration_the_message_says_what_to_do(migrated_database, tmp_path):
    database = migrated_database
    proc = run_cli(database, "oncall", PULSEGUARD_CONFIG=str(tmp_path / "missing.toml"))
    assert proc.returncode == 2 and "missing.toml" in proc.stderr


def test_the_last_shift_listed_shows_its_real_end_not_the_windows(migrated_database, config_file):
    """The list stops 14 days ahead; the shift running then was shown ending where the list
    stopped ("… – Mon 21 Dec 16:35"), as if it ended mid-afternoon. It shows its real end."""
    proc = cli(migrated_database, config_file, "oncall", "--at", "2025-03-31T08:59", "--schedule", "primary", "--json", check=True)
    [primary] = json.loads(proc.stdout)["schedules"]
    last = primary["shifts"][-1]
    window_end = datetime(2025, 3, 31, 6, 59, tzinfo=UTC) + timedelta(days=14)  # 08:59 CEST
    assert datetime.fromisoformat(last["end"]) > window_end
    assert last["end"].endswith("07:00:00+00:00"), last  # a hand-off at 09:00 CEST, as every other one
    ends = [s["end"] for s in primary["shifts"]]
    assert ends == sorted(ends) and all(e.endswith("07:00:00+00:00") for e in ends), ends
