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
    def first_day(self) -> date:
        return self.since.astimezone(zone_named(self.tz)).date()

    @property
    def days(self) -> int:
        """Calendar days in the zone: a month with a summer-time change still has 31, not 31.04."""
        return (self.until.astimezone(zone_named(self.tz)).date() - self.first_day).days

    def days_begun(self, now: datetime) -> int:
        """The period's calendar days that have begun by `now`: all once it is over, none before
        it starts, and of the current month its days so far, today included (a rate over the
        whole month made the 7th's 8 incidents 0.26 a day, and the trend "decreasing")."""
        if now >= self.until:
            return self.days
        if now < self.since:
            return 0
        return (now.astimezone(zone_named(self.tz)).date() - self.first_day).days + 1

    def previous(self) -> Period:
        """The calendar month before a month; otherwise as many days just before."""
        first = self.first_day
        if self.month:
            prev = (first.replace(day=1) - timedelta(days=1)).replace(day=1)
            # Not month_period: its bounds are for what a user types, and the month before
            # the first one a user may ask for (1900-01) is 1899-12.
            return _month(prev.year, prev.month, self.tz)
        # Counted in days, not hours: across a summer-time change the previous range still
        # starts at a midnight (the same length in hours would start at 23:00 or 01:00).
        return range_period(first - timedelta(days=self.days), first - timedelta(days=1), self.tz)

    def week_starts(self) -> list[datetime]:
        """The starts of seven-day buckets from the first day (the last may be shorter), each
        at midnight in the zone."""
        zone = zone_named(self.tz)
        return [_midnight(self.first_day + timedelta(days=d), zone).astimezone(zone) for d in range(0, self.days, 7)] or [
            self.since.astimezone(zone)
        ]

    def offset_changes(self) -> list[tuple[datetime, int]]:
        """Where the zone's UTC offset changes inside the period: (instant, seconds by which the
        offset from then on differs from the offset at the period's start)."""
        zone = zone_named(self.tz)

        def offset(t: datetime) -> timedelta:
            return t.astimezone(zone).utcoffset() or timedelta(0)

        start = offset(self.since)
        out: list[tuple[datetime, int]] = []
        t, current = self.since, start
        while t < self.until:
            nxt = min(t + timedelta(days=1), self.until)
            if offset(nxt) != current:
                # offset(lo) == current != offset(hi): zones change on whole seconds, find it.
                lo, hi = int(t.timestamp()), int(nxt.timestamp())
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if offset(datetime.fromtimestamp(mid, UTC)) == current else (lo, mid)
                change = datetime.fromtimestamp(hi, UTC)
                current = offset(change)
                if change < self.until:
                    out.append((change, int((current - start).total_seconds())))
            t = nxt
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "days": self.days,
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
    return _month(year, month, tz)


def _month(year: int, month: int, tz: str) -> Period:
    zone = zone_named(tz)
    first = date(year, month, 1)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return Period(_midnight(first, zone), _midnight(following, zone), f"{year:04d}-{month:02d}", True, tz)


def range_period(since: date, until: date, tz: str = "UTC") -> Period:
    """From the start of `since` to the end of `until` (both days included), in `tz`."""
    if until < since:
        raise InvalidInput("until", f"{until} is before the first day, {since}")  # named as each interface names it
    if (until - since).days >= MAX_DAYS:
        raise InvalidInput("since", f"the range spans {(until - since).days + 1} days (at most {MAX_DAYS})")
    zone = zone_named(tz)
    return Period(_midnight(since, zone), _midnight(until + timedelta(days=1), zone), f"{since} – {until}", False, tz)


def current_month(tz: str = "UTC", now: datetime | None = None) -> Period:
    local = (now or datetime.now(UTC)).astimezone(zone_named(tz))
    return month_period(f"{local:%Y-%m}", tz)
