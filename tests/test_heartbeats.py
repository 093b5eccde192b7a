"""Heartbeat (dead-man's switch) targets: a job pings `/api/heartbeats/TOKEN`; a missed ping opens
an incident and the next ping resolves it. The real engine loops, the real API on loopback, the
CLI as a job would run it."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.db import run_cli
from support.rest import eventually, running_api

from engine.config.loading import ConfigError, parse_config_text
from engine.monitor.metrics import apply_retention
from engine.runtime.engine import Engine
from engine.storage.models import Incident
from engine.storage.monitor_models import HeartbeatPing

TOKEN = "k3y-for-the-nightly-backup"
CONFIG = """
[engine]
timezone = "UTC"

[[targets]]
name = "nightly-backup"
kind = "heartbeat"
interval = "1s"
grace = "1s"
token_env = "TEST_BACKUP_TOKEN"
severity = "critical"
"""


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_BACKUP_TOKEN", TOKEN)
    return TOKEN


async def open_heartbeat_incident() -> Incident | None:
    return await Incident.filter(dedup_key="threshold:missed_heartbeat:nightly-backup").order_by("-id").first()


async def test_a_missed_ping_opens_an_incident_and_the_next_ping_resolves_it(db: Any, token: str) -> None:
    config = parse_config_text(CONFIG)
    async with running_api(config) as api:
        engine = Engine(config, database=db, discover=False)
        await engine.start()
        try:
            await engine.wait_leader(10)
            async with api.client() as client:  # no Authorization header: the token is in the path
                for _ in range(8):  # a job pinging on time: nothing opens
                    answer = await client.post(f"/api/heartbeats/{token}")
                    assert answer.status_code == 200, answer.text
                    await asyncio.sleep(0.4)
                assert answer.json()["target"] == "nightly-backup"
                assert await open_heartbeat_incident() is None

                incident = await eventually(open_heartbeat_incident, timeout=10)  # the job stops pinging
                assert incident.severity == "critical" and incident.status == "triggered"
                assert "missed heartbeat" in incident.title

                pings = await HeartbeatPing.filter(target="nightly-backup").count()
                wrong = await client.get(f"/api/heartbeats/{token}x")
                assert wrong.status_code == 404 and "no heartbeat target has this token" in wrong.json()["message"]
                assert await HeartbeatPing.filter(target="nightly-backup").count() == pings  # changed nothing

                assert (await client.get(f"/api/heartbeats/{token}")).status_code == 200  # cron's curl: a GET

                async def resolved() -> bool:
                    row = await Incident.get(id=incident.id)
                    return row.status == "resolved"

                await eventually(resolved, timeout=10)
                row = await Incident.get(id=incident.id)
                assert row.resolved_by == "engine" and "did not ping in time" in (row.root_cause or "")
        finally:
            await engine.stop()


def test_the_cli_pings_a_configured_heartbeat_and_refuses_anything_else(migrated_database: Any, tmp_path: Any) -> None:
    config = tmp_path / "pulseguard.toml"
    config.write_text(CONFIG.replace('"UTC"', '"Europe/Amsterdam"'))
    done = run_cli(migrated_database, "heartbeat", "nightly-backup", "--config", str(config))
    assert done.returncode == 0, done.stderr
    # Shown in [engine] timezone (not ISO UTC), with when the next ping is due (interval + grace).
    assert re.fullmatch(
        r"pinged nightly-backup at \d\d:\d\d:\d\d CES?T; missed unless it pings again by (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d CES?T\n",
        done.stdout,
    ), done.stdout
    wrong = run_cli(migrated_database, "heartbeat", "nightly-bakup", "--config", str(config))
    assert wrong.returncode == 2
    assert "'nightly-bakup' is not a heartbeat target (heartbeat targets: nightly-backup)" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    listed = run_cli(migrated_database, "targets", "--config", str(config))
    assert "heartbeat" in listed.stdout


async def test_retention_keeps_each_targets_newest_ping(db: Any) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=30)
    for name in ("monthly", "daily"):
        for days in (40, 35):
            await HeartbeatPing.create(target=name, at=now - timedelta(days=days))
    await HeartbeatPing.create(target="daily", at=now)
    deleted = await apply_retention(7 * 86400.0, 90 * 86400.0, now=now)
    assert deleted["heartbeat_ping"] == 3
    left = sorted((p.target, p.at < old) for p in await HeartbeatPing.all())
    assert left == [("daily", False), ("monthly", True)]  # the monthly job's last ping outlives retention


def test_a_heartbeat_target_needs_its_token_variable() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text('[[targets]]\nname = "job"\nkind = "heartbeat"\ninterval = "1h"\n')
    assert any("targets[0]" in p and "token_env" in p for p in info.value.problems)


TWO_SILENT = """
[engine]
timezone = "UTC"

[[targets]]
name = "nightly-backup"
kind = "heartbeat"
interval = "2s"
grace = "1s"
token_env = "TEST_BACKUP_TOKEN"
severity = "critical"

[[targets]]
name = "weekly-report"
kind = "heartbeat"
interval = "2s"
grace = "1s"
token_env = "TEST_REPORT_TOKEN"
severity = "low"
"""


async def test_a_restart_keeps_a_missed_heartbeat_open_with_its_own_rule_until_a_real_ping(
    db: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_REPORT_TOKEN", "another-token")
    config = parse_config_text(TWO_SILENT)

    async def incident_of(target: str) -> Incident | None:
        return await Incident.filter(dedup_key=f"threshold:missed_heartbeat:{target}").order_by("-id").first()

    engine = Engine(config, database=db, discover=False)
    await engine.start()
    try:
        await engine.wait_leader(10)
        backup = await eventually(lambda: incident_of("nightly-backup"), timeout=15)  # never pinged
        report = await eventually(lambda: incident_of("weekly-report"), timeout=15)
    finally:
        await engine.stop()

    engine = Engine(config, database=db, discover=False)  # the engine restarts; nobody pinged
    await engine.start()
    try:
        await engine.wait_leader(10)
        await asyncio.sleep(5)  # more than interval + grace after the restart
        for incident in (backup, report):
            row = await Incident.get(id=incident.id)
            assert row.status == "triggered" and row.resolved_at is None, f"{row.target} resolved without a ping"
        assert engine.monitor is not None
        states = engine.monitor.evaluator.states
        assert states[("missed_heartbeat", "weekly-report")].rule.severity == "low"
        assert "weekly-report" in (states[("missed_heartbeat", "weekly-report")].rule.title or "")
        assert "nightly-backup" in (states[("missed_heartbeat", "nightly-backup")].rule.title or "")

        from engine.monitor.heartbeats import record_ping

        await record_ping("nightly-backup", "test")  # a real ping resolves only its own incident

        async def resolved() -> bool:
            return (await Incident.get(id=backup.id)).status == "resolved"

        await eventually(resolved, timeout=10)
        row = await Incident.get(id=backup.id)
        assert "nightly-backup" in (row.root_cause or "")
        assert (await Incident.get(id=report.id)).status == "triggered"
    finally:
        await engine.stop()


async def test_a_never_pinged_target_counts_its_silence_from_when_it_was_first_watched(db: Any, token: str) -> None:
    """A new process's first check must not start the silence afresh (a job that never pings
    would never be caught by an engine that restarts often)."""
    from engine.monitor.heartbeats import probe_heartbeat
    from engine.storage.monitor_models import MetricSeries

    [target] = parse_config_text(CONFIG).targets
    fresh = await probe_heartbeat(target)
    assert fresh.ok  # nothing stored about it yet: the allowance starts now
    await MetricSeries.create(
        target="nightly-backup", key="ok", name="ok", source="probe", created_at=datetime.now(UTC) - timedelta(hours=1)
    )
    first = await probe_heartbeat(target)
    assert not first.ok and "never pinged" in (first.error or "")


def test_heartbeat_targets_get_only_their_own_rule_unless_a_trigger_names_them() -> None:
    from engine.monitor.heartbeats import heartbeat_rules
    from engine.monitor.triggers.rules import rules_from_config

    config = parse_config_text(
        CONFIG
        + """
[[targets]]
name = "api-health"
kind = "http"
url = "http://127.0.0.1:9/health"

[triggers.high_error_rate]
condition = "error_rate > 10%"
severity = "high"

[triggers.any_down]
condition = "ok == 0"
severity = "low"
targets = ["*"]

[triggers.backup_slow]
condition = "ok == 0"
severity = "low"
targets = ["nightly-backup"]
"""
    )
    rules = rules_from_config(config) + heartbeat_rules(config.targets)
    reach = {r.name: [t for t in ("api-health", "nightly-backup") if r.selects(t, None)] for r in rules}
    assert reach == {
        "high_error_rate": ["api-health"],
        "any_down": ["api-health"],
        "backup_slow": ["nightly-backup"],
        "missed_heartbeat": ["nightly-backup"],
    }


def test_the_built_in_trigger_name_and_a_shared_token_are_refused_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(CONFIG + '\n[triggers.missed_heartbeat]\ncondition = "ok == 0"\nseverity = "low"\n')
    assert any("toml: triggers.missed_heartbeat: the name is reserved" in p for p in info.value.problems), info.value.problems
    shared = CONFIG + '\n[[targets]]\nname = "weekly-report"\nkind = "heartbeat"\ninterval = "1h"\ntoken_env = "TEST_BACKUP_TOKEN"\n'
    with pytest.raises(ConfigError) as info:
        parse_config_text(shared)
    [problem] = [p for p in info.value.problems if "token_env" in p]
    assert "toml: targets[1].token_env: " in problem and "nightly-backup" in problem and "weekly-report" in problem, problem


async def test_wrong_heartbeat_tokens_are_slowed_down_like_wrong_api_tokens(db: Any, token: str) -> None:
    from engine.rest.auth import FailureThrottle

    async with running_api(parse_config_text(CONFIG)) as api:
        api.state.throttle = FailureThrottle(free=3, window=60, cap=30)
        async with api.client() as client:
            for i in range(3):
                assert (await client.post(f"/api/heartbeats/guess-{i}")).status_code == 404
            slowed = await client.post("/api/heartbeats/guess-3")
            assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) >= 1
            # shared with the API's own tokens: the same address is slowed down there too
            wrong_api = await client.get("/api/incidents", headers={"Authorization": "Bearer pg_wrong-token"})
            assert wrong_api.status_code == 429
            # the job's real token is never slowed down (others behind the same address)
            assert (await client.post(f"/api/heartbeats/{token}")).status_code == 200
        assert await HeartbeatPing.filter(target="nightly-backup").count() == 1
        assert api.state.auth_failures == 5
