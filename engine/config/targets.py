"""Monitored services, probe targets and alert triggers."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from engine.config.fields import MAX_MINUTES, ConditionField, EnvName, Name, PositiveDuration, Section, SeverityField, Tag, Url, _show
from engine.core.domain import Severity
from engine.core.durations import format_duration
from engine.core.linear_regex import RegexError, compile_regex


def _check_runbook(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("expected an https:// URL or a Markdown file's path, got an empty string")
    if "://" in value and not value.lower().startswith(("https://", "http://")):
        raise ValueError(f"expected an http(s):// URL or a file path, got {_show(value)}")
    return value


# A URL, or a Markdown file whose existence load_config checks (it knows the file's folder).
Runbook = Annotated[str, AfterValidator(_check_runbook)]


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
    owner: str | None = None
    """The team that owns the service (shown by `pulseguard services`, the API and the console)."""
    escalation_policy: Name | None = None
    """A set in [escalation_policies.NAME] this service's incidents follow, per severity, instead of [escalation_policy]."""
    runbook: Runbook | None = None
    """What to do when this service breaks: an https:// URL or a Markdown file (relative to the configuration file's folder)."""


_SECRET_HEADERS = {
    "authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token",
    "private-token", "x-access-token",
}  # fmt: skip


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", name):
            raise ValueError(f"{_show(name)} is not a valid HTTP header name")
    return value


def _check_header_value(value: str) -> str:
    # A CR or LF would end the header line: the rest would be sent as headers (or a body) of its own.
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError("a header value cannot contain a line break or NUL character")
    return value


Headers = Annotated[dict[str, Annotated[str, AfterValidator(_check_header_value)]], AfterValidator(_check_headers)]
HeadersEnv = Annotated[dict[str, EnvName], AfterValidator(_check_headers)]


def missing_data_gap(interval: float) -> float:
    """How long without a result the trigger evaluator reads as missing data (it restarts a
    breach after such a gap, so `duration_minutes` starts over)."""
    return max(3 * interval, 60.0)


def hung_spacing(interval: float, timeout: float) -> float:
    """Seconds between the results of a target whose every probe hangs until its timeout: the
    scheduler skips each round due while a probe runs, so the next starts on the round after."""
    return (math.floor(timeout / interval) + 1) * interval if timeout >= interval else interval


class TargetBase(Section):
    name: Name
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 10.0
    """How long one probe may take; longer than `interval` is a warning (the rounds due meanwhile are skipped)."""
    service: Name | None = None
    """The [[services]] entry this target belongs to (its incidents affect that service)."""
    enabled: bool = True
    tags: list[Tag] = Field(default_factory=list)
    """NAME or NAME=VALUE (`team=payments`); silences match them as `label.NAME`."""

    @field_validator("timeout")
    @classmethod
    def _timeout_fits(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        # A heartbeat's interval is how often its job pings, not how often it is checked.
        if cls is HeartbeatTarget or not isinstance(interval, float):
            return value
        spacing = hung_spacing(interval, value)
        if spacing >= missing_data_gap(interval):
            raise ValueError(
                f'timeout = "{format_duration(value)}" with interval = "{format_duration(interval)}": a probe that hangs '
                f"that long leaves {format_duration(spacing)} between results, which triggers read as missing data "
                f"(from {format_duration(missing_data_gap(interval))}), so they would never fire for a hung target; "
                "make timeout at most the interval"
            )
        return value

    def timeout_warning(self) -> str | None:
        """What to say about a `timeout` written longer than the `interval` (None: nothing)."""
        if isinstance(self, HeartbeatTarget) or "timeout" not in self.model_fields_set or self.timeout <= self.interval:
            return None
        return (
            f'timeout = "{format_duration(self.timeout)}" is longer than interval = "{format_duration(self.interval)}": '
            f"while a probe runs the next one due is skipped, so a target that hangs is probed only every "
            f"{format_duration(hung_spacing(self.interval, self.timeout))} (make timeout at most the interval)"
        )


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
    """A regular expression the body must contain a match of (RE2 syntax, linear time)."""
    follow_redirects: bool = True
    verify_tls: bool = True

    @field_validator("expect_body", "expect_body_regex")
    @classmethod
    def _body_expected(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A HEAD response has no body: the check could never pass, an incident would never close.
        if value is not None and info.data.get("method") == "HEAD":
            raise ValueError('method = "HEAD" gets no body to search; use GET, or drop the body check')
        return value

    @field_validator("expect_body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_regex(value)
            except RegexError as exc:
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


class HeartbeatTarget(TargetBase):
    """A dead-man's switch: a job pings `/api/heartbeats/TOKEN` (POST, or GET for a cron
    `curl`) at least every `interval`; no ping for `interval` + `grace` opens an incident, and
    the next ping resolves it."""

    kind: Literal["heartbeat"]
    grace: PositiveDuration = 60.0
    """How late a ping may be before the job counts as missed."""
    token_env: EnvName
    """Environment variable holding the secret token in the ping URL (both the engine and the API read it)."""
    severity: SeverityField = Severity.HIGH
    """Severity of the incident a missed ping opens."""

    @property
    def check_interval(self) -> float:
        """How often the engine looks for a missed ping: often enough to notice within about a
        tenth of the allowed silence, at least every 30 s, at most every second."""
        return min(30.0, max(1.0, (float(self.interval) + float(self.grace)) / 10.0))


TARGET_KINDS: dict[str, type[TargetBase]] = {
    "http": HttpTarget,
    "tcp": TcpTarget,
    "prometheus": PrometheusTarget,
    "host": HostTarget,
    "heartbeat": HeartbeatTarget,
}
Target = Annotated[HttpTarget | TcpTarget | PrometheusTarget | HostTarget | HeartbeatTarget, Field(discriminator="kind")]


class Trigger(Section):
    condition: ConditionField
    """See engine/config/conditions/ (the grammar is in its __init__.py); error_rate is a percentage (0-100)."""
    duration_minutes: float = Field(0.0, ge=0, le=MAX_MINUTES)
    """How long the condition must hold before it fires; fractions allowed (0.05 = 3 s)."""
    auto_create_incident: bool = True
    severity: SeverityField
    description: str | None = None
    title: str | None = None
    """Incident title; defaults to the trigger name and target."""
    targets: list[str] | None = None
    """Target names (or glob patterns) the trigger applies to; default: all targets. A heartbeat
    target only when named exactly (it has its built-in `missed_heartbeat` trigger)."""
    services: list[Name] | None = None
    """Only targets of these services."""
    recovery_minutes: float = Field(5.0, ge=0, le=MAX_MINUTES)
    """Healthy this long after firing → the incident moves to monitoring."""
    auto_resolve_minutes: float | None = Field(None, ge=0, le=MAX_MINUTES)
    """Healthy this long → the incident is resolved automatically (off by default)."""
    runbook: Runbook | None = None
    """What to do when this trigger fires: an https:// URL or a Markdown file (relative to the configuration file's folder); it wins over the service's."""
    enabled: bool = True
