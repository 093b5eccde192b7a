"""Time stamps of log lines and clock times on the command line.

A log line's time is read from its start, in any of
    2026-12-04T10:00:01.123+01:00 …  /  [2026-12-04 10:00:01,123] …    ISO 8601 (zone optional)
    <34>1 2026-12-04T10:00:01.003Z host app 42 ID47 - …                 syslog, RFC 5424
    <34>Dec  4 10:00:01 host app[42]: …  /  Dec  4 10:00:01 host …      syslog, RFC 3164 (PRI optional)
Times without a zone are in `zone` (the machine's local zone by default, where the log was
written). RFC 3164 has no year: the line gets the most recent year that does not put it in the
future (a December line read in January is last year's).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, tzinfo

ISO = re.compile(r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)")
RFC5424 = re.compile(r"^<\d{1,3}>\d{1,2} (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})) ")
RFC3164 = re.compile(r"^(?:<\d{1,3}>)?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ")
MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
# A line up to this far "ahead" is clock or zone skew, not last year's.
YEAR_SLACK = timedelta(days=1)
CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _local(zone: tzinfo | None) -> tzinfo:
    return zone or datetime.now().astimezone().tzinfo  # type: ignore[return-value]


def _iso(text: str, zone: tzinfo) -> datetime | None:
    text = text.replace(",", ".").replace("Z", "+00:00")
    # Python < 3.11-style fractions of more than 6 digits: keep microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.replace(tzinfo=zone) if ts.tzinfo is None else ts


def line_time(line: str, now: datetime, zone: tzinfo | None = None) -> datetime | None:
    """When a log line says it was written, or None for a line without a time stamp (a
    continuation line such as a stack trace)."""
    zone = _local(zone)
    m = ISO.match(line)
    if m:
        return _iso(m.group(1), zone)
    m = RFC5424.match(line)
    if m:
        return _iso(m.group(1), zone)
    m = RFC3164.match(line)
    if m and m.group(1) in MONTHS:
        month, day = MONTHS[m.group(1)], int(m.group(2))
        hour, minute, second = int(m.group(3)), int(m.group(4)), int(m.group(5))
        reference = now.astimezone(zone)
        for year in (reference.year, reference.year - 1, reference.year - 2, reference.year - 3, reference.year - 4):
            try:
                ts = datetime(year, month, day, hour, minute, second, tzinfo=zone)
            except ValueError:  # 29 February of a year without one: try an earlier year
                continue
            if ts <= now + YEAR_SLACK:
                return ts
    return None


def clock_start(text: str, now: datetime, zone: tzinfo | None = None) -> datetime | None:
    """`--from 10:00`: the most recent 10:00 that is not in the future (today, or yesterday
    while today's is still to come). None when `text` is not a clock time."""
    clock = _clock(text)
    if clock is None:
        return None
    zone = _local(zone)
    today = now.astimezone(zone).date()
    begin = datetime.combine(today, clock, zone)
    return begin if begin <= now else datetime.combine(today - timedelta(days=1), clock, zone)


def clock_end(text: str, start: datetime, zone: tzinfo | None = None) -> datetime | None:
    """`--to 10:15`: the first 10:15 at or after `start` (so 23:50 to 00:10 spans midnight).
    None when `text` is not a clock time."""
    clock = _clock(text)
    if clock is None:
        return None
    zone = _local(zone)
    day = start.astimezone(zone).date()
    end = datetime.combine(day, clock, zone)
    return end if end >= start else datetime.combine(day + timedelta(days=1), clock, zone)


def _clock(text: str) -> time | None:
    m = CLOCK.match((text or "").strip())
    if not m:
        return None
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return time(hour, minute, second)
