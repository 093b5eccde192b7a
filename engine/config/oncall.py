"""On-call users and schedules (rotations, layers, overrides)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PlainSerializer, ValidationInfo, field_validator, model_validator

from engine.config.fields import (
    MAX_MINUTES,
    Duration,
    Email,
    EnvName,
    LooseDatetime,
    Name,
    Section,
    TimeZone,
    Weekday,
    _check_hours,
    _positive_duration,
    parse_handoff,
)
from engine.core.durations import format_duration

ContactKind = Literal["email", "slack", "sms", "webhook", "pagerduty"]
CONTACT_KINDS: tuple[str, ...] = ("email", "slack", "sms", "webhook", "pagerduty")


class ContactMethod(Section):
    """One way to reach a person: `[[users.contact]]`."""

    method: ContactKind
    name: Name | None = None
    """How rules name this method (default: the method, e.g. "sms")."""
    to: str | None = None
    """The address, Slack member id or phone number (default: the user's email, slack or phone)."""
    gateway: Name | None = None
    """sms and webhook: the [[webhooks]] entry the message is posted to."""
    routing_key_env: EnvName | None = None
    """pagerduty: the variable holding this person's Events API v2 routing key."""

    @property
    def label(self) -> str:
        return self.name or self.method


class ContactRule(Section):
    """When to use which method once the person is paged: `[[users.rules]] after = "2m" via = "sms"`."""

    after: Duration = 0.0
    via: Name


class User(Section):
    id: Name
    name: str | None = None
    email: Email | None = None
    slack: str | None = None
    phone: str | None = None
    timezone: TimeZone | None = None
    pagerduty_user_id: str | None = None
    contact: list[ContactMethod] = Field(default_factory=list)
    """How this person can be reached (e-mail, Slack DM, SMS or webhook gateway, PagerDuty)."""
    rules: list[ContactRule] = Field(default_factory=list)
    """When each method is used after the person is paged; without rules a page goes by e-mail."""

    def contact_method(self, label: str) -> ContactMethod | None:
        return next((c for c in self.contact if c.label == label), None)

    def contact_address(self, method: ContactMethod) -> str | None:
        """Where this method reaches the person: its `to`, else the user's own field."""
        if method.to:
            return method.to
        return {"email": self.email, "slack": self.slack, "sms": self.phone}.get(method.method)


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
