"""What every `pulseguard` subcommand module shares: exit codes, the database access levels,
the parser class, the handler's Context, argument types (times, durations, numbers) and output helpers."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from engine.core.domain import (
    DEFAULT_ROOT_CAUSE_CATEGORIES,
    EARLIEST_TIME,
    LATEST_TIME,
    LONGEST_DURATION,
    InvalidInput,
    check_time,
)
from engine.core.durations import duration_seconds, format_age
from engine.core.textclean import UNSAFE as _UNSAFE_JSON
from engine.core.textclean import terminal_text

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

# How a subcommand uses the database (engine.cli.main's DB_ACCESS says which, and why).
NONE, READ, CHANGE, CREATE = "none", "read", "change", "create"


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions; keeps text written with line breaks (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One clear line instead of argparse's usage block.
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


@dataclass
class Context:
    """What a handler needs: who acts, the database, the loaded configuration."""

    actor: str
    database: Any = None
    config: Any = None
    json: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        extra = []
        if self.config is not None:
            extra = list(getattr(getattr(self.config, "engine", None), "root_cause_categories", None) or [])
        return list(dict.fromkeys([*DEFAULT_ROOT_CAUSE_CATEGORIES, *extra]))


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): fall back to the uid
        return f"uid{os.getuid()}"


# --- shared parsing helpers ---------------------------------------------------------------

# An age such as 15m or -2h (both mean ago): one number and one unit.
_AGE = re.compile(r"^-?\d+(?:\.\d+)?\s*[smhdw]$")


def parse_time(text: str, what: str = "time") -> datetime:
    """ISO 8601 (a naive time is local), 'now', or an age like 15m / 2h / 3d (meaning ago);
    within engine.core.domain's time range."""
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
    try:
        parsed = check_time(parsed if parsed.tzinfo is not None else parsed.astimezone(), what)
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


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]; anything else is a usage error (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range ({low} to {high})")
        return value

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"{text!r} is out of range ({low:g} to {high:g})")
        return value

    return parse


# Row ids (maintenance windows, follow-ups, entries): what the databases' integer columns hold.
ROW_ID = whole_number(1, 2**31 - 1)
LIMIT = whole_number(1, 1_000_000)


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """A span such as 30m, 2h, 1d or 1h30m (engine.core.durations), at most LONGEST_DURATION."""
    seconds = duration_seconds((text or "").strip().lstrip("+"))
    if seconds is None or text.strip().startswith("-"):
        raise UsageError(f"{what}: {text!r} is not a duration (expected e.g. 30m, 2h, 1d)")
    return _span(seconds, text, what)


def _span(seconds: float, text: str, what: str) -> timedelta:
    if seconds > LONGEST_DURATION.total_seconds():
        raise UsageError(f"{what}: {text!r} is too long (at most {LONGEST_DURATION.days} days)")
    return timedelta(seconds=seconds)


def say(text: str = "") -> None:
    """Print a line of stored data: text a terminal shows, never executes (ESC, C1, CR)."""
    print(terminal_text(text))


def print_json(data: Any) -> None:
    # Controls and bidi overrides become \uXXXX escapes: the same JSON, harmless on a terminal.
    print(_UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, indent=2, default=str, ensure_ascii=False)))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], empty: str = "(none)") -> None:
    """Aligned plain-text table; `columns` is [(key, heading)]."""
    if not rows:
        print(empty)
        return
    cells = [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(columns)]
    say("  ".join(h.upper().ljust(w) for (_, h), w in zip(columns, widths)).rstrip())
    for c in cells:
        say("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    text = terminal_text(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def short_time(value: str | datetime | None, **options: Any) -> str:
    """A time for a person (engine.core.timefmt's rule: viewer's zone, named, date unless today)."""
    from engine.core.timefmt import format_time

    return format_time(value, **options)


def age(value: str | None, now: datetime | None = None) -> str:
    if not value:
        return "-"
    then = datetime.fromisoformat(value)
    return format_age(int(((now or datetime.now(UTC)) - then).total_seconds()))
