"""Timeline entries a request gives in bulk, with the rest of a post-mortem edit (the
specification's post-mortem block: `{"time": "10:00", "event": …, "details": …}` lines).

A time is an aware datetime, ISO 8601 text with a zone, or a bare wall-clock "HH:MM" read in
the engine's zone on the local day the incident opened (a review written the day after still
means the incident's day). Sending the same lines again adds nothing: a line whose time and text
an entry already has is left as that entry is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.clock import utcnow
from engine.core.domain import InvalidInput, check_time
from engine.incidents.services import stated_time, valid_text
from engine.learning.postmortem.rules import MAX_ITEM

MAX_GIVEN = 200
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
# How far from the incident's opening a bare "HH:MM" may land (only a 25-hour day reaches it).
_NEAR = timedelta(days=1)


@dataclass(frozen=True)
class GivenEntry:
    """One timeline line: `where` names it in errors as the request did (`post_mortem.timeline[0]`)."""

    time: str | datetime
    text: str
    annotation: str = ""
    where: str = "timeline[0]"


@dataclass(frozen=True)
class CheckedEntry:
    at: datetime | time  # a wall-clock time still needs the incident's day
    text: str
    annotation: str
    where: str


def check_entries(entries: Sequence[GivenEntry]) -> list[CheckedEntry]:
    """Everything about the lines that needs no incident, checked before the transaction."""
    if len(entries) > MAX_GIVEN:
        raise InvalidInput("timeline", f"has {len(entries)} entries (at most {MAX_GIVEN})")
    return [
        CheckedEntry(
            _parse(e.time, f"{e.where}.time"),
            valid_text(e.text, f"{e.where}.text", limit=MAX_ITEM),
            valid_text(e.annotation, f"{e.where}.annotation", required=False, limit=MAX_ITEM),
            e.where,
        )
        for e in entries
    ]


def _parse(value: str | datetime, field: str) -> datetime | time:
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        clock = _CLOCK.match(text)
        if clock:
            hour, minute = int(clock[1]), int(clock[2])
            if hour > 23 or minute > 59:
                raise InvalidInput(field, f"{text!r} is not a time of day (00:00 to 23:59)")
            return time(hour, minute)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                field, f"{text!r} is not a time (expected HH:MM, or ISO 8601 with a zone like 2024-01-17T10:00:00Z)"
            ) from None
    if parsed.tzinfo is None:
        raise InvalidInput(field, f"{value!s} has no time zone (give HH:MM, or ISO 8601 with a zone like 2024-01-17T10:00:00Z)")
    return check_time(parsed, field)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"{name!r} is not a time zone") from None


def placed(entry: CheckedEntry, opened: datetime, tz: ZoneInfo) -> datetime:
    """The entry's time: a wall-clock time on the local day the incident opened (of an hour the
    clocks repeat that day, its first occurrence)."""
    field = f"{entry.where}.time"
    if isinstance(entry.at, datetime):
        return _not_ahead(entry.at, field)
    day = opened.astimezone(tz).date()
    local = datetime.combine(day, entry.at, tzinfo=tz)
    shown = f"{entry.at:%H:%M}"
    # A time the clocks skipped (spring forward) does not exist that day: refuse it rather than shift it.
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise InvalidInput(field, f"{shown} does not exist on {day} in {tz.key} (the clocks moved forward)")
    at = local.astimezone(UTC)
    if abs(at - opened.astimezone(UTC)) > _NEAR:
        raise InvalidInput(field, f"{shown} on {day} ({tz.key}) is more than a day from when the incident opened")
    return _not_ahead(at, field)


def _not_ahead(at: datetime, field: str) -> datetime:
    """A line says what happened: not later than now (beyond clock skew)."""
    return stated_time(at, utcnow(), field) or at
