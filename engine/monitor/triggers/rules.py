"""Trigger rules (from the configuration), their per-target state and the actions they emit."""

from __future__ import annotations

import fnmatch
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from engine.config.conditions import PROBE_VARIABLES, Condition

ACTOR = "engine"
FLAP_WINDOW = 30 * 60.0
FLAP_CYCLES = 3
REOPEN_WINDOW = 30 * 60.0
MAX_EVIDENCE = 50
PUSHED = "pushed-metrics"  # pseudo-target for triggers that read only pushed series


def dedup_key(trigger: str, target: str) -> str:
    return f"threshold:{trigger}:{target}"


@dataclass
class Rule:
    name: str
    condition: Condition
    duration: float  # seconds
    severity: str
    auto_create: bool = True
    title: str | None = None
    description: str | None = None
    targets: list[str] | None = None
    services: list[str] | None = None
    recovery: float = 300.0
    auto_resolve: float | None = None
    # The resolution an automatic resolve records; by default "recovered without intervention".
    root_cause: str | None = None
    solution: str | None = None
    # Targets this rule evaluates only when `targets` names them exactly (heartbeat targets: a
    # generic rule, or a pattern, must not reach them; they have their own built-in rule).
    named_only: frozenset[str] = frozenset()
    probe_vars: bool = field(init=False)
    needs_error_rate: bool = field(init=False)

    def __post_init__(self) -> None:
        names = {v.split("{", 1)[0] for v in self.condition.variables}
        self.probe_vars = bool(names & set(PROBE_VARIABLES))
        self.needs_error_rate = "error_rate" in self.condition.variables

    @classmethod
    def from_config(cls, name: str, trigger: Any) -> Rule:
        severity = getattr(trigger.severity, "value", trigger.severity)
        auto_resolve = getattr(trigger, "auto_resolve_minutes", None)
        return cls(
            name=name,
            condition=trigger.condition,
            duration=float(trigger.duration_minutes) * 60.0,
            severity=str(severity),
            auto_create=bool(getattr(trigger, "auto_create_incident", True)),
            title=getattr(trigger, "title", None),
            description=getattr(trigger, "description", None),
            targets=getattr(trigger, "targets", None),
            services=getattr(trigger, "services", None),
            recovery=float(getattr(trigger, "recovery_minutes", 5.0)) * 60.0,
            auto_resolve=float(auto_resolve) * 60.0 if auto_resolve is not None else None,
        )

    def selects(self, target: str, service: str | None) -> bool:
        if target in self.named_only:
            return self.targets is not None and target in self.targets and (self.services is None or service in self.services)
        if self.targets is not None and not any(fnmatch.fnmatchcase(target, p) for p in self.targets):
            return False
        if self.services is not None and service not in self.services:
            return False
        return True


def rules_from_config(config: Any) -> list[Rule]:
    """The rules of the configuration's enabled triggers. Heartbeat targets are reached only by
    a trigger that names them in `targets`."""
    heartbeats = frozenset(t.name for t in config.targets if getattr(t, "kind", None) == "heartbeat")
    rules = [Rule.from_config(name, trig) for name, trig in config.triggers.items() if getattr(trig, "enabled", True)]
    for rule in rules:
        rule.named_only = heartbeats
    return rules


@dataclass
class TriggerState:
    rule: Rule
    target: str
    service: str | None
    breach_start: float | None = None
    last_seen: float | None = None
    last_breach_at: float | None = None
    # How late each of those samples started after its due time (runs are measured on the schedule).
    breach_lag: float = 0.0
    last_breach_lag: float = 0.0
    healthy_lag: float = 0.0
    samples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVIDENCE))
    last_error: str | None = None
    last_values: dict[str, float | None] = field(default_factory=dict)
    fired: bool = False
    incident: str | None = None
    phase: str | None = None  # "breaching" or "healthy" once fired
    healthy_since: float | None = None
    monitoring_sent: bool = False
    cycles: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    flapping: bool = False
    suppressed: bool = False
    silenced_until: float | None = None  # a silence matched its firing: quiet until then

    @property
    def key(self) -> str:
        return dedup_key(self.rule.name, self.target)

    def clear_binding(self) -> None:
        self.fired = False
        self.incident = None
        self.phase = None
        self.healthy_since = None
        self.monitoring_sent = False
        self.flapping = False
        self.cycles.clear()


# Actions the worker applies (kinds: open, event, monitoring, resolve, fired, recovered_silent)
@dataclass
class Action:
    kind: str
    state: TriggerState
    at: float
    summary: str = ""
    data: dict[str, Any] = field(default_factory=dict)
