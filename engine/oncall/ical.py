"""iCalendar (RFC 5545) feed of on-call shifts, one VEVENT per shift, written by `icalendar`
(which escapes TEXT values and folds lines at 75 octets)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from icalendar import Calendar, Event, vText

from engine.core.textclean import terminal_text
from engine.oncall.schedule import Shift

PRODID = "-//PulseGuard//On-call//EN"


def _text(value: str) -> vText:
    # RFC 5545 TEXT allows no control characters but tab (and escaped newlines); names and
    # schedules come from configuration and the API, so they are cleaned, not trusted.
    return vText(terminal_text(value))


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def shifts_to_ical(
    shifts: Iterable[Shift],
    *,
    names: Mapping[str, str] | None = None,
    now: datetime | None = None,
    calendar_name: str = "PulseGuard on-call",
) -> str:
    """An iCalendar document; `names` maps user ids to display names."""
    names = names or {}
    now = now or datetime.now(UTC)
    cal = Calendar()
    cal.add("version", "2.0")
    cal.add("prodid", PRODID)
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    # An X- property is written verbatim unless given as TEXT.
    cal.add("x-wr-calname", _text(calendar_name))
    for s in shifts:
        if s.user is None:
            continue
        who = names.get(s.user, s.user)
        uid = hashlib.sha1(f"{s.schedule}|{s.user}|{_stamp(s.start)}".encode()).hexdigest()[:20]
        desc = f"{who} is on call for schedule {s.schedule}"
        if s.override is not None:
            desc += f" (override: {s.override.describe()})"
        elif s.layer:
            desc += f" ({s.layer})"
        event = Event()
        event.add("uid", f"{uid}@pulseguard")
        event.add("dtstamp", now.astimezone(UTC))
        event.add("dtstart", s.start.astimezone(UTC))
        event.add("dtend", s.end.astimezone(UTC))
        event.add("summary", _text(f"On call: {who} ({s.schedule})"))
        event.add("description", _text(desc))
        event.add("categories", [terminal_text(s.schedule)])
        event.add("transp", "TRANSPARENT")
        cal.add_component(event)
    data: bytes = cal.to_ical(sorted=False)  # properties in the order written above
    return data.decode("utf-8")
