"""Escalation policies and the notify-target syntax their levels use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field

from engine.config.fields import MAX_MINUTES, Section, _check_channel, _check_email, _show
from engine.core.domain import Severity


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
    # Kept as the engine reads it ("PagerDuty" → "pagerduty", "schedule: primary" →
    # "schedule:primary"): the engine matches entries as written, and an entry accepted here in
    # another spelling was dropped there as an unknown recipient.
    return str(parse_notify(value))


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

    def ignored(self, path: str) -> list[str]:
        """`path.key: …` for keys set here that the engine cannot act on as written: they load,
        so without this the user believes they took effect."""
        out = []
        if self.on_call_rotation is False and self.levels:
            out.append(
                f"{path}.on_call_rotation: has no effect with levels: the levels alone say who is paged "
                "(to page no person, leave schedule: and user: out of them, or remove the levels)"
            )
        if "digest_interval_minutes" in self.model_fields_set and not self.digest_mode:
            out.append(f"{path}.digest_interval_minutes: has no effect without digest_mode = true")
        return out


class EscalationPolicies(Section):
    critical: EscalationPolicy | None = None
    high: EscalationPolicy | None = None
    medium: EscalationPolicy | None = None
    low: EscalationPolicy | None = None

    def for_severity(self, severity: Severity | str) -> EscalationPolicy | None:
        policy: EscalationPolicy | None = getattr(self, Severity(severity).value)
        return policy

    def ignored(self, path: str) -> list[str]:
        return [line for s in Severity if (p := self.for_severity(s)) is not None for line in p.ignored(f"{path}.{s.value}")]
