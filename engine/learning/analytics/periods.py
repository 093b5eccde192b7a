"""Report periods: a calendar month or a range of days in a time zone, as [since, until)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.domain import EARLIEST_TIME, LATEST_TIME, InvalidInput

MAX_DAYS = 3660  # ten years: a longer range is almost certainly a typo


@dataclass(frozen=True)
class Period:
    """A half-open time range [since, until) with a label; `month` marks a calendar month."""

    since: datetime
    until: datetime
    label: str
    month: bool = False
    tz: str = "UTC"

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    def previous(self) -> Period:
        """The calendar month before a month; otherwise the same length just before."""
        zone = zone_named(self.tz)
        if self.month:
            start = self.since.astimezone(zone).date()
            prev = (start.replace(day=1) - timedelta(days=1)).replace(day=1)
            return month_period(f"{prev:%Y-%m}", self.tz)
        length = self.until - self.since
        since = self.since - length
        first = since.astimezone(zone).date()
        last = (self.since - timedelta(microseconds=1)).astimezone(zone).date()
        return Period(since, self.since, f"{first} – {last}", False, self.tz)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "days": round(self.days, 4),
            "timezone": self.tz,
        }


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone {name!r} (expected an IANA name like Europe/Paris)") from None


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def month_period(text: str, tz: str = "UTC") -> Period:
    """'2026-03' → March 2026 in the time zone `tz`."""
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", text or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InvalidInput("month", f"{text!r} is not a month (expected YYYY-MM, e.g. 2026-03)")
    year, month = int(m.group(1)), int(m.group(2))
    if not EARLIEST_TIME.year <= year < LATEST_TIME.year:
        raise InvalidInput("month", f"{text!r} is out of range ({EARLIEST_TIME.year} to {LATEST_TIME.year - 1})")
    zone = zone_named(tz)
    first = date(year, month, 1)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return Period(_midnight(first, zone), _midnight(following, zone), f"{year:04d}-{month:02d}", True, tz)


def range_period(since: date, until: date, tz: str = "UTC") -> Period:
    """From the start of `since` to the end of `until` (both days included), in `tz`."""
    if until < since:
        raise InvalidInput("until", f"{until} is before --since {since}")
    if (until - since).days >= MAX_DAYS:
        raise InvalidInput("since", f"the range spans {(until - since).days + 1} days (at most {MAX_DAYS})")
    zone = zone_named(tz)
    return Period(_midnight(since, zone), _midnight(until + timedelta(days=1), zone), f"{since} – {until}", False, tz)


def current_month(tz: str = "UTC", now: datetime | None = None) -> Period:
    local = (now or datetime.now(UTC)).astimezone(zone_named(tz))
    return month_period(f"{local:%Y-%m}", tz)
