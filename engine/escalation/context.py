"""The configuration escalation works with in one process: the schedules built from it, the
users by id, and who PagerDuty has on call. One Context is shared by a process's change hook
and its engine loops (see engine.escalation.wiring)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
# The statuses an incident escalates in (until acknowledged).
OPEN = {"triggered", "investigating", "identified", "monitoring"}


@dataclass
class Context:
    config: Any
    schedules: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)
    # schedule name -> user ids PagerDuty has on call (refreshed by the engine loop)
    pagerduty_oncall: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, config: Any) -> Context:
        from engine.core.domain import InvalidInput
        from engine.oncall.schedule import build_schedule

        schedules = {}
        for i, raw in enumerate(config.schedules):
            try:
                s = build_schedule(raw, config.engine.timezone, f"schedules[{i}]")
            except InvalidInput as exc:
                # One unusable schedule must not silence every escalation: skip it, loudly.
                log.error("schedule ignored: %s", exc)
                continue
            schedules[s.name] = s
        return cls(config, schedules, {u.id: u for u in config.users})
