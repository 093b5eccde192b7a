"""Escalation policies as plain data, and the order of their steps.

A policy (the `[escalation_policy.<severity>]` table) is copied as JSON onto the incident when
it opens, so editing the configuration never strands a running escalation. Steps go level by
level: each level is notified `repeat` times, `escalate_after_minutes` apart, then the next
level; the last level keeps repeating as a reminder until someone acknowledges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# A reminder loop that nobody answers still has to end somewhere.
MAX_ROUNDS = 1000


@dataclass(frozen=True)
class Level:
    notify: tuple[str, ...]
    repeat: int = 1
    escalate_after_minutes: float | None = None


@dataclass(frozen=True)
class Policy:
    severity: str
    immediate_notification: bool = True
    escalate_after_minutes: float = 15.0
    on_call_rotation: bool = False
    digest_mode: bool = False
    digest_interval_minutes: float = 30.0
    levels: tuple[Level, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["levels"] = [{"notify": list(lv.notify), "repeat": lv.repeat, "escalate_after_minutes": lv.escalate_after_minutes} for lv in self.levels]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        levels = tuple(
            Level(tuple(lv.get("notify") or ()), int(lv.get("repeat") or 1), lv.get("escalate_after_minutes"))
            for lv in data.get("levels") or ()
        )
        return cls(
            severity=str(data.get("severity", "")),
            immediate_notification=bool(data.get("immediate_notification", True)),
            escalate_after_minutes=float(data.get("escalate_after_minutes", 15.0)),
            on_call_rotation=bool(data.get("on_call_rotation", False)),
            digest_mode=bool(data.get("digest_mode", False)),
            digest_interval_minutes=float(data.get("digest_interval_minutes", 30.0)),
            levels=levels,
        )

    def wait_after(self, level: int) -> float:
        """Minutes between a notification of `level` (1-based) and the next step."""
        lv = self.levels[level - 1]
        return float(lv.escalate_after_minutes or self.escalate_after_minutes)

    def first_step(self) -> tuple[int, int, float]:
        """(level, round, minutes from the opening) of the first notification."""
        return 1, 1, 0.0 if self.immediate_notification else self.escalate_after_minutes

    def next_step(self, level: int, round_: int) -> tuple[int, int, float] | None:
        """The step after (level, round): (level, round, minutes after it), or None at the end."""
        if not self.levels or round_ >= MAX_ROUNDS:
            return None
        wait = self.wait_after(level)
        if level < len(self.levels):
            if round_ < self.levels[level - 1].repeat:
                return level, round_ + 1, wait
            return level + 1, 1, wait
        return level, round_ + 1, wait  # the last level repeats as a reminder

    def step_kind(self, level: int, round_: int) -> str:
        if level == 1 and round_ == 1:
            return "triggered"
        if round_ == 1:
            return "escalated"
        return "reminder"


def default_levels(config: Any, on_call_rotation: bool) -> tuple[Level, ...]:
    """Who hears of an incident whose policy names no levels: the on-call people (when the
    policy follows the rotation) and the Slack incident channels, else the internal groups."""
    notify: list[str] = []
    if on_call_rotation:
        notify += [f"schedule:{s.name}" for s in config.schedules[:1]]
    slack = config.integrations.slack
    if slack is not None:
        notify += [f"slack:{c}" for c in slack.incident_channels]
    if not notify:
        internal = config.notifications.internal
        notify += [f"slack:{c}" for c in internal.slack_channels if slack is not None]
        notify += [f"email:{a}" for a in internal.email_groups if config.integrations.email is not None]
    return (Level(tuple(notify)),) if notify else ()


def policy_for(config: Any, severity: str) -> Policy | None:
    """The policy in force for a severity, or None when the configuration has none."""
    raw = config.escalation_policy.for_severity(severity)
    if raw is None:
        return None
    levels = tuple(Level(tuple(lv.notify), lv.repeat, lv.escalate_after_minutes) for lv in raw.levels)
    if not levels:
        levels = default_levels(config, raw.on_call_rotation)
    return Policy(
        severity=str(severity),
        immediate_notification=raw.immediate_notification,
        escalate_after_minutes=raw.escalate_after_minutes,
        on_call_rotation=raw.on_call_rotation,
        digest_mode=raw.digest_mode,
        digest_interval_minutes=raw.digest_interval_minutes,
        levels=levels,
    )
