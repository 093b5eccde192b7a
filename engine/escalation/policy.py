"""Escalation policies as plain data, and the order of their steps.

A policy (the `[escalation_policy.<severity>]` table) is copied as JSON onto the incident when
it opens, so editing the configuration never strands a running escalation. Steps go level by
level: each level is notified `repeat` times, `escalate_after_minutes` apart, then the next
level; the last level keeps repeating as a reminder until someone acknowledges. A policy
that names no levels gets them derived from the schedules (`derived_levels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
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
    # The severity whose table this is, when the incident's severity has none of its own.
    follows: str | None = None
    # True when the levels were derived from the schedules (the table names none).
    derived: bool = False
    # PagerDuty escalates this incident by its own policy: only the first level is notified.
    handoff: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["levels"] = [
            {"notify": list(lv.notify), "repeat": lv.repeat, "escalate_after_minutes": lv.escalate_after_minutes} for lv in self.levels
        ]
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
            follows=data.get("follows"),
            derived=bool(data.get("derived", False)),
            handoff=data.get("handoff") or None,
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
        if not self.levels or round_ >= MAX_ROUNDS or self.handoff:
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


SEVERITIES = ("critical", "high", "medium", "low")


def policy_set(config: Any, services: Sequence[str] = ()) -> tuple[str | None, Any]:
    """(name, policies) an incident of `services` follows: the set named by the first of its
    services that names one (services own routing), else [escalation_policy] (name None)."""
    for name in services:
        service = config.service(name)
        chosen = getattr(service, "escalation_policy", None) if service is not None else None
        if chosen and chosen in getattr(config, "escalation_policies", {}):
            return chosen, config.escalation_policies[chosen]
    return None, config.escalation_policy


def policy_source(config: Any, severity: str, services: Sequence[str] = ()) -> tuple[str, Any] | None:
    """(severity, table) whose policy a severity follows: its own, else the nearest less
    severe one, else the nearest more severe one; None when there is no policy at all. The
    table comes from the set the incident's services pick (policy_set).

    So the spec's block (critical, high, medium) pages for low too, the medium way.
    """
    severity = str(getattr(severity, "value", severity))
    _, policies = policy_set(config, services)
    i = SEVERITIES.index(severity)
    for other in (*SEVERITIES[i:], *reversed(SEVERITIES[:i])):
        raw = policies.for_severity(other)
        if raw is not None:
            return other, raw
    return None


def _people(schedule: Any) -> set[str]:
    people = set(schedule.users)
    for layer in schedule.layers:
        people.update(layer.users)
    return people


def home_schedule(config: Any, services: Sequence[str] = ()) -> str | None:
    """The schedule paged first: the first of the incident's services that names one, else
    the first schedule of the file."""
    names = [s.name for s in config.schedules]
    for name in services:
        service = config.service(name)
        if service is not None and service.schedule in names:
            schedule: str = service.schedule
            return schedule
    return names[0] if names else None


def derived_levels(config: Any, raw: Any, services: Sequence[str] = ()) -> tuple[Level, ...]:
    """The chain of a policy that names no levels.

    Level 1: the on-call person of the home schedule and the Slack incident channels. Then
    each later schedule of the file in turn (not another service's own schedule); with none,
    whoever takes over next on the home schedule's rotation. The last level repeats as the
    reminder. `on_call_rotation = false` pages no person: the channels only.
    """
    channels: list[str] = []
    slack = config.integrations.slack
    if slack is not None:
        channels += [f"slack:{c}" for c in slack.incident_channels]
    if not channels:
        internal = config.notifications.internal
        channels += [f"slack:{c}" for c in internal.slack_channels if slack is not None]
        channels += [f"email:{a}" for a in internal.email_groups if config.integrations.email is not None]
    home = home_schedule(config, services) if raw.on_call_rotation is not False else None
    if home is None:
        return (Level(tuple(channels)),) if channels else ()
    owned = {s.schedule for s in config.services if s.schedule} - {home}
    names = [s.name for s in config.schedules]
    later = [n for n in names[names.index(home) + 1 :] if n not in owned]
    levels = [Level((f"schedule:{home}", *channels))]
    levels += [Level((f"schedule:{n}",)) for n in later]
    sched = config.schedule(home)
    if not later and not sched.pagerduty_schedule and len(_people(sched)) > 1:
        levels.append(Level((f"next:{home}",)))
    return tuple(levels)


def policy_for(config: Any, severity: str, services: Sequence[str] = ()) -> Policy | None:
    """The policy in force for a severity (and the incident's services), or None when the
    configuration has none. The one place a chain is derived: the change handling, `config check`
    and `escalation preview` all use it."""
    found = policy_source(config, severity, services)
    if found is None:
        return None
    source, raw = found
    levels = tuple(Level(tuple(lv.notify), lv.repeat, lv.escalate_after_minutes) for lv in raw.levels)
    derived = not levels
    if derived:
        levels = derived_levels(config, raw, services)
    return pagerduty_handoff(
        config,
        Policy(
            severity=str(getattr(severity, "value", severity)),
            immediate_notification=raw.immediate_notification,
            escalate_after_minutes=raw.escalate_after_minutes,
            on_call_rotation=raw.on_call_rotation is not False,
            digest_mode=raw.digest_mode,
            digest_interval_minutes=raw.digest_interval_minutes,
            levels=levels,
            follows=None if source == str(getattr(severity, "value", severity)) else source,
            derived=derived,
        ),
    )


def pagerduty_handoff(config: Any, policy: Policy) -> Policy:
    """With `integrations.pagerduty.escalation_policies`, an incident whose first level goes to
    PagerDuty is escalated by PagerDuty's own policy: PulseGuard notifies that level once and
    runs no further levels or reminders. Without a routing key in the environment nothing
    reaches PagerDuty, so PulseGuard keeps escalating itself."""
    from engine.config.model import secret_from_env

    pd = getattr(config.integrations, "pagerduty", None)
    if pd is None or not pd.escalation_policies or not policy.levels or "pagerduty" not in policy.levels[0].notify:
        return policy
    if not secret_from_env(pd.routing_key_env):
        return policy
    return replace(policy, levels=policy.levels[:1], handoff="pagerduty")
