"""The configuration file (`pulseguard.toml`): schema, loading, and one clear line per problem.

Sections use the incident-management specification's own names (`escalation_policy`,
`triggers`, `ai_detection`, `notifications`, `status_page_integration`, `integrations`) plus
`engine`, `users`, `services`, `targets`, `schedules`, `webhooks` and `console`.
Unknown keys are errors. Secrets never live in the file: a key ending in `_env` names the
environment variable that holds one, and a secret written in directly is refused.

A file ending in `.json` holds the same schema as JSON (so the specification's blocks load as
they are). `load_config(path)` returns a `Config` or raises `ConfigError` listing every problem at once,
each as `<file>: <key.path>: <what is wrong, what was expected>`.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.config.conditions import Condition, ConditionError, parse_condition
from engine.core.domain import DEFAULT_ROOT_CAUSE_CATEGORIES, Severity
from engine.core.durations import duration_seconds, format_duration

__all__ = [
    "Config",
    "ConfigError",
    "NotifyTarget",
    "check_config",
    "default_config",
    "find_config",
    "load_config",
    "example_config_text",
    "parse_config_json",
    "parse_config_text",
    "parse_duration",
    "parse_handoff",
    "parse_notify",
    "secret_from_env",
]

CONFIG_FILENAME = "pulseguard.toml"
ENV_CONFIG = "PULSEGUARD_CONFIG"


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


# ---------------------------------------------------------------------------------------------
# Models


class Section(BaseModel):
    """Base of every table in the file: strict types, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, allow_inf_nan=False)


class EngineSection(Section):
    db: str | None = None
    """Database URL or file path; `--db` and PULSEGUARD_DB take precedence."""
    timezone: TimeZone = "UTC"
    """Default time zone for schedules and reports."""
    heartbeat_url: Url | None = None
    """Pinged every `heartbeat_interval` while the engine runs, so a watcher elsewhere sees it die."""
    heartbeat_interval: PositiveDuration = 60.0
    raw_retention: PositiveDuration = 7 * 86400.0
    """How long raw samples are kept; per-minute rollups live longer."""
    rollup_retention: PositiveDuration = 90 * 86400.0
    max_concurrent_probes: int = Field(200, ge=1, le=100_000)
    probe_body_limit: int = Field(1_048_576, ge=1024)
    """Bytes of an HTTP response body read at most."""
    api: str | None = None
    """`HOST:PORT` the headless engine serves its REST API and status page on."""
    api_body_limit: int = Field(1_048_576, ge=1024, le=1_073_741_824)
    """Bytes of a request body the API accepts at most; larger ones get 413 unread."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or networks of reverse proxies whose X-Forwarded-For the API believes."""
    root_cause_categories: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Root-cause categories added to the built-in ones (database, deployment, network, …)."""

    @field_validator("db")
    @classmethod
    def _db(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("expected a database URL or file path, got an empty string")
        lowered = value.lower()
        if lowered.startswith(("postgres://", "postgresql://")) and not urlsplit(value).path.strip("/"):
            raise ValueError(f"{_show(value)} names no database (expected postgres://user@host/dbname)")
        if "://" in value and not lowered.startswith(("postgres://", "postgresql://", "sqlite://")):
            raise ValueError(f"expected sqlite:///PATH, postgres://… or a file path, got {_show(value)}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f'expected IP addresses or networks such as "10.0.0.0/8", got {_show(item)}') from None
        return [item.strip() for item in value]

    @field_validator("api")
    @classmethod
    def _api(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'expected HOST:PORT such as "127.0.0.1:8080", got {_show(value)}')
        return value


class User(Section):
    id: Name
    name: str | None = None
    email: Email | None = None
    slack: str | None = None
    phone: str | None = None
    timezone: TimeZone | None = None
    pagerduty_user_id: str | None = None


class Service(Section):
    name: Name
    description: str = ""
    display_name: str | None = None
    """Shown on the status page instead of `name`."""
    group: str | None = None
    public: bool = True
    """Whether the service appears on the public status page."""
    schedule: Name | None = None
    """The on-call schedule paged first for this service's incidents (policies without levels)."""


_SECRET_HEADERS = {
    "authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token",
    "private-token", "x-access-token",
}  # fmt: skip


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", name):
            raise ValueError(f"{_show(name)} is not a valid HTTP header name")
    return value


Headers = Annotated[dict[str, str], AfterValidator(_check_headers)]
HeadersEnv = Annotated[dict[str, EnvName], AfterValidator(_check_headers)]


class TargetBase(Section):
    name: Name
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 10.0
    service: Name | None = None
    """The [[services]] entry this target belongs to (its incidents affect that service)."""
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class HttpTarget(TargetBase):
    kind: Literal["http"]
    url: Url
    method: Annotated[Literal[HTTP_METHODS], BeforeValidator(_upper)] = "GET"  # type: ignore[valid-type]
    headers: Headers = Field(default_factory=dict)
    headers_env: HeadersEnv = Field(default_factory=dict)
    """Header name → environment variable holding its value (for Authorization and the like)."""
    body: str | None = None
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = None
    """Accepted status codes; by default any 2xx or 3xx."""
    expect_body: str | None = None
    """Text the body must contain."""
    expect_body_regex: str | None = None
    follow_redirects: bool = True
    verify_tls: bool = True

    @field_validator("expect_body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    def accepts_status(self, status: int) -> bool:
        return status in self.expect_status if self.expect_status else 200 <= status < 400


class TcpTarget(TargetBase):
    kind: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class PrometheusTarget(TargetBase):
    kind: Literal["prometheus"]
    url: Url
    headers: Headers = Field(default_factory=dict)
    headers_env: HeadersEnv = Field(default_factory=dict)
    include: list[str] = Field(default_factory=list)
    """Glob patterns of series names to keep (all when empty)."""


class HostTarget(TargetBase):
    kind: Literal["host"]
    disks: list[str] = Field(default_factory=lambda: ["/"])
    """Mount points whose usage is recorded."""


TARGET_KINDS: dict[str, type[TargetBase]] = {
    "http": HttpTarget,
    "tcp": TcpTarget,
    "prometheus": PrometheusTarget,
    "host": HostTarget,
}
Target = Annotated[HttpTarget | TcpTarget | PrometheusTarget | HostTarget, Field(discriminator="kind")]


class Trigger(Section):
    condition: ConditionField
    """See engine/config/conditions.py; error_rate is a percentage (0-100)."""
    duration_minutes: float = Field(0.0, ge=0, le=MAX_MINUTES)
    """How long the condition must hold before it fires; fractions allowed (0.05 = 3 s)."""
    auto_create_incident: bool = True
    severity: SeverityField
    description: str | None = None
    title: str | None = None
    """Incident title; defaults to the trigger name and target."""
    targets: list[str] | None = None
    """Target names (or glob patterns) the trigger applies to; default: all targets."""
    services: list[Name] | None = None
    """Only targets of these services."""
    recovery_minutes: float = Field(5.0, ge=0, le=MAX_MINUTES)
    """Healthy this long after firing → the incident moves to monitoring."""
    auto_resolve_minutes: float | None = Field(None, ge=0, le=MAX_MINUTES)
    """Healthy this long → the incident is resolved automatically (off by default)."""
    enabled: bool = True


class AnomalyDetection(Section):
    enabled: bool = True
    sensitivity: Literal["low", "medium", "high"] = "medium"
    false_positive_filter: bool = True
    severity: SeverityField = Severity.MEDIUM
    auto_create_incident: bool = True
    refit_interval: PositiveDuration | None = None
    """How often each series' model is refitted, in the series' own time ("1h"); default: every
    20 samples, the cadence measured on NAB."""
    series: list[str] = Field(default_factory=list)
    """Glob patterns of series to watch (all when empty)."""


class PatternRecognition(Section):
    enabled: bool = True
    historical_analysis_days: int = Field(30, ge=1, le=3650)


class CorrelationAnalysis(Section):
    enabled: bool = True
    window: PositiveDuration = 3600.0


class AIDetection(Section):
    # Absent sections are off: detection costs CPU, so it runs only when asked for.
    anomaly_detection: AnomalyDetection = Field(default_factory=lambda: AnomalyDetection(enabled=False))
    pattern_recognition: PatternRecognition = Field(default_factory=PatternRecognition)
    correlation_analysis: CorrelationAnalysis = Field(default_factory=CorrelationAnalysis)


@dataclass(frozen=True)
class NotifyTarget:
    """One entry of a level's `notify` list, split: kind is schedule/next/user/webhook/slack/email/
    pagerduty/jira and value the name, id, channel or address (empty for pagerduty and jira).
    `next:NAME` is whoever takes over on schedule NAME after the person on call when the
    incident opened."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}" if self.value else self.kind


NOTIFY_KINDS = ("schedule", "next", "user", "webhook", "slack", "email", "pagerduty", "jira")
_NOTIFY_HINT = 'expected "schedule:NAME", "next:NAME", "user:ID", "webhook:NAME", "slack:#channel", "email:ADDRESS", "pagerduty" or "jira"'


def parse_notify(entry: str) -> NotifyTarget:
    kind, sep, value = entry.partition(":")
    kind = kind.strip().lower()
    value = value.strip()
    if kind in ("pagerduty", "jira"):
        if value:
            raise ValueError(f"{_show(entry)}: {kind} takes no argument ({_NOTIFY_HINT})")
        return NotifyTarget(kind, "")
    if kind not in NOTIFY_KINDS or not sep:
        raise ValueError(f"unknown recipient {_show(entry)} ({_NOTIFY_HINT})")
    if not value:
        raise ValueError(f"{_show(entry)} names nobody after '{kind}:' ({_NOTIFY_HINT})")
    if kind == "email":
        _check_email(value)
    if kind == "slack":
        _check_channel(value)
    return NotifyTarget(kind, value)


def _check_notify(value: str) -> str:
    parse_notify(value)
    return value


class EscalationLevel(Section):
    notify: list[Annotated[str, AfterValidator(_check_notify)]] = Field(min_length=1)
    repeat: int = Field(1, ge=1, le=1000)
    """How many times this level is notified (escalate_after_minutes apart) before the next."""
    escalate_after_minutes: float | None = Field(None, gt=0, le=MAX_MINUTES)
    """Overrides the policy's escalate_after_minutes for this level."""

    @property
    def targets(self) -> list[NotifyTarget]:
        return [parse_notify(entry) for entry in self.notify]


class EscalationPolicy(Section):
    immediate_notification: bool = True
    escalate_after_minutes: float = Field(15.0, gt=0, le=MAX_MINUTES)
    on_call_rotation: bool | None = None
    """Without `levels`: false pages no person (channels only); absent or true follows the schedules."""
    digest_mode: bool = False
    digest_interval_minutes: float = Field(30.0, gt=0, le=MAX_MINUTES)
    levels: list[EscalationLevel] = Field(default_factory=list)


class EscalationPolicies(Section):
    critical: EscalationPolicy | None = None
    high: EscalationPolicy | None = None
    medium: EscalationPolicy | None = None
    low: EscalationPolicy | None = None

    def for_severity(self, severity: Severity | str) -> EscalationPolicy | None:
        policy: EscalationPolicy | None = getattr(self, Severity(severity).value)
        return policy


Rotation = Literal["daily", "weekly", "custom"]
RotationStart = LooseDatetime | Annotated[date, Field(strict=False)]


class RotationFields(Section):
    rotation: Rotation = "weekly"
    rotation_length: Annotated[float | None, PlainSerializer(lambda v: None if v is None else format_duration(v))] = Field(
        None, validate_default=True
    )
    """Shift length for `rotation = "custom"` (e.g. "3d", "12h")."""
    handoff: str | None = None
    """"monday 09:00" for weekly rotations, "09:00" for daily and custom ones."""
    start: RotationStart | None = None
    """When the first user's first shift began (default: a fixed epoch, so rotations are stable)."""

    @field_validator("rotation_length", mode="before")
    @classmethod
    def _length(cls, value: object, info: ValidationInfo) -> float | None:
        rotation = info.data.get("rotation")
        if value is None:
            if rotation == "custom":
                raise ValueError('rotation = "custom" needs rotation_length (e.g. "3d" or "12h")')
            return None
        seconds = _positive_duration(value)
        if rotation is not None and rotation != "custom":
            raise ValueError(f'rotation_length only applies to rotation = "custom", not "{rotation}"')
        return seconds

    @field_validator("handoff")
    @classmethod
    def _handoff(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            day, _ = parse_handoff(value)
            rotation = info.data.get("rotation")
            if day is not None and rotation == "daily":
                raise ValueError('a daily rotation hands off every day: give only a time, like handoff = "09:00"')
            length = info.data.get("rotation_length")
            if day is not None and rotation == "custom" and length and length % (7 * 86400):
                raise ValueError('a weekday hand-off needs a rotation of whole weeks: give only a time, like "09:00"')
        return value

    @property
    def handoff_day(self) -> int | None:
        """Weekday of the hand-off (0 = Monday); Monday for weekly rotations by default."""
        if self.handoff is None:
            return 0 if self.rotation == "weekly" else None
        day = parse_handoff(self.handoff)[0]
        return 0 if day is None and self.rotation == "weekly" else day

    @property
    def handoff_time(self) -> time:
        return parse_handoff(self.handoff)[1] if self.handoff else time(9, 0)

    @property
    def shift_seconds(self) -> float:
        if self.rotation == "custom":
            assert self.rotation_length is not None
            return self.rotation_length
        return 86400.0 if self.rotation == "daily" else 7 * 86400.0


class ScheduleLayer(RotationFields):
    name: str | None = None
    users: list[Name] = Field(min_length=1)
    restrict_days: list[Weekday] | None = None
    """Only these weekdays are covered by this layer."""
    restrict_hours: Annotated[str, AfterValidator(_check_hours)] | None = None
    """Only these hours ("09:00-17:00") are covered by this layer."""


class ScheduleOverride(Section):
    user: Name
    """Who is on call instead."""
    covers: Name | None = None
    """Whose shift is covered (everyone's in the window when absent)."""
    start: LooseDatetime
    end: LooseDatetime
    reason: str | None = None

    @field_validator("end")
    @classmethod
    def _order(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if isinstance(start, datetime) and (start.tzinfo is None) == (end.tzinfo is None) and end <= start:
            raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
        return end


class Schedule(RotationFields):
    name: Name
    users: list[Name] = Field(default_factory=list)
    timezone: TimeZone | None = None
    """Default: engine.timezone."""
    layers: list[ScheduleLayer] = Field(default_factory=list)
    """Extra layers; a later layer wins over an earlier one (and over `users`) where it covers."""
    overrides: list[ScheduleOverride] = Field(default_factory=list)
    pagerduty_schedule: str | None = None
    """Take who is on call from this PagerDuty schedule id instead."""
    notify_before_shift_minutes: float = Field(60.0, ge=0, le=MAX_MINUTES)

    @model_validator(mode="after")
    def _someone(self) -> Schedule:
        if not self.users and not self.layers and not self.pagerduty_schedule:
            raise ValueError("a schedule needs users, layers or pagerduty_schedule")
        return self


class Webhook(Section):
    name: Name
    url: Url
    secret_env: EnvName | None = None
    """Environment variable holding the HMAC-SHA256 key for X-PulseGuard-Signature."""
    headers: Headers = Field(default_factory=dict)
    headers_env: HeadersEnv = Field(default_factory=dict)
    timeout: PositiveDuration = 10.0


class InternalNotifications(Section):
    slack_channels: list[SlackChannel] = Field(default_factory=list)
    email_groups: Recipients = Field(default_factory=list)


class ExternalNotifications(Section):
    status_page: bool = True
    """Publish incidents on the public status page (false: the page and its feeds are not served)."""
    customer_emails: Recipients = Field(default_factory=list)
    social_media: bool = False
    """Not supported: accepted only as false."""

    @field_validator("social_media")
    @classmethod
    def _social(cls, value: bool) -> bool:
        if value:
            raise ValueError("posting to social media is not supported; set it to false or remove it")
        return value


class Notifications(Section):
    internal: InternalNotifications = Field(default_factory=InternalNotifications)
    external: ExternalNotifications = Field(default_factory=ExternalNotifications)
    max_age: PositiveDuration = 86400.0
    """A notification still undelivered after this long is marked dead."""
    max_in_flight_per_destination: int = Field(4, ge=1, le=64)
    """Messages sent at once to one destination: a hanging receiver holds no more slots than this."""


class IncidentStates(Section):
    investigating: str = "Investigating"
    identified: str = "Identified"
    monitoring: str = "Monitoring"
    resolved: str = "Resolved"


class MaintenanceMode(Section):
    scheduled_maintenance: bool = True
    emergency_maintenance: bool = True


class StatusPageIntegration(Section):
    auto_update: bool = True
    title: str = "Status"
    description: str | None = None
    public_url: Url | None = None
    """Where the page is reachable, for links in e-mails and feeds."""
    subscriptions: bool = True
    """Visitors may subscribe by e-mail."""
    history_days: int = Field(90, ge=1, le=3650)
    incident_states: IncidentStates = Field(default_factory=IncidentStates)
    maintenance_mode: MaintenanceMode = Field(default_factory=MaintenanceMode)


class SlackIntegration(Section):
    webhook_url_env: EnvName | None = None
    signing_secret_env: EnvName | None = None
    bot_token_env: EnvName | None = None
    """Not supported: PulseGuard posts through the incoming webhook (webhook_url_env)."""
    incident_channels: list[SlackChannel] = Field(default_factory=list)
    status_updates: bool = True
    command_integration: bool = False

    @field_validator("bot_token_env")
    @classmethod
    def _bot(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "a Slack bot token is not supported: PulseGuard posts through an incoming webhook "
                "(webhook_url_env) and takes slash commands with signing_secret_env; remove bot_token_env"
            )
        return value


class PagerDutyIntegration(Section):
    events_url: Url = "https://events.pagerduty.com/v2/enqueue"
    api_url: Url = "https://api.pagerduty.com"
    routing_key_env: EnvName | None = None
    api_token_env: EnvName | None = None
    webhook_secret_env: EnvName | None = None
    escalation_policies: bool = False
    """Incidents whose first level notifies "pagerduty" are escalated by PagerDuty's own policy:
    PulseGuard notifies that level and runs no further levels or reminders for them."""
    on_call_schedule: bool = False
    """Schedules with `pagerduty_schedule` take who is on call from PagerDuty (GET /oncalls)."""
    incident_sync: bool = False
    """Acknowledgements and resolutions made in PagerDuty come back (v3 webhooks at
    /api/webhooks/pagerduty). Those made here always go to PagerDuty (Events API v2, same
    dedup_key), so a PagerDuty alert never stays open after its incident is settled."""


class JiraIntegration(Section):
    api_version: Literal[2, 3] = 2
    base_url: Url | None = None
    project: Annotated[str, Field(min_length=1)] | None = None
    """Without base_url and project nothing reaches Jira (`config check` warns)."""
    user_env: EnvName | None = None
    token_env: EnvName | None = None
    issue_type: str = "Task"
    resolve_transition: str = "Done"
    auto_create_tickets: bool = False
    link_incidents: bool = True
    sync_status: bool = False

    @property
    def configured(self) -> bool:
        """Whether there is a Jira to talk to."""
        return bool(self.base_url and self.project)


class EmailIntegration(Section):
    smtp_host: str = Field(min_length=1)
    smtp_port: int = Field(587, ge=1, le=65535)
    from_: Email = Field(alias="from")
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    starttls: bool = True
    """Use STARTTLS when the server offers it."""
    tls: bool = False
    """Connect with TLS from the start (port 465)."""
    timeout: PositiveDuration = 30.0


class AlertmanagerIntegration(Section):
    token_env: EnvName | None = None
    """Bearer token Alertmanager must send (none: the endpoint needs an API token)."""
    default_severity: SeverityField = Severity.HIGH
    severity_label: str = "severity"


class Integrations(Section):
    slack: SlackIntegration | None = None
    pagerduty: PagerDutyIntegration | None = None
    jira: JiraIntegration | None = None
    email: EmailIntegration | None = None
    alertmanager: AlertmanagerIntegration | None = None


class ConsoleSection(Section):
    theme: str | None = None
    readonly: bool = False
    bell: bool = True
    """Ring the terminal bell when a critical incident opens."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Action id → keys, e.g. "incident.ack" = "a"."""


class Config(Section):
    """The whole file. An absent section means its defaults (see `default_config`)."""

    engine: EngineSection = Field(default_factory=EngineSection)
    users: list[User] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    triggers: dict[Name, Trigger] = Field(default_factory=dict)
    ai_detection: AIDetection = Field(default_factory=AIDetection)
    escalation_policy: EscalationPolicies = Field(default_factory=EscalationPolicies)
    schedules: list[Schedule] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    notifications: Notifications = Field(default_factory=Notifications)
    status_page_integration: StatusPageIntegration = Field(default_factory=StatusPageIntegration)
    integrations: Integrations = Field(default_factory=Integrations)
    console: ConsoleSection = Field(default_factory=ConsoleSection)

    _path: Path | None = PrivateAttr(default=None)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The file this was loaded from (None for `default_config()`)."""
        return self._path

    def target(self, name: str) -> TargetBase | None:
        return next((t for t in self.targets if t.name == name), None)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def user(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name), None)

    def webhook(self, name: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.name == name), None)

    def schedule_timezone(self, schedule: Schedule) -> str:
        return schedule.timezone or self.engine.timezone

    @property
    def root_cause_categories(self) -> list[str]:
        extra = [c for c in self.engine.root_cause_categories if c not in DEFAULT_ROOT_CAUSE_CATEGORIES]
        return [*DEFAULT_ROOT_CAUSE_CATEGORIES, *dict.fromkeys(extra)]

    def env_references(self) -> list[tuple[str, str]]:
        """(key path, environment variable name) for every `*_env` key in the file."""
        found: list[tuple[str, str]] = []
        for path, key, value in _walk(self._raw):
            if key.endswith("_env") and isinstance(value, str):
                found.append((path, value))
            elif key == "headers_env" and isinstance(value, dict):
                found.extend((f"{path}.{k}", v) for k, v in value.items() if isinstance(v, str))
        return found

    def missing_env(self) -> list[str]:
        """Warnings for environment variables the file names but this process does not have."""
        return [f"{path}: environment variable {var} is not set" for path, var in self.env_references() if var not in os.environ]

    def warnings(self) -> list[str]:
        """`key.path: …` for settings that load but cannot take effect as written (a channel
        without its connection settings, a placeholder address): said, never silently skipped."""
        out: list[str] = []
        integ = self.integrations
        slack, email, pd, jira = integ.slack, integ.email, integ.pagerduty, integ.jira
        internal, external = self.notifications.internal, self.notifications.external
        raw_notes = _dict_in(self._raw, "notifications")
        for part, key in (("internal", "email_groups"), ("external", "customer_emails")):
            section = _dict_in(raw_notes, part)
            for i, value in enumerate(_list_in(section, key)):
                if is_email_placeholder(value):
                    out.append(
                        f'notifications.{part}.{key}[{i}]: "{EMAIL_PLACEHOLDER}" is what a web page shows for a hidden '
                        "address, not an address; nothing is sent to it (write the real address)"
                    )
        no_slack = "no Slack webhook is configured ([integrations.slack] webhook_url_env)"
        if internal.slack_channels and (slack is None or not slack.webhook_url_env):
            out.append(f"notifications.internal.slack_channels: {no_slack}: these channels are not notified")
        if slack is not None and slack.incident_channels and not slack.webhook_url_env:
            out.append(f"integrations.slack.incident_channels: {no_slack}: these channels are not notified")
        if slack is not None and slack.command_integration and not slack.signing_secret_env:
            out.append("integrations.slack.command_integration: signing_secret_env is not set: slash commands are refused until it is")
        no_smtp = "no SMTP server is configured ([integrations.email] smtp_host and from)"
        if internal.email_groups and email is None:
            out.append(f"notifications.internal.email_groups: {no_smtp}: these addresses get no e-mail")
        if external.customer_emails and email is None:
            out.append(f"notifications.external.customer_emails: {no_smtp}: customers get no e-mail")
        if jira is not None and not jira.configured:
            missing = " and ".join(k for k in ("base_url", "project") if not getattr(jira, k))
            out.append(f"integrations.jira: {missing} not set: no Jira issue is created, linked or synced until they are")
        if pd is not None:
            if not pd.routing_key_env:
                out.append(
                    "integrations.pagerduty: routing_key_env is not set: nothing is sent to PagerDuty "
                    "(and escalation_policies has no incident to hand over)"
                )
            sourced = [s.name for s in self.schedules if s.pagerduty_schedule]
            if pd.on_call_schedule and not sourced:
                out.append(
                    "integrations.pagerduty.on_call_schedule: no [[schedules]] entry names a pagerduty_schedule, "
                    "so every schedule keeps its own rotation"
                )
            if pd.on_call_schedule and sourced and not pd.api_token_env:
                out.append(
                    "integrations.pagerduty.api_token_env: not set: PagerDuty cannot be asked who is on call "
                    f"(schedules: {', '.join(sourced)})"
                )
        return out

    def summary(self) -> str:
        parts = [
            _count(len(self.targets), "target"),
            _count(len(self.triggers), "trigger"),
            _count(len(self.services), "service"),
            _count(len(self.users), "user"),
            _count(len(self.schedules), "schedule"),
            _count(sum(1 for s in Severity if self.escalation_policy.for_severity(s)), "escalation policy", "escalation policies"),
        ]
        return ", ".join(parts)


def secret_from_env(var: str | None) -> str | None:
    """The value of a secret named by a `*_env` key, or None when unset (or no key given)."""
    if not var:
        return None
    value = os.environ.get(var)
    return value if value else None


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


# ---------------------------------------------------------------------------------------------
# Problem reporting


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


def _path_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-tag segment (targets.0.http.url → targets.0.url) and the
    `[key]` suffixes of dict-key validation errors."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        if i == 2 and loc[0] == "targets" and isinstance(loc[1], int) and part in TARGET_KINDS:
            continue
        if isinstance(part, str) and part.startswith(("function-", "tagged-union[")):
            continue
        out.append(part)
    return tuple(out)


def _unwrap(annotation: Any) -> list[Any]:
    """The possible concrete types behind Annotated / Optional / Union."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _model_at(loc: tuple[Any, ...], raw: Any) -> type[BaseModel] | None:
    """The model class that validates the table at `loc` (for "did you mean" suggestions)."""
    current: list[Any] = [Config]
    node = raw
    for part in loc:
        nxt: list[Any] = []
        for candidate in current:
            for typ in _unwrap(candidate):
                origin = typing.get_origin(typ)
                if isinstance(typ, type) and issubclass(typ, BaseModel) and isinstance(part, str):
                    field = typ.model_fields.get(part)
                    if field is None:
                        field = next((f for f in typ.model_fields.values() if f.alias == part), None)
                    if field is not None:
                        nxt.append(field.annotation)
                elif origin is list and isinstance(part, int):
                    nxt.append(typing.get_args(typ)[0])
                elif origin is dict and isinstance(part, str):
                    nxt.append(typing.get_args(typ)[1])
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
        # A target's class comes from its `kind`.
        models = [t for c in nxt for t in _unwrap(c) if isinstance(t, type) and issubclass(t, BaseModel)]
        if isinstance(node, dict) and any(issubclass(m, TargetBase) for m in models):
            kind_model = TARGET_KINDS.get(str(node.get("kind")))
            nxt = [kind_model] if kind_model else nxt
        current = nxt
        if not current:
            return None
    models = [t for c in current for t in _unwrap(c) if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if len(models) == 1 else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "datetime_type": "a date and time (like 2025-03-30T02:30:00+01:00)",
    "datetime_parsing": "a date and time (like 2025-03-30T02:30:00+01:00)",
    "datetime_from_date_parsing": "a date and time (like 2025-03-30T02:30:00+01:00)",
    "date_type": "a date",
}
_LIMITS = {
    "greater_than": "greater than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
}


def _describe_error(error: Mapping[str, Any], loc: tuple[Any, ...], raw: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], raw)
        name = str(loc[-1]) if loc else ""
        message = "unknown section" if len(loc) == 1 else "unknown key"
        if model is not None and issubclass(model, TargetBase):
            owners = [k for k, m in TARGET_KINDS.items() if m is not model and name in m.model_fields]
            if owners:
                kind = next(k for k, m in TARGET_KINDS.items() if m is model)
                return f'unknown key for kind = "{kind}" ({name} belongs to {" and ".join(owners)} targets)'
        if model is not None:
            names = _field_names(model)
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            if close:
                return f"{message} (did you mean {close[0]!r}?)"
            if len(names) <= 16:
                return f"{message} (expected one of: {', '.join(names)})"
        return message
    if kind == "union_tag_invalid":
        return f"unknown kind {_show(value if not isinstance(value, dict) else value.get('kind'))} (expected one of: {', '.join(TARGET_KINDS)})"
    if kind == "union_tag_not_found":
        return f"required key is missing (expected one of: {', '.join(TARGET_KINDS)})"
    if kind in ("enum", "literal_error"):
        return f"expected one of {ctx.get('expected', '?')}, got {_show(value)}"
    if kind in _LIMITS:
        limit = _LIMITS[kind].format(**{k: ctx.get(k) for k in ("gt", "ge", "lt", "le")})
        return f"expected a number {limit}, got {_show(value)}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} entr{'y' if ctx.get('min_length') == 1 else 'ies'}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} entries"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("value_error", "assertion_error"):
        message = str(error.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix) :]
        return message
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {_show(value)}"
    return str(error.get("msg", "invalid value"))


def _entry_label(loc: tuple[Any, ...], raw: Any) -> str:
    """` (target "db-port")` for errors inside a named list entry, so nobody counts indexes."""
    if len(loc) < 2 or not isinstance(loc[1], int) or not isinstance(raw, dict):
        return ""
    section = raw.get(loc[0])
    if not isinstance(section, list) or loc[1] >= len(section) or not isinstance(section[loc[1]], dict):
        return ""
    entry = section[loc[1]]
    ident = entry.get("name", entry.get("id"))
    noun = {"targets": "target", "services": "service", "users": "user", "schedules": "schedule", "webhooks": "webhook"}.get(str(loc[0]))
    if not isinstance(ident, str) or noun is None:
        return ""
    if len(loc) == 3 and loc[2] in ("name", "id"):
        return ""
    return f' ({noun} "{ident}")'


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


_SECRET_WORDS = {
    "token", "password", "passwd", "secret", "webhook_url", "routing_key", "api_key", "apikey",
    "integration_key", "private_key", "access_key", "client_secret", "credentials", "bearer",
}  # fmt: skip
_SECRET_SUFFIXES = ("_token", "_password", "_secret", "_key", "_apikey")


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_WORDS or lowered.endswith(_SECRET_SUFFIXES)


def _secret_problems(raw: dict[str, Any]) -> dict[str, str]:
    """Key path → message for every secret written into the file itself."""
    found: dict[str, str] = {}
    for path, key, value in _walk(raw):
        if isinstance(value, (dict, list)):
            continue
        if _looks_secret(key):
            parent = re.sub(r"\[\d+\]$", "", path.rsplit(".", 2)[-2]) if "." in path else ""
            suggestion = "_".join(p for p in ("PULSEGUARD", parent.upper(), key.upper()) if p)
            found[path] = (
                f"a secret must not be written in the file; put it in an environment variable "
                f'and name that here instead: {key}_env = "{re.sub(r"[^A-Z0-9_]", "_", suggestion)}"'
            )
        elif path.rsplit(".", 2)[-2:-1] == ["headers"] and key.lower() in _SECRET_HEADERS:
            found[path] = (
                f"the {key} header carries a secret; give it through an environment variable: "
                f'headers_env = {{ {key} = "PULSEGUARD_{key.upper().replace("-", "_")}" }}'
            )
    return found


def _names(raw: dict[str, Any], section: str, key: str = "name") -> list[str]:
    entries = raw.get(section)
    if not isinstance(entries, list):
        return []
    return [e[key] for e in entries if isinstance(e, dict) and isinstance(e.get(key), str)]


def _known(kind: str, names: list[str]) -> str:
    names = list(dict.fromkeys(names))
    if not names:
        return f"there are no {kind} in the file"
    shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    return f"{kind}: {shown}"


def _reference_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Cross-references, checked on the raw document so they are reported even when other
    parts of the file are invalid."""
    problems: list[tuple[str, str]] = []
    services = _names(raw, "services")
    users = _names(raw, "users", "id")
    schedules = _names(raw, "schedules")
    webhooks = _names(raw, "webhooks")
    targets = _names(raw, "targets")
    integrations = _dict_in(raw, "integrations")

    for section, key, label in (
        ("services", "name", "service"),
        ("users", "id", "user"),
        ("schedules", "name", "schedule"),
        ("webhooks", "name", "webhook"),
        ("targets", "name", "target"),
    ):
        seen: dict[str, int] = {}
        entries = _list_in(raw, section)
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and isinstance(entry.get(key), str):
                if entry[key] in seen:
                    problems.append(
                        (f"{section}[{i}].{key}", f"duplicate {label} {_show(entry[key])} (also {section}[{seen[entry[key]]}])")
                    )
                else:
                    seen[entry[key]] = i

    def need_user(path: str, value: Any) -> None:
        if isinstance(value, str) and value not in users:
            problems.append((path, f"no user with id {_show(value)} ({_known('users', users)})"))

    for i, service in enumerate(_list_in(raw, "services")):
        if isinstance(service, dict) and isinstance(service.get("schedule"), str) and service["schedule"] not in schedules:
            problems.append(
                (f"services[{i}].schedule", f"no schedule named {_show(service['schedule'])} ({_known('schedules', schedules)})")
            )

    for i, target in enumerate(_list_in(raw, "targets")):
        if isinstance(target, dict) and isinstance(target.get("service"), str) and target["service"] not in services:
            problems.append((f"targets[{i}].service", f"no service named {_show(target['service'])} ({_known('services', services)})"))

    triggers = _dict_in(raw, "triggers")
    for name, trigger in triggers.items():
        if not isinstance(trigger, dict):
            continue
        for j, value in enumerate(_list_in(trigger, "targets")):
            if isinstance(value, str) and not any(c in value for c in "*?[") and value not in targets:
                problems.append((f"triggers.{name}.targets[{j}]", f"no target named {_show(value)} ({_known('targets', targets)})"))
        for j, value in enumerate(_list_in(trigger, "services")):
            if isinstance(value, str) and value not in services:
                problems.append((f"triggers.{name}.services[{j}]", f"no service named {_show(value)} ({_known('services', services)})"))

    def need_integration(path: str, name: str, why: str) -> None:
        if not isinstance(integrations.get(name), dict):
            problems.append((path, f"{why} needs an [integrations.{name}] section"))

    policies = _dict_in(raw, "escalation_policy")
    for severity, policy in policies.items():
        if not isinstance(policy, dict) or not isinstance(policy.get("levels"), list):
            continue
        for li, level in enumerate(policy["levels"]):
            if not isinstance(level, dict) or not isinstance(level.get("notify"), list):
                continue
            for ni, entry in enumerate(level["notify"]):
                if not isinstance(entry, str):
                    continue
                path = f"escalation_policy.{severity}.levels[{li}].notify[{ni}]"
                try:
                    target = parse_notify(entry)
                except ValueError:
                    continue  # reported by the schema
                if target.kind in ("schedule", "next") and target.value not in schedules:
                    problems.append((path, f"no schedule named {_show(target.value)} ({_known('schedules', schedules)})"))
                elif target.kind == "user":
                    need_user(path, target.value)
                elif target.kind == "webhook" and target.value not in webhooks:
                    problems.append((path, f"no webhook named {_show(target.value)} ({_known('webhooks', webhooks)})"))
                elif target.kind in ("pagerduty", "jira", "slack", "email"):
                    need_integration(path, target.kind, f"{_show(entry)}")

    for i, schedule in enumerate(_list_in(raw, "schedules")):
        if not isinstance(schedule, dict):
            continue
        for j, user in enumerate(_list_in(schedule, "users")):
            need_user(f"schedules[{i}].users[{j}]", user)
        for k, layer in enumerate(_list_in(schedule, "layers")):
            if isinstance(layer, dict) and isinstance(layer.get("users"), list):
                for j, user in enumerate(layer["users"]):
                    need_user(f"schedules[{i}].layers[{k}].users[{j}]", user)
        for k, override in enumerate(_list_in(schedule, "overrides")):
            if isinstance(override, dict):
                need_user(f"schedules[{i}].overrides[{k}].user", override.get("user"))
                if "covers" in override:
                    need_user(f"schedules[{i}].overrides[{k}].covers", override.get("covers"))
        if schedule.get("pagerduty_schedule") is not None:
            pd = integrations.get("pagerduty")
            if isinstance(pd, dict) and pd.get("on_call_schedule") is not True:
                problems.append(
                    (f"schedules[{i}].pagerduty_schedule", "a PagerDuty schedule needs integrations.pagerduty.on_call_schedule = true")
                )
            else:
                need_integration(f"schedules[{i}].pagerduty_schedule", "pagerduty", "a PagerDuty schedule")

    # Stakeholder lists without their channel load (the specification's blocks are pasted on
    # their own) and are warned about by `Config.warnings`.
    return problems


# ---------------------------------------------------------------------------------------------
# Loading


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found (write an example with `pulseguard init {path}`)"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a configuration file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None


_TOML_POS = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)$")


def parse_config_text(text: str, source: str = CONFIG_FILENAME) -> Config:
    """Validate TOML text; raise ConfigError with every problem (file name shown as `source`)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POS.match(message)
        if match:
            what, line, column = match.groups()
            raise ConfigError([f"{source}: line {line}, column {column}: TOML syntax error: {what}"]) from None
        if message.endswith("(at end of document)"):
            last = text.count("\n") + (0 if text.endswith("\n") else 1)
            what = message.removesuffix("(at end of document)").strip()
            raise ConfigError([f"{source}: line {max(last, 1)} (end of file): TOML syntax error: {what}"]) from None
        raise ConfigError([f"{source}: TOML syntax error: {message}"]) from None
    return _validate(raw, source)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def parse_config_json(text: str, source: str = "pulseguard.json") -> Config:
    """Validate JSON text with the same schema as the TOML file (the specification's blocks
    load as they are); raise ConfigError with every problem."""
    import json

    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        # json gives no position for a duplicate: find the key's second occurrence.
        hits = [m.start() for m in re.finditer(re.escape(json.dumps(exc.key)) + r"\s*:", text)]
        where = ""
        if len(hits) > 1:
            line = text.count("\n", 0, hits[1]) + 1
            column = hits[1] - (text.rfind("\n", 0, hits[1]) + 1) + 1
            where = f"line {line}, column {column}: "
        raise ConfigError([f"{source}: {where}duplicate key {json.dumps(exc.key)} (each key may appear once per object)"]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{source}: line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: (top level): expected a JSON object {{…}}, got {_show(raw)}"])
    return _validate(raw, source)


def _sort_key(path: str, order: dict[str, int]) -> tuple[int, int]:
    """Problems in file order: by section, then by list entry; stable within an entry."""
    match = re.match(r"^([^.\[]+)(?:\[(\d+)\])?", path)
    if not match:
        return (len(order), 0)
    return (order.get(match.group(1), len(order)), int(match.group(2) or 0))


def _validate(raw: dict[str, Any], source: str) -> Config:
    secrets = _secret_problems(raw)
    problems: list[tuple[str, str]] = list(secrets.items())
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = _clean_loc(tuple(error["loc"]))
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = (*loc, "kind")
            path = _path_text(loc)
            if path in secrets:
                continue  # the secret message already explains this key
            problems.append((path, _describe_error(error, loc, raw) + _entry_label(loc, raw)))
    problems.extend(_reference_problems(raw))
    if problems:
        order = {key: i for i, key in enumerate(raw)}
        seen: set[str] = set()
        lines: list[str] = []
        for path, message in sorted(problems, key=lambda p: _sort_key(p[0], order)):
            line = f"{source}: {path}: {message}"
            if line not in seen:
                seen.add(line)
                lines.append(line)
        raise ConfigError(lines)
    assert config is not None
    config._raw = raw
    for schedule in config.schedules:
        if schedule.timezone is None:
            schedule.timezone = config.engine.timezone
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a configuration file; ConfigError lists every problem, one per line."""
    file = Path(path)
    parse = parse_config_json if file.suffix.lower() == ".json" else parse_config_text
    config = parse(_read(file), str(path))
    config._path = file
    return config


def check_config(path: str | os.PathLike[str]) -> list[str]:
    """Every problem of a configuration file (empty when it is valid)."""
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems
    return []


def default_config() -> Config:
    """The configuration used when there is no file: nothing probed, nothing notified."""
    return Config()


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Which file to use: `--config`, then $PULSEGUARD_CONFIG, then ./pulseguard.toml, then
    the user config directory's pulseguard.toml. None when there is none (use defaults)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_CONFIG, "").strip()
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / CONFIG_FILENAME
    if local.is_file():
        return local
    from platformdirs import user_config_path

    user = user_config_path("pulseguard", appauthor=False) / CONFIG_FILENAME
    if user.is_file():
        return user
    return None


def example_config_text() -> str:
    """The commented example that `pulseguard init` writes."""
    return (Path(__file__).with_name("example.toml")).read_text(encoding="utf-8")
