"""Pure text helpers for the console: severity marks, status words, ages, times.

No Textual here, so these are cheap to import and test. Every severity carries a symbol and a
word as well as a colour, so the list reads on a terminal without colour.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.api.display import format_age, terminal_text

SEVERITY_MARK = {
    "critical": ("◆", "CRIT"),
    "high": ("▲", "HIGH"),
    "medium": ("●", "MED"),
    "low": ("○", "LOW"),
}

STATUS_SHORT = {
    "triggered": "TRIGGERED",
    "investigating": "investig.",
    "identified": "identified",
    "monitoring": "monitoring",
    "resolved": "resolved",
}

SEVERITIES = ("critical", "high", "medium", "low")
STATUSES = ("triggered", "investigating", "identified", "monitoring", "resolved")


def severity_label(severity: str) -> str:
    """'◆ CRIT' for critical: symbol plus word."""
    symbol, word = SEVERITY_MARK.get(severity, ("?", severity.upper()[:4]))
    return f"{symbol} {word}"


def status_label(status: str) -> str:
    return STATUS_SHORT.get(status, status)


def followup_group_label(group: str) -> str:
    """A follow-up's kind as a label: 'preventive_measures' -> 'Preventive measures'."""
    return group.replace("_", " ").capitalize()


def parse_iso(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: str | datetime | None, now: datetime) -> str:
    """Compact age: 42s, 12m, 3h05m, 2d4h."""
    then = parse_iso(value)
    if then is None:
        return "-"
    return format_age(int((now - then).total_seconds()))


def ago(value: str | datetime | None, now: datetime) -> str:
    text = age(value, now)
    return "-" if text == "-" else f"{text} ago"


def countdown(value: str | datetime | None, now: datetime) -> str | None:
    """'3:12' until a future time, '1:02:03' past an hour; None when past or absent."""
    when = parse_iso(value)
    if when is None:
        return None
    seconds = int((when - now).total_seconds())
    if seconds < 0:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def local_time(value: str | datetime | None, *, with_date: bool | None = None, now: datetime | None = None) -> str:
    """The engine's one rule for times (engine.core.timefmt): the viewer's zone, named, with the date
    unless it is today (`with_date` True or False forces it)."""
    from engine.api.display import format_time

    return format_time(parse_iso(value), date=with_date, now=now)


def comment_name(c: dict[str, Any]) -> str:
    """A comment as people know it: whose, and when ("alice's comment of 09:12 UTC"), not its
    id, which counts the comments of every incident."""
    return f"{c.get('on_behalf_of') or c['author']}'s comment of {local_time(c.get('stated_at') or c['created_at'])}"


def local_range(start: str | datetime | None, end: str | datetime | None) -> str:
    """ "2026-12-04 10:00 CET → 11:30 CET" (the end's date only when it differs)."""
    from engine.api.display import format_range

    return format_range(parse_iso(start), parse_iso(end))


def clip(text: str, width: int) -> str:
    """Cut to `width` cells with an ellipsis; pads nothing (and shows no terminal controls)."""
    text = " ".join(terminal_text(text).split())
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def sparkline(values: list[float], width: int = 20) -> str:
    """Unicode block sparkline of the last `width` values (empty when there are none)."""
    blocks = "▁▂▃▄▅▆▇█"
    vals = [v for v in values if v is not None][-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    return "".join(blocks[min(int((v - lo) / span * (len(blocks) - 1)), len(blocks) - 1)] for v in vals)
