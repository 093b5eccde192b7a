"""Inputs at the edges: pushed metric batches (all or nothing, idempotent by series and time),
times and numbers beyond what Python or the databases can hold, NUL bytes and names REST
paths cannot address. Each gets a clear refusal (422 naming the field, CLI exit 2 with one
line) and changes nothing, on SQLite and PostgreSQL, through a real server or CLI process."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

from support.db import run_cli

from engine.storage.monitor_models import MetricRollup, MetricSample, MetricSeries

UTC = UTC
EDGE = "0001-01-01T00:00:00+14:00"  # becomes year 0 in UTC, which Python cannot hold


async def _cli(database, *args):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(run_cli, database, *args)


# --- pushed metric batches ------------------------------------------------------------------


async def test_bad_sample_in_a_batch_stores_nothing(api) -> None:  # type: ignore[no-untyped-def]
    async with api.client("responder") as c:
        for bad, field in [
            ({"series": "q", "value": 2, "at": EDGE}, "samples[1].at"),
            ({"series": "q", "value": 2, "at": "9999-12-31T23:59:59-14:00"}, "samples[1].at"),
            ({"series": "q", "value": "1e309"}, "samples[1].value"),
            ({"series": "q w", "value": 2}, "samples[1].series"),
        ]:
            text = json.dumps({"samples": [{"series": "q", "value": 1}, bad]}).replace('"1e309"', "1e309")
            r = await c.post("/api/metrics", content=text, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (bad, r.text)
            # Pydantic's own checks and the batch check name the sample the same way.
            assert r.json()["field"] == field, r.text
    assert await MetricSample.all().count() == 0 and await MetricRollup.all().count() == 0


async def test_a_retried_batch_stores_nothing_twice(api) -> None:  # type: ignore[no-untyped-def]
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    batch = [
        {"series": "jobs", "labels": {"queue": f"q{i % 7}"}, "value": float(i), "at": (start + timedelta(seconds=i)).isoformat()}
        for i in range(3000)
    ]
    async with api.client("responder") as c:
        first = await c.post("/api/metrics", json={"samples": batch})
        assert first.status_code == 201, first.text
        assert first.json() == {"stored": 3000, "duplicates": 0, "series": 7}
        # The client timed out and sends it again, plus one new sample, with another zone spelling.
        again = [{**s, "at": datetime.fromisoformat(s["at"]).astimezone(timezone(timedelta(hours=2))).isoformat()} for s in batch]
        again.append({"series": "jobs", "labels": {"queue": "q0"}, "value": 1.5, "at": (start + timedelta(seconds=3000)).isoformat()})
        second = await c.post("/api/metrics", json={"samples": again})
        assert second.status_code == 201, second.text
        assert second.json() == {"stored": 1, "duplicates": 3000, "series": 7}
    assert await MetricSample.all().count() == 3001
    # Rollups count each sample once, including the minute the new sample joined.
    series = await MetricSeries.get(key='jobs{queue="q0"}')
    rollups = await MetricRollup.filter(series_id=series.id).order_by("minute")
    values = [float(i) for i in range(0, 3000, 7)] + [1.5]
    assert sum(r.count for r in rollups) == len(values)
    assert abs(sum(r.mean * r.count for r in rollups) - sum(values)) < 1e-6
    last = rollups[-1]
    assert last.minute == start + timedelta(minutes=50) and (last.count, last.mean) == (1, 1.5)


async def test_cli_push_uses_the_same_idempotent_path(db, database) -> None:  # type: ignore[no-untyped-def]
    at = (datetime.now(UTC) - timedelta(minutes=3)).replace(microsecond=0).isoformat()
    for _ in range(2):
        proc = await _cli(database, "metrics", "push", "queue_depth", "4", "--at", at)
        assert proc.returncode == 0, proc.stderr
    assert "already stored" in proc.stdout
    assert await MetricSample.all().count() == 1
    rollup = await MetricRollup.get()
    assert rollup.count == 1 and rollup.mean == 4.0
    proc = await _cli(database, "metrics", "push", "queue_depth", "4", "--at", EDGE)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --at: ") and "out of range" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert await MetricSample.all().count() == 1


# --- times at the edge of the range ---------------------------------------------------------


async def test_edge_times_are_refused_naming_the_field(api) -> None:  # type: ignore[no-untyped-def]
    from engine.storage.models import Comment, Evidence, MaintenanceWindow

    async with api.client("admin") as c:
        key = (await c.post("/api/incidents", json={"title": "disk", "severity": "low"})).json()["key"]
        await c.post("/api/services", json={"name": "billing"})
        for edge in (EDGE, "9999-12-31T23:59:59-14:00", "1899-12-31T23:59:59Z"):
            for method, path, body, params, field in [
                ("GET", "/api/metrics/samples", None, {"series": "q", "since": edge}, "since"),
                ("GET", "/api/metrics/samples", None, {"series": "q", "until": edge}, "until"),
                ("GET", "/api/incidents", None, {"since": edge}, "since"),
                (
                    "POST",
                    "/api/maintenance",
                    {"title": "m", "starts_at": edge, "ends_at": "2030-01-01T00:00:00Z", "services": ["billing"]},
                    None,
                    "starts_at",
                ),
                (
                    "POST",
                    "/api/maintenance",
                    {"title": "m", "starts_at": "2030-01-01T00:00:00Z", "ends_at": edge, "services": ["billing"]},
                    None,
                    "ends_at",
                ),
                ("POST", f"/api/incidents/{key}/evidence", {"kind": "log", "content": "x", "range_from": edge}, None, "range_from"),
                ("POST", f"/api/incidents/{key}/evidence", {"kind": "log", "content": "x", "range_to": edge}, None, "range_to"),
                ("POST", f"/api/incidents/{key}/comments", {"content": "x", "timestamp": edge}, None, "timestamp"),
                ("POST", f"/api/incidents/{key}/postmortem/entries", {"at": edge, "text": "x"}, None, "at"),
            ]:
                r = await c.request(method, path, json=body, params=params)
                assert r.status_code == 422, (method, path, edge, r.status_code, r.text)
                assert r.json()["field"].split(".")[-1] == field and "out of range" in r.json()["message"], r.text
        for params, field in [
            ({"since": "0001-01-01", "until": "0001-01-02"}, "since"),
            ({"since": "9999-12-30", "until": "9999-12-31"}, "since"),
            ({"month": "9999-12"}, "month"),
            ({"month": "0001-01", "tz": "Pacific/Kiritimati"}, "month"),
        ]:
            r = await c.get("/api/analytics", params=params)
            assert r.status_code == 422 and r.json()["field"] == field, r.text
        r = await c.post(f"/api/incidents/{key}/followups", json={"group": "process_changes", "description": "x", "due_date": "9999-12-31"})
        assert r.status_code == 422 and r.json()["field"] == "due_date", r.text
    assert await MaintenanceWindow.all().count() == 0
    assert await Evidence.all().count() == 0 and await Comment.all().count() == 0


# --- numbers, durations and times on the command line ----------------------------------------

BIG = "99999999999999999999"


def test_cli_numbers_durations_and_times_are_bounded(migrated_database) -> None:  # type: ignore[no-untyped-def]
    for args, says in [
        (("maintenance", "end", BIG), "argument ID: '99999999999999999999' is out of range (1 to 2147483647)"),
        (("maintenance", "add", "--title", "x", "--for", "99999999999d"), "--for: '99999999999d' is too long (at most 36600 days)"),
        (("maintenance", "add", "--title", "x", "--start", EDGE), f"--start: '{EDGE}' is out of range (1900-01-01 to 9000-01-01)"),
        (
            ("maintenance", "add", "--title", "x", "--end", "9999-12-31T23:59:59-14:00"),
            "--end: '9999-12-31T23:59:59-14:00' is out of range (1900-01-01 to 9000-01-01)",
        ),
        (("metrics", "query", "q", "--limit", BIG), f"argument --limit: '{BIG}' is out of range (1 to 1000000)"),
        (("metrics", "query", "q", "--since", "99999999999d"), "--since: '99999999999d' is too long (at most 36600 days)"),
        (("demo", "--duration", "1e308"), "argument --duration: '1e308' is out of range (1 to 86400)"),
        (("incident", "list", "--limit", BIG), f"argument --limit: '{BIG}' is out of range (1 to 1000000)"),
        (("incident", "verify", "INC-1", BIG), f"argument step: '{BIG}' is out of range (1 to 1000)"),
        (("followups", "done", BIG), f"argument id: '{BIG}' is out of range (1 to 2147483647)"),
        (("oncall", "cancel-override", BIG), f"argument id: '{BIG}' is out of range (1 to 2147483647)"),
        (("report", "--month", "9999-12"), "--month: '9999-12' is out of range (1900 to 8999)"),
        (("report", "--since", "0001-01-01", "--until", "0001-01-02"), "--since: '0001-01-01' is out of range (1900-01-01 to 9000-01-01)"),
    ]:
        proc = run_cli(migrated_database, *args)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0] and "unexpected failure" not in lines[0], (args, proc.stderr)
    listed = run_cli(migrated_database, "maintenance", "list", "--all", "--json", check=True)
    assert json.loads(listed.stdout) == []


def test_report_on_the_first_and_last_months_a_user_may_give(migrated_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A report compares with the period before: for 1900-01 that is 1899-12, which once failed
    # the bound meant for typed months and was reported as if the user had typed it.
    config = tmp_path / "pulseguard.toml"
    for zone in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12"):  # the widest offsets either way
        config.write_text(f'[engine]\ntimezone = "{zone}"\n')
        for args, label, previous in [
            (("--month", "1900-01"), "1900-01", "1899-12"),
            (("--month", "8999-12"), "8999-12", "8999-11"),
            (("--since", "1900-01-01", "--until", "1900-01-10"), "1900-01-01 – 1900-01-10", "1899-12-22 – 1899-12-31"),
        ]:
            proc = run_cli(migrated_database, "report", *args, "--json", "--config", str(config))
            assert proc.returncode == 0, (zone, args, proc.stderr)
            report = json.loads(proc.stdout)
            assert (report["period"]["label"], report["previous_period"]["label"]) == (label, previous), (zone, args)
    proc = run_cli(migrated_database, "report", "--month", "1899-12")
    assert proc.returncode == 2 and proc.stderr == "error: --month: '1899-12' is out of range (1900 to 8999)\n", proc.stderr


async def test_rest_analytics_on_the_first_and_last_months(api) -> None:  # type: ignore[no-untyped-def]
    async with api.client("responder") as c:
        for params, previous in [
            ({"month": "1900-01"}, "1899-12"),
            ({"month": "1900-01", "tz": "Pacific/Kiritimati"}, "1899-12"),
            ({"month": "8999-12", "tz": "Etc/GMT+12"}, "8999-11"),
        ]:
            r = await c.get("/api/analytics", params=params)
            assert r.status_code == 200 and r.json()["previous_period"]["label"] == previous, (params, r.text)


# --- NUL bytes, names REST paths cannot address, unknown services ----------------------------


def test_nul_bytes_in_evidence_are_dropped_with_a_note(migrated_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run_cli(migrated_database, "incident", "create", "--title", "disk", "--severity", "low", check=True)
    log = tmp_path / "app.log"
    log.write_bytes(b"2026-01-01T10:00:01+00:00 start\x00\x00 worker\n2026-01-01T10:00:02+00:00 done\n")
    blob = tmp_path / "dump.bin"
    blob.write_bytes(b"head\x00tail")
    for args in (("--log", str(log), "--from", "2026-01-01T10:00:00Z", "--to", "2026-01-01T10:05:00Z"), ("--file", str(blob))):
        proc = run_cli(migrated_database, "incident", "evidence", "INC-1", *args)
        assert proc.returncode == 0, (args, proc.stderr)
    detail = json.loads(run_cli(migrated_database, "incident", "show", "INC-1", "--json", check=True).stdout)
    contents = [e["content"] for e in detail["evidence"]]
    assert all(c and "\x00" not in c for c in contents), contents
    assert any("start worker" in c for c in contents) and any("headtail" in c for c in contents)
    assert all("NUL byte" in e["description"] for e in detail["evidence"])


async def test_nul_in_titles_and_names_is_refused_on_every_backend(db) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from engine.core.domain import InvalidInput
    from engine.incidents import services
    from engine.storage.models import Incident

    for call, field in [
        (services.create_incident(title="a\x00b", severity="low", actor="tester"), "title"),
        (services.create_incident(title="ok", description="x\x00", severity="low", actor="tester"), "description"),
        (services.create_incident(title="ok", severity="low", actor="te\x00ster"), "actor"),
    ]:
        with pytest.raises(InvalidInput) as info:
            await call
        assert info.value.field == field
    assert await Incident.all().count() == 0


async def test_slash_names_and_unknown_services_are_refused(api, database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.storage.models import MaintenanceWindow, Service
    from engine.storage.rest_models import ApiToken

    async with api.client("admin") as c:
        for path, body in [("/api/tokens", {"name": "ci/bot", "role": "viewer"}), ("/api/services", {"name": "web/app"})]:
            r = await c.post(path, json=body)
            assert r.status_code == 422 and r.json()["field"] == "name" and "'/'" in r.json()["message"], r.text
        r = await c.post(
            "/api/maintenance",
            json={"title": "m", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z", "services": ["nowhere"]},
        )
        assert r.status_code == 422 and r.json()["field"] == "services" and "nowhere" in r.json()["message"], r.text
    proc = await _cli(database, "token", "create", "ci/bot", "--role", "viewer")
    assert proc.returncode == 2 and "'/'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = await _cli(database, "maintenance", "add", "--title", "m", "--service", "nowhere", "--for", "1h")
    assert proc.returncode == 2 and "unknown service 'nowhere'" in proc.stderr, proc.stderr
    assert await ApiToken.filter(name="ci/bot").count() == 0 and await Service.all().count() == 0
    assert await MaintenanceWindow.all().count() == 0


# --- numbers in the configuration ------------------------------------------------------------


def test_config_check_refuses_numbers_that_would_break_later(sqlite_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    trigger = '[triggers.t]\ncondition = "x > 1"\nseverity = "low"\n'
    target = '[[targets]]\nname = "a"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
    for text, field in [
        ("[escalation_policy.critical]\nescalate_after_minutes = 1e300\n", "escalation_policy.critical.escalate_after_minutes"),
        ("[escalation_policy.critical]\nescalate_after_minutes = inf\n", "escalation_policy.critical.escalate_after_minutes"),
        ("[escalation_policy.high]\ndigest_interval_minutes = nan\n", "escalation_policy.high.digest_interval_minutes"),
        (trigger + "duration_minutes = inf\n", "triggers.t.duration_minutes"),
        (trigger + "recovery_minutes = 1e300\n", "triggers.t.recovery_minutes"),
        (target + 'interval = "99999999999999d"\n', "targets[0].interval"),
    ]:
        path = tmp_path / "pulseguard.toml"
        path.write_text(text)
        proc = run_cli(sqlite_database, "config", "check", str(path))
        assert proc.returncode == 2, (text, proc.stdout, proc.stderr)
        assert f"{field}: " in proc.stderr and "Traceback" not in proc.stderr, (text, proc.stderr)


async def test_upgrade_keeps_one_of_samples_stored_twice(database) -> None:  # type: ignore[no-untyped-def]
    from tortoise import Tortoise
    from tortoise.backends.base import executor

    from engine.storage.db import close_database, migrate_database, open_database

    await migrate_database(database, target="0006_stated_times_analysis")
    await close_database()
    executor.EXECUTOR_CACHE.clear()
    await Tortoise.init(config=database.tortoise_config())
    try:
        await Tortoise.get_connection("default").execute_script(
            "INSERT INTO metric_series (target, key, name, labels, source, created_at)"
            " VALUES ('', 'q', 'q', '{}', 'push', '2026-01-01 10:00:00+00:00');"
            "INSERT INTO metric_sample (series_id, at, value) VALUES (1, '2026-01-01 10:00:00+00:00', 1.0);"
            "INSERT INTO metric_sample (series_id, at, value) VALUES (1, '2026-01-01 10:00:00+00:00', 1.0);"
            "INSERT INTO metric_sample (series_id, at, value) VALUES (1, '2026-01-01 10:00:01+00:00', 2.0);"
        )
    finally:
        await close_database()
    await open_database(database)  # upgrades: the retried push's copy goes, the constraint holds
    try:
        assert sorted(await MetricSample.all().values_list("value", flat=True)) == [1.0, 2.0]
        from engine.monitor.metrics import check_sample, store_pushed

        at = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
        result = await store_pushed([check_sample("q", 1.0, at)])
        assert result["duplicates"] == 1 and await MetricSample.all().count() == 2
    finally:
        await close_database()
