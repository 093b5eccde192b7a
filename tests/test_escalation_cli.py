"""`pulseguard config check` prints each severity's escalation chain, and `pulseguard
escalation preview` shows it for a moment: real subprocesses, real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.configs import SPEC_BLOCK
from support.db import REPO, run_cli

PEOPLE = """
[engine]
timezone = "UTC"
[[users]]
id = "alice"
email = "alice@example.com"
[[users]]
id = "bob"
email = "bob@example.com"
[[users]]
id = "carol"
email = "carol@example.com"
[[users]]
id = "dave"
email = "dave@example.com"
[[users]]
id = "erin"
email = "erin@example.com"

[[services]]
name = "search"
schedule = "search-oncall"
[[services]]
name = "web"

[integrations.email]
smtp_host = "127.0.0.1"
from = "pulseguard@example.com"
[integrations.slack]
incident_channels = ["#incidents"]
webhook_url_env = "PULSEGUARD_TEST_SLACK_HOOK"
"""
# Set for every run here: the channels above can be sent to, so the chains name no "(not sent: …)".
HOOK = {"PULSEGUARD_TEST_SLACK_HOOK": "http://127.0.0.1:9/hook"}

FIXED = (
    SPEC_BLOCK
    + PEOPLE
    + """
[[schedules]]
name = "primary"
users = ["alice"]
[[schedules]]
name = "secondary"
users = ["bob"]
[[schedules]]
name = "search-oncall"
users = ["dave"]
"""
)

ROTATING = (
    SPEC_BLOCK
    + PEOPLE
    + """
[[schedules]]
name = "primary"
rotation = "weekly"
handoff = "monday 09:00"
start = 2026-03-02
users = ["alice", "carol"]
[[schedules]]
name = "secondary"
users = ["bob"]
[[schedules]]
name = "search-oncall"
rotation = "daily"
handoff = "09:00"
start = 2026-03-02
users = ["dave", "erin"]
"""
)


def check(tmp_path: Path, text: str) -> tuple[int, list[str], list[str]]:
    path = tmp_path / "pulseguard.toml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")} | HOOK
    proc = subprocess.run(
        [sys.executable, "-m", "pulseguard_tui", "config", "check", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr
    lines = [line.replace(f"{path}: ", "") for line in proc.stderr.splitlines()]
    # Warnings about channels without their connection settings are tested in test_config_checks.py.
    lines = [line for line in lines if not line.startswith(("warning: integrations.", "warning: notifications."))]
    return proc.returncode, proc.stdout.splitlines(), lines


def test_config_check_prints_the_chain_of_every_severity_and_warns_on_a_missing_policy(tmp_path):
    code, out, err = check(tmp_path, FIXED)
    assert code == 0, err
    chains = [line.strip() for line in out[2:]]
    assert out[1].startswith("escalation (who is on call at ")
    assert chains == [
        "critical: now alice (primary), #incidents; +5 min bob (secondary); then every 5 min",
        "critical, service search: now dave (search-oncall), #incidents; then every 5 min",
        "high: now alice (primary), #incidents; +15 min bob (secondary); then every 15 min",
        "high, service search: now dave (search-oncall), #incidents; then every 15 min",
        "medium: in the digest within 30 min alice (primary), #incidents; +60 min bob (secondary); then every 60 min",
        "medium, service search: in the digest within 30 min dave (search-oncall), #incidents; then every 60 min",
        "low (follows the medium policy): in the digest within 30 min alice (primary), #incidents; +60 min bob (secondary); then every 60 min",
        "low (follows the medium policy), service search: in the digest within 30 min dave (search-oncall), #incidents; then every 60 min",
    ]
    assert err == ["warning: escalation_policy.low is missing: low incidents follow the medium policy"]


def test_config_check_warns_when_a_severity_reaches_no_person(tmp_path):
    # The spec's block with no schedules: the channels hear of it, nobody is paged.
    code, out, err = check(tmp_path, SPEC_BLOCK + '[integrations.slack]\nincident_channels = ["#incidents"]\n')
    assert code == 0
    # No webhook for the channel: the chain does not claim a message the engine cannot send.
    assert "  high: now #incidents (not sent: no Slack webhook URL configured); then every 15 min" in out
    assert "warning: high reaches no person: there are no [[schedules]] to take the on-call person from" in err
    assert sum("reaches no person" in line for line in err) == 4

    explicit = FIXED + '[[escalation_policy.low.levels]]\nnotify = ["slack:#low"]\n'
    code, out, err = check(tmp_path, explicit)
    assert code == 0 and "  low: now #low; then every 15 min" in out
    assert err == ["warning: low reaches no person: its levels name only channels (add schedule:NAME or user:ID)"]

    quiet = FIXED + "[escalation_policy.low]\non_call_rotation = false\n"
    code, out, err = check(tmp_path, quiet)
    assert "  low: now #incidents; then every 15 min" in out
    assert err == ["warning: low reaches no person: on_call_rotation = false and no levels: only channels are notified"]


def test_config_check_warns_when_there_is_no_policy_at_all(tmp_path):
    code, out, err = check(tmp_path, PEOPLE + '[[schedules]]\nname = "search-oncall"\nusers = ["dave"]\n')
    assert code == 0
    assert "  high: no escalation policy: pages nobody; #incidents hear of it" in out
    assert err == ["warning: no [escalation_policy]: no incident pages anyone (add [escalation_policy.critical] and the others)"]


def test_config_check_refuses_a_service_schedule_that_does_not_exist(tmp_path):
    code, out, err = check(tmp_path, FIXED.replace('schedule = "search-oncall"', 'schedule = "serch"'))
    assert code == 2 and out == []
    assert err == ['error: services[0].schedule: no schedule named "serch" (schedules: primary, secondary, search-oncall)']


@pytest.fixture
def rotating(tmp_path: Path) -> Path:
    path = tmp_path / "pulseguard.toml"
    path.write_text(ROTATING)
    return path


def preview(database, config: Path, *args: str):
    return run_cli(database, "escalation", "preview", "--config", str(config), *args, **HOOK)


def test_preview_shows_who_is_paged_at_a_moment_and_for_a_service(migrated_database, rotating):
    first = preview(migrated_database, rotating, "--severity", "high", "--at", "2026-03-02T10:00")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "a high incident opened at Mon 2026-03-02 10:00 UTC:",
        "  high: now alice (primary), #incidents; +15 min bob (secondary); then every 15 min",
        "  Mon 2026-03-02 10:00 UTC  level 1: alice (primary), #incidents",
        "  Mon 2026-03-02 10:15 UTC  level 2: bob (secondary)",
        "  then level 2 again every 15 min until someone acknowledges",
    ]
    week_later = preview(migrated_database, rotating, "--severity", "critical", "--at", "2026-03-09T10:00")
    assert week_later.stdout.splitlines()[1] == "  critical: now carol (primary), #incidents; +5 min bob (secondary); then every 5 min"

    search = preview(migrated_database, rotating, "--severity", "medium", "--service", "search", "--at", "2026-03-03T07:00")
    assert search.returncode == 0, search.stderr
    # search's own schedule first (dave until 09:00), then whoever takes over on its rotation
    assert search.stdout.splitlines()[1] == (
        "  medium: in the digest within 30 min dave (search-oncall), #incidents; +60 min erin (next on search-oncall); then every 60 min"
    )
    # erin takes over at 09:00, before level 2 fires at 09:30: level 2 is still erin, not dave again
    handoff = preview(migrated_database, rotating, "--severity", "medium", "--service", "search", "--at", "2026-03-03T08:30")
    assert handoff.stdout.splitlines()[1].endswith(
        "dave (search-oncall), #incidents; +60 min erin (next on search-oncall); then every 60 min"
    )
    web = preview(migrated_database, rotating, "--severity", "medium", "--service", "web", "--at", "2026-03-03T07:00")
    assert "alice (primary)" in web.stdout.splitlines()[1]  # a service without a schedule: the first one


def test_preview_as_json_says_what_the_text_says(migrated_database, rotating):
    proc = preview(migrated_database, rotating, "--severity", "high", "--at", "2026-03-02T10:00", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["summary"] == "high: now alice (primary), #incidents; +15 min bob (secondary); then every 15 min"
    assert [(s["level"], s["at"]) for s in out["steps"]] == [(1, "2026-03-02T10:00:00+00:00"), (2, "2026-03-02T10:15:00+00:00")]
    assert [(r["user"], r["via"]) for r in out["steps"][0]["recipients"]] == [("alice", "primary"), (None, None)]
    assert out["steps"][0]["recipients"][1]["destination"] == "slack:#incidents"
    assert out["reminder_minutes"] == 15 and out["reaches_no_person"] is None


def test_preview_follows_run_time_overrides(migrated_database, rotating):
    before = preview(migrated_database, rotating, "--severity", "high", "--at", "+25h")
    assert "bob (primary)" not in before.stdout
    made = run_cli(
        migrated_database, "oncall", "override", "bob", "--schedule", "primary", "--from", "+24h", "--to", "+26h", "--config", str(rotating)
    )
    assert made.returncode == 0, made.stderr
    proc = preview(migrated_database, rotating, "--severity", "high", "--at", "+25h")
    assert proc.stdout.splitlines()[1].startswith("  high: now bob (primary), #incidents; +15 min bob (secondary)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--severity", "urgent"], "error: --severity: unknown severity 'urgent' (expected one of: critical, high, medium, low)"),
        (["--severity", "high", "--service", "serch"], "error: --service: no service named 'serch' (services: search, web)"),
        (
            ["--severity", "high", "--at", "tomorrow"],
            "error: --at: 'tomorrow' is not a time (expected ISO 8601 like 2026-03-30T09:00, 'now', '+2h' or '-1d')",
        ),
    ],
)
def test_preview_bad_input_is_one_line_and_exit_2(migrated_database, rotating, args, message):
    proc = preview(migrated_database, rotating, *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [message]


def test_preview_refuses_a_time_the_clocks_skip(migrated_database, tmp_path):
    """02:30 on 2026-03-29 does not exist in Amsterdam: refused, not shifted to 03:30."""
    path = tmp_path / "amsterdam.toml"
    path.write_text(ROTATING.replace('timezone = "UTC"', 'timezone = "Europe/Amsterdam"'))
    proc = preview(migrated_database, path, "--severity", "high", "--at", "2026-03-29T02:30")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: --at: '2026-03-29T02:30' does not exist in Europe/Amsterdam (the clocks skip it that day); give another time or a zone"
    ]
    assert preview(migrated_database, path, "--severity", "high", "--at", "2026-03-29T03:30").returncode == 0


def test_config_check_names_a_pagerduty_schedule_as_pagerdutys_on_call(tmp_path):
    text = (
        SPEC_BLOCK
        + """
[[schedules]]
name = "pd"
pagerduty_schedule = "PABC123"
[integrations.pagerduty]
on_call_schedule = true
"""
    )
    code, out, err = check(tmp_path, text)
    assert code == 0
    assert "  critical: now PagerDuty's on-call (pd); then every 5 min" in out
    assert not [line for line in err if "reaches no person" in line]


async def test_a_page_stored_while_no_engine_runs_is_said_to_wait(db, tmp_path):
    """The CLI stores pages; an engine sends them. With none running, the command says so on
    stderr (and still succeeds); with one holding the engine lease it says nothing."""
    from engine.runtime.lease import Lease

    cfg = tmp_path / "pulseguard.toml"
    cfg.write_text(FIXED)
    proc = run_cli(db, "--config", str(cfg), "incident", "create", "--title", "DB down", "--severity", "critical")
    assert proc.returncode == 0, proc.stderr
    assert "INC-1 opened" in proc.stdout
    assert "note: no engine is running on this database" in proc.stderr and "for INC-1" in proc.stderr, proc.stderr
    lease = Lease(ttl=60, renew=20)
    assert await lease.try_acquire()
    try:
        proc = run_cli(db, "--config", str(cfg), "incident", "ack", "INC-1")
        assert proc.returncode == 0, proc.stderr
        assert "no engine" not in proc.stderr, proc.stderr
    finally:
        await lease.release()
