"""What a person types, parsed: times ("now", an age like 15m, ISO 8601), dates and durations,
each kept within engine.core.domain's ranges; and who they are (the login name). The CLI's
argument types and the console's forms share these, so both accept and refuse the same text."""

from __future__ import annotations

import getpass
import os
import re
from datetime import UTC, date, datetime, timedelta, tzinfo

from engine.core.domain import EARLIEST_TIME, LATEST_TIME, LONGEST_DURATION, InvalidInput, check_time
from engine.core.durations import duration_seconds
from engine.core.textclean import brief
from engine.core.timefmt import display_zone


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit 2 (a long value it quotes
    shortened, engine.core.textclean.brief)."""

    def __str__(self) -> str:
        return brief(super().__str__())


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): fall back to the uid
        return f"uid{os.getuid()}"


# An age such as 15m or -2h (both mean ago): one number and one unit.
_AGE = re.compile(r"^-?\d+(?:\.\d+)?\s*[smhdw]$")


def parse_time(text: str, what: str = "time", *, local: bool = False) -> datetime:
    """ISO 8601, 'now', or an age like 15m / 2h / 3d (meaning ago); within engine.core.domain's
    time range. A time without a zone is in the zone times are shown in (`[engine] timezone`
    when the configuration sets it, else TZ), so what a person reads back is what they typed;
    `local` reads it in TZ instead (the stamps of a log file written on this machine). A time
    the clocks skip there (spring forward) is refused rather than moved."""
    value = (text or "").strip()
    if value == "now":
        return datetime.now(UTC)
    ago = duration_seconds(value.removeprefix("-")) if _AGE.match(value) else None
    if ago is not None:
        return datetime.now(UTC) - _span(ago, text, what)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a time (expected ISO 8601 like 2026-11-27T10:25, 'now', or an age like 15m)") from None
    return in_zone(parsed, None if local else display_zone(), text, what)


def in_zone(parsed: datetime, zone: tzinfo | None, text: str, what: str = "time") -> datetime:
    """`parsed` (as read from `text`) in UTC; without a zone of its own it is a wall time in
    `zone` (None: TZ, the process's local zone). A wall time the clocks skip there (spring
    forward) is refused rather than moved; the result lies in engine.core.domain's range."""
    try:
        if parsed.tzinfo is None:
            wall = parsed
            parsed = parsed.replace(tzinfo=zone) if zone is not None else parsed.astimezone()
            # Round trip through UTC: a wall time the clocks skip comes back as another one.
            back = parsed.astimezone(UTC).astimezone(zone) if zone is not None else parsed.astimezone(UTC).astimezone()
            if back.replace(tzinfo=None) != wall:
                shown = getattr(zone, "key", None) or "the local time zone"
                raise UsageError(f"{what}: {text!r} does not exist in {shown} (the clocks skip it that day); give another time or a zone")
        parsed = check_time(parsed, what)
    except (OverflowError, ValueError, InvalidInput):  # astimezone() of a local time at the very edge
        raise UsageError(f"{what}: {text!r} is out of range ({EARLIEST_TIME.date()} to {LATEST_TIME.date()})") from None
    return parsed.astimezone(UTC)


def parse_date(text: str, what: str = "date") -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a date (expected YYYY-MM-DD)") from None
    if not EARLIEST_TIME.date() <= day < LATEST_TIME.date():
        raise UsageError(f"{what}: {text!r} is out of range ({EARLIEST_TIME.date()} to {LATEST_TIME.date()})")
    return day


def parse_duration(text: str, what: str = "duration", *, positive: bool = False) -> timedelta:
    """A span such as 30m, 2h, 1d or 1h30m (engine.core.durations), at most LONGEST_DURATION;
    longer than zero when `positive` (a snooze, a silence, a window: "0m" would be over at once)."""
    value = (text or "").strip()
    seconds = duration_seconds(value.lstrip("+-"))
    if seconds is not None and value.startswith("-"):
        raise UsageError(f"{what}: {text!r} is negative: a duration must be positive (e.g. 30m, 2h, 1d)")
    if seconds is None:
        raise UsageError(f"{what}: {text!r} is not a duration (expected e.g. 30m, 2h, 1d)")
    span = _span(seconds, text, what)
    if positive and not span:  # "0m", and "0.0000001s" too (under a microsecond)
        raise UsageError(f"{what}: {text!r} is zero: a duration must be positive (e.g. 30m, 2h, 1d)")
    return span


def _span(seconds: float, text: str, what: str) -> timedelta:
    if seconds > LONGEST_DURATION.total_seconds():
        raise UsageError(f"{what}: {text!r} is too long (at most {LONGEST_DURATION.days} days)")
    return timedelta(seconds=seconds)
