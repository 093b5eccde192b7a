"""`pulseguard incident evidence --log`: syslog lines (RFC 3164 and RFC 5424) mixed with ISO
lines and continuation lines in real files, and clock times such as the README's
`--from 10:00 --to 10:15` in the local time zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.db import run_cli

from engine.core.logtime import clock_end, clock_start, line_time

ZONE = "Asia/Kolkata"  # +05:30: a local zone that is neither UTC nor a whole hour off
TZ = ZoneInfo(ZONE)


def rfc3164(at: datetime, rest: str, pri: bool = False) -> str:
    stamp = f"{at:%b} {at.day:>2} {at:%H:%M:%S}"
    return f"{'<34>' if pri else ''}{stamp} web-1 {rest}\n"


def rfc5424(at: datetime, rest: str) -> str:
    return f"<165>1 {at.astimezone(UTC).isoformat(timespec='milliseconds').replace('+00:00', 'Z')} web-1 app 42 ID47 - {rest}\n"


def iso(at: datetime, rest: str) -> str:
    return f"{at.isoformat(timespec='seconds')} {rest}\n"


def test_line_times_of_each_format() -> None:
    now = datetime(2027, 1, 2, 9, 0, tzinfo=TZ)
    assert line_time("Dec 31 23:59:58 web-1 cron[7]: tick\n", now, TZ) == datetime(2026, 12, 31, 23, 59, 58, tzinfo=TZ)
    assert line_time("<13>Jan  2 08:59:00 web-1 su: ok\n", now, TZ) == datetime(2027, 1, 2, 8, 59, tzinfo=TZ)
    # Most recent past: a leap day read in 2027 is 2024's.
    assert line_time("Feb 29 12:00:00 web-1 x: y\n", now, TZ) == datetime(2024, 2, 29, 12, tzinfo=TZ)
    assert line_time("<165>1 2027-01-02T03:25:00.123456789Z host app - - - msg\n", now, TZ) == datetime(
        2027, 1, 2, 3, 25, 0, 123456, tzinfo=UTC
    )
    assert line_time("[2027-01-02 08:00:00,250] WARN slow\n", now, TZ) == datetime(2027, 1, 2, 8, 0, 0, 250000, tzinfo=TZ)
    for other in (
        "    at com.example.Main(Main.java:10)\n",
        "Traceback (most recent call last):\n",
        "Foo 12 10:00:00 not a month\n",
        "<165>1 - host app - - - nil time stamp\n",
    ):
        assert line_time(other, now, TZ) is None


def test_clock_times_are_the_most_recent_past() -> None:
    morning = datetime(2026, 12, 4, 9, 0, tzinfo=TZ)
    start = clock_start("10:00", morning, TZ)
    assert start == datetime(2026, 12, 3, 10, 0, tzinfo=TZ)  # today's 10:00 is still to come
    assert clock_end("10:15", start, TZ) == datetime(2026, 12, 3, 10, 15, tzinfo=TZ)
    later = datetime(2026, 12, 4, 10, 5, tzinfo=TZ)
    start = clock_start("10:00", later, TZ)
    assert (start, clock_end("10:15", start, TZ)) == (datetime(2026, 12, 4, 10, tzinfo=TZ), datetime(2026, 12, 4, 10, 15, tzinfo=TZ))
    night = datetime(2026, 12, 4, 0, 30, tzinfo=TZ)
    start = clock_start("23:50", night, TZ)
    assert (start, clock_end("00:10", start, TZ)) == (datetime(2026, 12, 3, 23, 50, tzinfo=TZ), datetime(2026, 12, 4, 0, 10, tzinfo=TZ))
    assert clock_start("25:00", night, TZ) is None and clock_start("2026-12-04T10:00", night, TZ) is None


def _evidence(database, *args: str) -> dict:
    proc = run_cli(database, "incident", "evidence", "INC-1", *args, TZ=ZONE)
    assert proc.returncode == 0, proc.stderr
    detail = json.loads(run_cli(database, "incident", "show", "INC-1", "--json", check=True).stdout)
    return detail["evidence"][-1]


@pytest.mark.slow
def test_mixed_syslog_iso_and_continuation_lines_by_clock_time(sqlite_database, tmp_path) -> None:
    run_cli(sqlite_database, "incident", "create", "--title", "Checkout errors", "--severity", "high", check=True)
    now = datetime.now(TZ).replace(second=0, microsecond=0)
    start, end = now - timedelta(minutes=30), now - timedelta(minutes=15)
    log = tmp_path / "app.log"
    log.write_text(
        iso(start - timedelta(minutes=10), "INFO before the range")
        + rfc3164(start - timedelta(minutes=1), "app[42]: before, syslog")
        + rfc3164(start + timedelta(minutes=2), "app[42]: ERROR db timeout", pri=True)
        + "    at db.pool.acquire(pool.py:88)\n"
        + rfc5424(start + timedelta(minutes=5), "connection refused")
        + iso(start + timedelta(minutes=7), "WARN retrying")
        + "Traceback (most recent call last):\n"
        + rfc3164(end + timedelta(minutes=1), "app[42]: after the range")
        + "    continuation of a line outside\n"
        + rfc5424(end + timedelta(minutes=3), "after, 5424")
    )
    evidence = _evidence(sqlite_database, "--log", str(log), "--from", f"{start:%H:%M}", "--to", f"{end:%H:%M}")
    assert evidence["content"].splitlines() == [
        rfc3164(start + timedelta(minutes=2), "app[42]: ERROR db timeout", pri=True).rstrip("\n"),
        "    at db.pool.acquire(pool.py:88)",
        rfc5424(start + timedelta(minutes=5), "connection refused").rstrip("\n"),
        iso(start + timedelta(minutes=7), "WARN retrying").rstrip("\n"),
        "Traceback (most recent call last):",
    ]
    assert datetime.fromisoformat(evidence["range_from"]) == start
    assert datetime.fromisoformat(evidence["range_to"]) == end


@pytest.mark.slow
def test_the_readme_example_from_10_00_to_10_15(sqlite_database, tmp_path) -> None:
    run_cli(sqlite_database, "incident", "create", "--title", "Checkout errors", "--severity", "high", check=True)
    now = datetime.now(TZ)
    day = now.date() if now.time() >= time(10, 0) else now.date() - timedelta(days=1)
    ten = datetime.combine(day, time(10, 0), TZ)
    log = tmp_path / "app.log"
    log.write_text(
        rfc3164(ten - timedelta(minutes=5), "app: 09:55, outside")
        + rfc3164(ten + timedelta(minutes=1), "app: ERROR at 10:01")
        + iso(ten + timedelta(minutes=3), "ERROR at 10:03")
        + rfc3164(ten - timedelta(days=1, minutes=-5), "app: the day before at 10:05, outside")
    )
    evidence = _evidence(sqlite_database, "--log", str(log), "--from", "10:00", "--to", "10:15")
    assert evidence["content"] == rfc3164(ten + timedelta(minutes=1), "app: ERROR at 10:01") + iso(
        ten + timedelta(minutes=3), "ERROR at 10:03"
    )
    assert datetime.fromisoformat(evidence["range_from"]) == ten
    assert datetime.fromisoformat(evidence["range_to"]) == ten + timedelta(minutes=15)

    proc = run_cli(sqlite_database, "incident", "evidence", "INC-1", "--log", str(log), "--from", "25:00", "--to", "10:15", TZ=ZONE)
    assert proc.returncode == 2 and "--from" in proc.stderr and "Traceback" not in proc.stderr
