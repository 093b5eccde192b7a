"""One rule for every time shown to a person (console, CLI, reports, status page, e-mail).

A time is shown in the viewer's zone — `[engine] timezone` when the configuration sets it, else
the local zone of the process (TZ) — always with the zone's name or offset: "2026-12-04 10:32 CET",
or "10:32 CET" when it falls on today. Machine output (--json, the REST API, feeds) keeps ISO 8601
with its offset; this module is for display only.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

_configured: tzinfo | None = None


def set_display_zone(name: str | None) -> None:
    """Show times in the IANA zone `name` (None: the local zone of the process)."""
    global _configured
    _configured = ZoneInfo(name) if name else None


def configure(config: Any) -> None:
    """Follow `[engine] timezone` when the configuration sets it explicitly."""
    engine = getattr(config, "engine", None)
    explicit = "timezone" in (getattr(engine, "model_fields_set", None) or ())
    set_display_zone(engine.timezone if engine is not None and explicit else None)


def display_zone() -> tzinfo | None:
    """The configured zone, or None for the local zone of the process."""
    return _configured


def _zone(zone: tzinfo | str | None) -> tzinfo | None:
    return ZoneInfo(zone) if isinstance(zone, str) else (zone or _configured)


def to_zone(when: datetime, zone: tzinfo | str | None = None) -> datetime:
    """`when` in `zone` (default the display zone). The local zone goes through the C library,
    so its summer time follows the date of `when`, not today's."""
    tz = _zone(zone)
    return when.astimezone(tz) if tz is not None else when.astimezone()


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def zone_label(when: datetime) -> str:
    """ "CET", "UTC", "EST"; the offset ("+05:30") where the zone has no letters for a name."""
    name = when.tzname() or ""
    if name.isalpha():
        return name
    offset = when.utcoffset()
    if offset is None:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def format_time(
    value: str | datetime | None,
    *,
    date: bool | None = None,
    seconds: bool = False,
    zone: tzinfo | str | None = None,
    now: datetime | None = None,
    empty: str = "-",
) -> str:
    """`value` (a datetime or an ISO 8601 string) for a person. `date`: True always shows the
    date, False never, None (default) only when it is not today in that zone."""
    when = _parse(value)
    if when is None:
        return empty if value in (None, "") else str(value)
    local = to_zone(when, zone)
    clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    if date is None:
        date = local.date() != to_zone(now or datetime.now(UTC), zone).date()
    text = f"{local.strftime('%Y-%m-%d')} {clock}" if date else clock
    return f"{text} {zone_label(local)}"


def format_range(start: str | datetime | None, end: str | datetime | None, **options: Any) -> str:
    """ "2026-12-04 10:00 CET → 11:30 CET": the end's date only when it differs from the start's;
    a range that starts where it ends is that one time."""
    a, b = _parse(start), _parse(end)
    if a is None or b is None:
        return f"{format_time(start, **options)} → {format_time(end, **options)}"
    zone = options.get("zone")
    rest = {k: v for k, v in options.items() if k != "date"}
    first = format_time(a, **options)
    if a == b:  # a moment (a screenshot's): "→ the same time" would read as a range
        return first
    second = format_time(b, date=to_zone(b, zone).date() != to_zone(a, zone).date(), **rest)
    return f"{first} → {second}"
