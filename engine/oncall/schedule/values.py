"""Schedule values written as text in the configuration: durations, clock times, weekdays, time
zones and instants. Each parser raises InvalidInput naming the field it was given."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.domain import InvalidInput
from engine.core.durations import duration_seconds

UTC = UTC
DAY = timedelta(days=1)
WEEKDAYS = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def parse_duration(text: Any, field_name: str) -> timedelta:
    """'90s', '15m', '12h', '3d', '2w', '1h30m' -> timedelta (engine.core.durations); a bare
    number means minutes."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return timedelta(minutes=float(text))
    raw = str(text).strip().lower().replace(" ", "")
    if raw and re.fullmatch(r"\d+(\.\d+)?", raw):
        return timedelta(minutes=float(raw))
    seconds = duration_seconds(raw)
    if seconds is None:
        raise InvalidInput(field_name, f"{text!r} is not a duration (expected e.g. 30s, 15m, 12h, 3d, 2w)")
    return timedelta(seconds=seconds)


def parse_clock(text: str, field_name: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(text).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InvalidInput(field_name, f"{text!r} is not a time of day (expected HH:MM, e.g. 09:00)")
    return time(int(m.group(1)), int(m.group(2)))


def parse_weekday(text: str, field_name: str) -> int:
    day = WEEKDAYS.get(str(text).strip().lower())
    if day is None:
        raise InvalidInput(field_name, f"{text!r} is not a weekday (expected monday … sunday)")
    return day


def parse_zone(name: Any, field_name: str) -> ZoneInfo:
    if isinstance(name, ZoneInfo):
        return name
    try:
        return ZoneInfo(str(name).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(field_name, f"{name!r} is not a known time zone (expected e.g. Europe/Amsterdam or UTC)") from None


def parse_instant(value: Any, tz: ZoneInfo | timezone, field_name: str) -> datetime:
    """ISO text or a datetime; a naive value is wall-clock time in `tz`. Returns UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time(0))
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise InvalidInput(field_name, f"{value!r} is not a date and time (expected e.g. 2025-03-30T09:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(UTC)
