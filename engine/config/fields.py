"""Common value types and validators of the configuration file (durations, names, URLs, e-mails, ...)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from engine.config.conditions import Condition, ConditionError, parse_condition
from engine.config.location import CONFIG_FILENAME as CONFIG_FILENAME
from engine.config.location import ENV_CONFIG as ENV_CONFIG
from engine.core.domain import Severity
from engine.core.durations import duration_seconds, format_duration
from engine.core.matchers import TAG_RE, TAG_RULE


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------------------------------
# Value types


_DURATION_HINT = 'a duration such as "30s", "1m", "2h" or "1d"'


# The longest span any setting may name (minutes fields and durations alike): far beyond any
# real use, small enough that times computed from it never overflow.
MAX_MINUTES = 36_600 * 1440


def parse_duration(value: object) -> float:
    """`"30s"`, `"1m"`, `"2h"`, `"1d"`, `"1h30m"`, `"500ms"` → seconds (float).

    A bare number is refused: `interval = 30` could mean seconds or minutes, and a monitoring
    tool must not guess.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected {_DURATION_HINT}, got {_show(value)}")
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError(f"expected {_DURATION_HINT}, got an empty string")
    total = duration_seconds(text)
    if total is None:
        raise ValueError(f"expected {_DURATION_HINT}, got {_show(value)}")
    if total > MAX_MINUTES * 60:
        raise ValueError(f"expected at most {MAX_MINUTES // 1440} days, got {_show(value)}")
    return total


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"expected a duration longer than zero, got {_show(value)}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration), PlainSerializer(format_duration)]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"expected a name of letters, digits, '-', '_' or '.' (at most 64, starting with a letter or digit), got {_show(value)}"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]


def _check_tag(value: str) -> str:
    # Checked here as the incident's tags are, else the target's incidents could never open.
    if not TAG_RE.match(value):
        raise ValueError(f"expected a tag ({TAG_RULE}), got {_show(value)}")
    return value


Tag = Annotated[str, AfterValidator(_check_tag)]

_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_env_name(value: str) -> str:
    if not _ENV_RE.match(value):
        raise ValueError(
            "expected the NAME of an environment variable (letters, digits and '_', like "
            f"PULSEGUARD_TOKEN), not the secret itself; got {_show(value, secret=True)}"
        )
    return value


EnvName = Annotated[str, AfterValidator(_check_env_name)]


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {_show(value)}")
    return value


Url = Annotated[str, AfterValidator(_check_url)]

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def _check_email(value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise ValueError(f"expected an e-mail address like ops@example.com, got {_show(value)}")
    return value


Email = Annotated[str, AfterValidator(_check_email)]

# What a web page's address protection shows instead of an address; the specification's own
# examples carry it. Accepted in recipient lists so a pasted block loads, never sent to (see
# `Config.warnings`).
EMAIL_PLACEHOLDER = "[email protected]"
_PLACEHOLDER_RE = re.compile(r"^\[email\s+protected\]$")  # the page uses a no-break space


def is_email_placeholder(value: object) -> bool:
    return isinstance(value, str) and bool(_PLACEHOLDER_RE.match(value))


def _drop_placeholders(value: object) -> object:
    if isinstance(value, list):
        return [v for v in value if not is_email_placeholder(v)]
    return value


Recipients = Annotated[list[Email], BeforeValidator(_drop_placeholders)]


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown time zone {_show(value)} (expected an IANA name like "Europe/Amsterdam" or "UTC")') from None
    return value


TimeZone = Annotated[str, AfterValidator(_check_timezone)]


def _check_channel(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f'expected a Slack channel like "#incidents", got {_show(value)}')
    return value


SlackChannel = Annotated[str, AfterValidator(_check_channel)]


def _parse_condition_value(value: object) -> Condition:
    if isinstance(value, Condition):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected a condition such as "status_code >= 500", got {_show(value)}')
    try:
        return parse_condition(value)
    except ConditionError as exc:
        raise ValueError(f"{exc} (in {_show(value)})") from None


ConditionField = Annotated[Condition, BeforeValidator(_parse_condition_value), PlainSerializer(str, return_type=str)]

# Lenient enum fields: the models are strict (no "yes" for true, no "5" for 5), but enums must
# still accept their string values.
SeverityField = Annotated[Severity, Field(strict=False)]
LooseDatetime = Annotated[datetime, Field(strict=False)]

_WEEKDAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2, "wed": 2,
    "thursday": 3, "thu": 3, "thurs": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5,
    "sunday": 6, "sun": 6,
}  # fmt: skip
WEEKDAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_HANDOFF_RE = re.compile(r"^(?:([A-Za-z]+)\s+)?(\d{1,2}):(\d{2})$")


def parse_handoff(value: str) -> tuple[int | None, time]:
    """`"monday 09:00"` → (0, 09:00); `"09:00"` → (None, 09:00). Weekday 0 is Monday."""
    match = _HANDOFF_RE.match(value.strip())
    if not match:
        raise ValueError(f'expected a hand-off like "monday 09:00" or "09:00", got {_show(value)}')
    day_text, hour, minute = match.groups()
    day = None
    if day_text is not None:
        day = _WEEKDAYS.get(day_text.lower())
        if day is None:
            raise ValueError(f"unknown weekday {_show(day_text)} (expected monday … sunday)")
    if int(hour) > 23 or int(minute) > 59:
        raise ValueError(f"expected a time of day from 00:00 to 23:59, got {_show(value)}")
    return day, time(int(hour), int(minute))


def _dict_in(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    """mapping[key] if it is a mapping, else empty: raw YAML sections may be missing or malformed."""
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def _list_in(mapping: dict[str, Any], key: str) -> list[Any]:
    """mapping[key] if it is a list, else empty."""
    value = mapping.get(key)
    return value if isinstance(value, list) else []


def _check_hours(value: str) -> str:
    match = re.match(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$", value.strip())
    ok = match is not None and int(match[1]) < 24 and int(match[2]) < 60 and int(match[4]) < 60
    ok = ok and match is not None and (int(match[3]) < 24 or (int(match[3]) == 24 and int(match[4]) == 0))
    if not ok:
        raise ValueError(f'expected hours like "09:00-17:00" (an end of "24:00" means midnight), got {_show(value)}')
    return value


def _check_weekday(value: str) -> str:
    """A weekday ("monday", "mon") or a range of them ("mon-fri")."""
    for part in value.split("-", 1):
        if part.strip().lower() not in _WEEKDAYS:
            raise ValueError(f'expected a weekday (monday … sunday) or a range like "mon-fri", got {_show(value)}')
    return value


Weekday = Annotated[str, AfterValidator(_check_weekday)]


class Section(BaseModel):
    """Base of every table in the file: strict types, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, allow_inf_nan=False)


def _show(value: object, secret: bool = False) -> str:
    """A value as the user wrote it in TOML, shortened; secrets are masked."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if secret and len(value) > 4:
            return '"' + value[:2] + "…" + '" (hidden)'
        text = value if len(value) <= 60 else value[:57] + "…"
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return type(value).__name__


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (key path, key, value) in a parsed TOML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, str(key), value
            yield from _walk(value, sub)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
