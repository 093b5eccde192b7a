"""Durations: the one grammar for reading them and the ways they are written for people.

Read: `"30s"`, `"15m"`, `"2h"`, `"1d"`, `"1w"`, `"500ms"`, compounds such as `"1h30m"`; case
and spaces do not matter. Callers decide what a bare number means (the configuration file
refuses one; a schedule built in code takes it as minutes) and word their own errors.
"""

from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", re.IGNORECASE)


def duration_seconds(text: str) -> float | None:
    """The seconds `text` names, or None when it is not a duration."""
    compact = text.strip().replace(" ", "")
    total, pos = 0.0, 0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * UNITS[match.group(2).lower()]
        pos = match.end()
    if pos == 0 or pos != len(compact):
        return None
    return total


def format_duration(seconds: float) -> str:
    """The way a duration is written back into configuration: the largest whole unit
    (`"3d"`, `"90m"`, `"45s"`), else milliseconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(round(seconds * 1000))}ms"


def format_age(seconds: int) -> str:
    """Compact, for table columns: 42s, 12m, 3h05m, 2d4h (negative counts as 0s)."""
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


def format_span(seconds: float | None) -> str:
    """For reports: '-' for no data, else '42s', '12m 05s', '3h 07m', '2d 04h'."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {(s % 3600) // 60:02d}m"
    return f"{s // 86400}d {(s % 86400) // 3600:02d}h"


def format_words(seconds: float) -> str:
    """For sentences on the timeline: '42 s', '12 min 5 s', '3 h 7 min'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def format_minutes(value: float | None) -> str:
    """A figure kept in minutes, with hours beside it once it reaches one:
    '45 minutes', '90 minutes (1 h 30 min)'; 'unknown' for no figure."""
    if value is None:
        return "unknown"
    total = int(round(value))
    if total < 60:
        return f"{value:g} minutes"
    return f"{value:g} minutes ({total // 60} h {total % 60:02d} min)"


def spoken_duration(seconds: float) -> str:
    """For a sentence: '12s', '5m', '5m 30s', '1h', '2d 4h' (at most two units, none zero):
    a trigger that held for 12 seconds said "0.2 minute(s)"."""
    s = max(int(round(seconds)), 0)
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"
