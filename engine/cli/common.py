"""What every `pulseguard` subcommand module shares: exit codes, the database access levels,
the parser class, the handler's Context, argument types (times, durations, numbers) and output helpers."""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.api.startup import root_cause_categories
from engine.core.durations import format_age

# Re-exported: every command module takes its argument types from here.
from engine.core.inputs import UsageError as UsageError
from engine.core.inputs import os_user as os_user
from engine.core.inputs import parse_date as parse_date
from engine.core.inputs import parse_duration as parse_duration
from engine.core.inputs import parse_time as parse_time
from engine.core.textclean import UNSAFE as _UNSAFE_JSON
from engine.core.textclean import brief, terminal_text

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

# `pulseguard demo` always runs on its own throwaway database.
DEMO_DB_REFUSED = "the demo runs on a throwaway database of its own and does not take --db (--keep keeps it and prints its path)"


def hiding_from_help(parent: argparse.ArgumentParser, *flags: str) -> argparse.ArgumentParser:
    """`parent`'s options for one subcommand's `parents=[…]`, those named by `flags` still
    parsed but left out of its --help. A parent's actions are shared by every subcommand built
    from it: suppressing the help of one would hide that option from all of them, so the hidden
    ones are copies."""
    clone = argparse.ArgumentParser(add_help=False)
    for action in parent._actions:
        if set(action.option_strings) & set(flags):
            action = copy.copy(action)
            action.help = argparse.SUPPRESS
        clone._add_action(action)
    return clone


# How a subcommand uses the database (engine.cli.main's DB_ACCESS says which, and why).
NONE, READ, CHANGE, CREATE = "none", "read", "change", "create"


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions; keeps text written with line breaks (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


# A word that starts like a negative number ("-5m", "-1.5e3", "-.5h") is a value, never an option
# (no option starts with a digit): argparse itself lets only "-5" and "-.5" through, so
# `incident snooze INC-1 -5m` read "-5m" as an unknown option and then asked for DURATION.
_NEGATIVE_LIKE = re.compile(r"-\.?\d")


@contextmanager
def named_as_typed(options: dict[str, str]) -> Iterator[None]:
    """A refusal of one of `options`' fields named as the command line names it: the service's
    "affected_users: -5 is out of range" named a field the user never typed; it reads
    "--affected-users: -5 is out of range …" (exit 2, as every usage error)."""
    from engine.core.domain import InvalidInput

    try:
        yield
    except InvalidInput as exc:
        if exc.field not in options:
            raise
        raise UsageError(f"{options[exc.field]}: {exc.message}") from None


class Parser(argparse.ArgumentParser):
    # Set (with takes_dash_values) on a command whose values may start with "-" at all:
    # `incident tag INC-1 -flaky` removes a tag.
    dash_values = False

    def error(self, message: str) -> None:  # type: ignore[override]
        # One clear line instead of argparse's usage block.
        self.exit(EXIT_USAGE, f"{self.prog}: {brief(message)} (see {self.prog} --help)\n")

    def _parse_optional(self, arg_string: str) -> Any:
        found = super()._parse_optional(arg_string)
        if isinstance(found, tuple) and found[0] is not None and found[1]:
            # The option as typed (in full: argparse expands an abbreviation), for a refusal to name.
            vars(self).setdefault("_typed_as", {})[id(found[0])] = found[1]
        # (None, word, None): a word starting with "-" that names none of this command's options.
        unknown = isinstance(found, tuple) and found[0] is None and not arg_string.startswith("--")
        if unknown and (self.dash_values or _NEGATIVE_LIKE.match(arg_string)):
            return None  # a positional value: the command's own check says what is wrong with it
        return found

    def _get_values(self, action: argparse.Action, arg_strings: Any) -> Any:
        # An empty or blank value is refused, never read as "not given": `silence add … --until ""`
        # made a silence without that end, `report --since ""` the default window, `config check ""`
        # checked the usual file. An option that clears something with "" says so (keeps_empty).
        blank = isinstance(arg_strings, list) and any(isinstance(v, str) and not v.strip() for v in arg_strings)
        # --db's own refusal (engine.api.startup) also says what it expects.
        own = getattr(action, "keeps_empty", False) or action.dest == "db"
        if blank and action.nargs in (None, "?") and not own:
            if not action.option_strings:  # a positional value: `statuspage build ""` wrote into the current directory
                self.exit(EXIT_USAGE, f"error: {action.metavar if isinstance(action.metavar, str) else action.dest}: is empty\n")
            typed = vars(self).get("_typed_as", {}).get(id(action)) or max(action.option_strings, key=len)
            self.exit(EXIT_USAGE, f"error: {typed}: is empty (give a value, or leave {typed} out)\n")
        return super()._get_values(action, arg_strings)


def keeps_empty(action: argparse.Action) -> argparse.Action:
    """Let option `action` take an empty value (it clears what it sets; its help says so)."""
    action.keeps_empty = True  # type: ignore[attr-defined]
    return action


def takes_dash_values(parser: argparse.ArgumentParser) -> None:
    """Let `parser`'s positional values start with "-" (a word naming no option of its own)."""
    parser.dash_values = True  # type: ignore[attr-defined]


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
        return root_cause_categories(self.config)


# --- shared parsing helpers ---------------------------------------------------------------


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
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range ({low:g} to {high:g})")
        return value

    return parse


# Row ids (maintenance windows, follow-ups, entries): what the databases' integer columns hold.
ROW_ID = whole_number(1, 2**31 - 1)
LIMIT = whole_number(1, 1_000_000)


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
