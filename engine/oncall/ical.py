"""iCalendar (RFC 5545) feed of on-call shifts, one VEVENT per shift."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from engine.oncall.schedule import Shift

PRODID = "-//PulseGuard//On-call//EN"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\\n").replace("\n", "\\n")


def _fold(line: str) -> list[str]:
    """Lines longer than 75 octets continue on the next line after a space (RFC 5545 3.1)."""
    out: list[str] = []
    data = line.encode("utf-8")
    limit = 75
    while len(data) > limit:
        cut = limit
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # never split a UTF-8 sequence
            cut -= 1
        out.append(data[:cut].decode("utf-8"))
        data = data[cut:]
        limit = 74  # the leading space counts
    out.append(data.decode("utf-8"))
    return [out[0]] + [" " + x for x in out[1:]]


def _stamp(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def shifts_to_ical(
    shifts: Iterable[Shift],
    *,
    names: Mapping[str, str] | None = None,
    now: datetime | None = None,
    calendar_name: str = "PulseGuard on-call",
) -> str:
    """An iCalendar document; `names` maps user ids to display names."""
    names = names or {}
    now = now or datetime.now(timezone.utc)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_escape(calendar_name)}",
    ]
    for s in shifts:
        if s.user is None:
            continue
        who = names.get(s.user, s.user)
        uid_src = f"{s.schedule}|{s.user}|{_stamp(s.start)}"
        uid = hashlib.sha1(uid_src.encode()).hexdigest()[:20]
        desc = f"{who} is on call for schedule {s.schedule}"
        if s.override is not None:
            desc += f" (override: {s.override.describe()})"
        elif s.layer:
            desc += f" ({s.layer})"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{uid}@pulseguard",
            f"DTSTAMP:{_stamp(now)}",
            f"DTSTART:{_stamp(s.start)}",
            f"DTEND:{_stamp(s.end)}",
            f"SUMMARY:{_escape(f'On call: {who} ({s.schedule})')}",
            f"DESCRIPTION:{_escape(desc)}",
            f"CATEGORIES:{_escape(s.schedule)}",
            "TRANSP:TRANSPARENT",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    folded: list[str] = []
    for line in lines:
        folded.extend(_fold(line))
    return "\r\n".join(folded) + "\r\n"
