"""The monitoring commands as a user runs them: targets, metrics push/query, maintenance
add/list/end, demo; bad input gets one clear line and changes nothing."""

from __future__ import annotations

import json
import re
from datetime import UTC
from pathlib import Path

import pytest
from support.db import run_cli

from engine.storage.models import MaintenanceWindow
from engine.storage.monitor_models import MetricSample


def test_metrics_push_and_query(db, database) -> None:  # type: ignore[no-untyped-def]
    proc = run_cli(database, "metrics", "push", 'queue_depth{job="mail"}', "42", check=True)
    assert proc.stdout.startswith('stored queue_depth{job="mail"} = 42 at ')
    run_cli(database, "metrics", "push", 'queue_depth{job="mail"}', "58.5", "--at", "2m", check=True)
    proc = run_cli(database, "metrics", "query", 'queue_depth{job="mail"}', "--since", "10m", "--json", check=True)
    points = json.loads(proc.stdout)
    assert [p["value"] for p in points] == [58.5, 42.0]  # oldest first
    proc = run_cli(database, "metrics", "query", 'queue_depth{job="mail"}', "--since", "10m", "--resolution", "minute", check=True)
    assert "MEAN" in proc.stdout and "COUNT" in proc.stdout
    proc = run_cli(database, "metrics", "query", "nothing_here", check=True)
    assert proc.stdout.strip() == "no series 'nothing_here' (for a probe series such as response_time, give --target)"


def test_metrics_bad_input_is_one_line_and_writes_nothing(db, database) -> None:  # type: ignore[no-untyped-def]
    for args, message in [
        (("metrics", "push", "queue depth", "1"), "error: SERIES: 'queue depth' is not a series name"),
        (("metrics", "push", "queue", "lots"), "error: VALUE: 'lots' is not a number"),
        (("metrics", "push", "queue", "nan"), "error: VALUE: 'nan' is not a finite number"),
        (("metrics", "push", "queue", "1", "--at", "2999-01-01T00:00Z"), "error: --at: 2999-01-01T00:00:00+00:00 is in the future"),
        (("metrics", "query", "queue depth"), "error: SERIES: 'queue depth' is not a series name"),
        (("metrics", "push", "queue", "1", "--at", "yesterday-ish"), "error: --at: 'yesterday-ish' is not a time"),
        (("metrics", "query", "queue", "--since", "soon"), "error: --since: 'soon' is not a time"),
        # A mistyped target is named, not reported as a target without samples.
        (("metrics", "query", "response_time", "--target", "api-helth"), "error: --target: no target 'api-helth'"),
    ]:
        proc = run_cli(database, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith(message), (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


async def test_nothing_was_pushed_by_refusals(db, database) -> None:  # type: ignore[no-untyped-def]
    proc = await _run(database, "metrics", "push", "queue", "inf")
    assert proc.returncode == 2
    assert await MetricSample.all().count() == 0


async def _run(database, *args, **env):  # type: ignore[no-untyped-def]
    import asyncio

    return await asyncio.to_thread(run_cli, database, *args, **env)


@pytest.mark.slow
async def test_maintenance_add_list_end(db, database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "pulseguard.toml"
    config.write_text(
        '[[services]]\nname = "payments"\n\n[[targets]]\nname = "pay-api"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\nservice = "payments"\n'
    )
    proc = await _run(
        database, "maintenance", "add", "--title", "DB upgrade", "--service", "payments", "--for", "2h", "--config", str(config)
    )
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"maintenance #1 \(scheduled\) .* → .*: DB upgrade \[service payments\]", proc.stdout)
    # A misspelt target is refused (it was stored with a warning, and covered nothing), naming the known ones.
    proc = await _run(
        database, "maintenance", "add", "--title", "hotfix", "--target", "nope", "--emergency", "--for", "30m", "--config", str(config)
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --target: unknown target 'nope' (known targets: pay-api)"
    assert await MaintenanceWindow.all().count() == 1
    proc = await _run(
        database, "maintenance", "add", "--title", "hotfix", "--target", "pay-api", "--emergency", "--for", "30m", "--config", str(config)
    )
    assert proc.returncode == 0, proc.stderr
    proc = await _run(database, "maintenance", "list", "--json")
    rows = json.loads(proc.stdout)
    assert [(r["title"], r["kind"], r["services"], r["targets"]) for r in rows] == [
        ("DB upgrade", "scheduled", ["payments"], []),
        ("hotfix", "emergency", [], ["pay-api"]),
    ]
    proc = await _run(database, "maintenance", "list")
    assert "active" in proc.stdout and "DB upgrade" in proc.stdout
    proc = await _run(database, "maintenance", "end", "1")
    assert proc.returncode == 0 and proc.stdout.strip() == "maintenance #1 ended: DB upgrade"
    proc = await _run(database, "maintenance", "end", "1")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: maintenance window 1 has already ended"
    proc = await _run(database, "maintenance", "list")
    assert "DB upgrade" not in proc.stdout and "hotfix" in proc.stdout
    window = await MaintenanceWindow.get(id=1)
    assert window.ended_at is not None

    before = await MaintenanceWindow.all().count()
    for args, message in [
        (("--title", "x", "--service", "payments"), "error: give the end of the window with --end T or --for DURATION"),
        (("--title", "x", "--for", "1h"), "error: name what the window covers with --service NAME or --target NAME"),
        (("--title", "x", "--service", "payments", "--for", "soon"), "error: --for: 'soon' is not a duration"),
        # Ending before it starts, both ahead: named by --end, with both times.
        (
            ("--title", "x", "--service", "payments", "--start", "2099-01-01T12:00Z", "--end", "2099-01-01T10:00Z"),
            "error: --end: '2099-01-01T10:00Z' (2099-01-01 ",
        ),
        (("--title", "x", "--service", "bad name!", "--for", "1h"), "error: --service: 'bad name!' is not a valid name"),
        # Wholly in the past: surely a typo (the year, a day), named by the option to fix.
        (
            ("--title", "x", "--service", "payments", "--start", "2020-01-01T10:00Z", "--end", "2020-01-01T12:00Z"),
            "error: --end: '2020-01-01T12:00Z' (2020-01-01 ",  # then the time in the display zone
        ),
        (
            ("--title", "x", "--service", "payments", "--start", "2020-01-01T10:00Z", "--for", "2h"),
            "error: --start: '2020-01-01T10:00Z' with --for 2h ends at 2020-01-01 ",
        ),
        (("--title", "x", "--service", "payments", "--start", "3h", "--end", "1m"), "error: --end: '1m' ("),
        # Over by now with --start left out (now) or after it: it read "ends: must be after the start".
        (("--title", "x", "--service", "payments", "--end", "2020-01-01T12:00Z"), "error: --end: '2020-01-01T12:00Z' (2020-01-01 "),
        (("--title", "x", "--service", "payments", "--end", "1h"), "error: --end: '1h' ("),
        (("--title", "x", "--service", "payments", "--end", "now"), "error: --end: 'now' ("),  # was "ends: …" (read a moment late)
        (("--title", "x", "--service", "payments", "--start", "2h", "--end", "3h"), "error: --end: '3h' ("),
    ]:
        proc = await _run(database, "maintenance", "add", *args)
        assert proc.returncode == 2 and proc.stderr.startswith(message), (args, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        if "2099" in message:
            assert "is not after --start '2099-01-01T12:00Z' (2099-01-01 " in proc.stderr, proc.stderr
            assert proc.stderr.endswith("): a maintenance window must end after it starts\n"), proc.stderr
        elif message.startswith(("error: --end", "error: --start")):
            assert "has already passed: a maintenance window must end in the future" in proc.stderr, proc.stderr
    assert await MaintenanceWindow.all().count() == before
    # Started earlier, ends later: an emergency declared once the work is under way is fine.
    proc = await _run(
        database, "maintenance", "add", "--title", "late", "--service", "payments", "--start", "1h", "--for", "2h", "--config", str(config)
    )
    assert proc.returncode == 0, proc.stderr


async def test_targets_lists_configured_and_probed_targets(db, database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime

    from engine.storage.monitor_models import MonitorTarget

    config = tmp_path / "pulseguard.toml"
    config.write_text(
        '[[targets]]\nname = "api"\nkind = "http"\nurl = "http://127.0.0.1:9/"\n\n'
        '[[targets]]\nname = "db"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 5432\n'
    )
    await MonitorTarget.create(
        name="api",
        kind="http",
        address="http://127.0.0.1:9/",
        interval=30,
        timeout=10,
        state="down",
        last_at=datetime.now(UTC),
        last_ok=False,
        last_latency_ms=1.5,
        last_error="connection refused",
        updated_at=datetime.now(UTC),
    )
    proc = await _run(database, "targets", "--json", "--config", str(config))
    data = json.loads(proc.stdout)
    assert data["engine"] is None
    by_name = {t["name"]: t for t in data["targets"]}
    assert by_name["api"]["state"] == "down" and by_name["api"]["last_error"] == "connection refused"
    assert by_name["db"]["state"] == "unknown" and by_name["db"]["address"] == "127.0.0.1:5432"
    proc = await _run(database, "targets", "--config", str(config))
    assert "connection refused" in proc.stdout and "never probed" in proc.stdout
    assert "no data (was down)" in proc.stdout  # no engine runs: the last state is history, not "down"
    assert "no engine has run on this database yet" in proc.stdout


async def test_targets_says_a_disabled_target_is_disabled(db, database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """enabled = false is not "never probed (no engine has run with this target)": an engine
    that runs will not probe it either."""
    config = tmp_path / "pulseguard.toml"
    config.write_text('[[targets]]\nname = "old-api"\nkind = "http"\nurl = "http://127.0.0.1:9/"\nenabled = false\n')
    proc = await _run(database, "targets", "--json", "--config", str(config))
    (row,) = json.loads(proc.stdout)["targets"]
    assert row["state"] == "disabled" and row["active"] is False
    assert row["last_error"] == "not probed: enabled = false in the configuration"
    proc = await _run(database, "targets", "--config", str(config))
    assert "disabled" in proc.stdout and "never probed" not in proc.stdout


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    import subprocess
    import sys

    from support.db import REPO

    proc = subprocess.run(
        [sys.executable, "-m", "pulseguard_tui", "demo", "--duration", "7"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "demo: flaky service on http://127.0.0.1:" in lines[0]
    folder = Path(re.search(r"database (\S+)/pulseguard\.db", lines[0]).group(1))
    assert any("service: healthy" in line for line in lines)
    assert any(line.endswith("target checkout-api is up") for line in lines)
    assert any("targets: checkout-api up" in line for line in lines)
    assert lines[-1].endswith("demo: stopping")
    assert not folder.exists()  # the temporary database is removed unless --keep


def test_demo_help_does_not_offer_the_db_it_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    """`pulseguard demo --help` listed --db, which the demo then refuses; it no longer does,
    while every other command (whose parsers share the same --db option) still lists it."""
    from pulseguard_tui.cli import main

    def help_of(*argv: str) -> str:
        with pytest.raises(SystemExit) as exit:
            main([*argv, "--help"])
        assert exit.value.code == 0
        return capsys.readouterr().out

    demo = help_of("demo")
    assert "--db" not in demo and "--duration SECONDS" in demo and "--config CONFIG" in demo
    for argv in (["incident", "list"], ["report"], ["maintenance", "add"], []):
        assert "--db DB" in help_of(*argv), argv


def test_demo_refuses_a_db_it_would_not_use(tmp_path: Path) -> None:
    """The demo always runs on its own throwaway database: a --db given to it is refused (it had
    been ignored, the demo's data going elsewhere), and nothing is created there."""
    import subprocess
    import sys

    from support.db import REPO

    wanted = tmp_path / "demo.db"
    for argv in (["demo", "--db", str(wanted), "--duration", "1"], ["--db", str(wanted), "demo", "--keep", "--duration", "1"]):
        proc = subprocess.run([sys.executable, "-m", "pulseguard_tui", *argv], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
        assert proc.stderr.strip() == (
            "error: the demo runs on a throwaway database of its own and does not take --db (--keep keeps it and prints its path)"
        )
        assert proc.stdout == ""
    assert not wanted.exists()


@pytest.mark.slow
async def test_typed_times_are_in_the_engine_time_zone_across_a_dst_change(db, database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A window typed as 01:30-03:30 on the night clocks spring forward in [engine] timezone is
    that night's 01:30 CET to 03:30 CEST, as `list` shows it back (on a UTC server it was
    taken as UTC and shown two hours off); 02:30 does not exist that night and is refused."""
    from datetime import datetime, timedelta

    # Next year's spring-forward night (the last Sunday of March): a window must end in the future.
    year = datetime.now(UTC).year + 1
    night = datetime(year, 3, 31) - timedelta(days=(datetime(year, 3, 31).weekday() + 1) % 7)
    day = f"{night:%Y-%m-%d}"
    config = tmp_path / "pulseguard.toml"
    config.write_text('[engine]\ntimezone = "Europe/Amsterdam"\n\n[[services]]\nname = "payments"\n')
    common = ("--service", "payments", "--config", str(config))
    proc = await _run(
        database,
        "maintenance",
        "add",
        "--title",
        "DB upgrade",
        "--start",
        f"{day}T01:30",
        "--end",
        f"{day}T03:30",
        *common,
        TZ="UTC",
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{day} 01:30 CET → {day} 03:30 CEST" in proc.stdout
    window = await MaintenanceWindow.get(title="DB upgrade")
    start = night.replace(hour=0, minute=30, tzinfo=UTC)
    assert window.starts_at == start and window.ends_at == start + timedelta(hours=1)
    proc = await _run(database, "maintenance", "add", "--title", "skipped", "--start", f"{day}T02:30", "--for", "1h", *common, TZ="UTC")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"error: --start: '{day}T02:30' does not exist in Europe/Amsterdam (the clocks skip it that day); give another time or a zone"
    )
    assert not await MaintenanceWindow.filter(title="skipped").exists()
    proc = await _run(
        database,
        "silence",
        "add",
        "service=payments",
        "--start",
        "2027-03-27T22:00",
        "--until",
        "2027-03-28T04:00",
        "-c",
        "x",
        "--config",
        str(config),
        TZ="UTC",
    )
    assert proc.returncode == 0 and "until 2027-03-28 04:00 CEST" in proc.stdout, proc.stderr
