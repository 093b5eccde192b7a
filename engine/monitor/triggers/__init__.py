"""Threshold triggers: conditions held for a duration open one incident per trigger and target.

The evaluator is synchronous and in memory: it sees every observation as it arrives and
decides; anything that touches incidents becomes an action on a queue that one worker task
applies through engine.incidents.services, so a probe never waits on the database.

Per trigger and target:

- A breach run starts at the first sample where the condition definitely holds; samples where
  it cannot be decided (missing data) neither extend nor break it; a definite "no" ends it.
  A gap of more than three intervals (no engine, no data) also ends it.
- When the run has lasted `duration_minutes` the trigger fires: one incident (source
  threshold, dedup key `threshold:<trigger>:<target>`, detected_at = the run's first sample,
  evidence = the breaching samples and the last error). An open incident with the same dedup
  key (another engine opened it) gets a timeline event instead; one resolved within the last
  `REOPEN_WINDOW` is reopened rather than duplicated.
- While the incident is open, a new breach after a recovery adds a timeline event; so does the
  recovery. After `recovery_minutes` healthy the incident moves to monitoring, and after
  `auto_resolve_minutes` (when set) it is resolved.
- Flapping (three or more breach/recovery cycles within `FLAP_WINDOW`) is announced once; the
  per-cycle events stop and the healthy period needed before monitoring is tripled.
- While a maintenance window covers the target nothing is opened (recoveries and events on
  incidents already open still go through); when the window ends, `reevaluate` opens what is
  still failing at once.

Modules: `rules` (rules, per-target state, actions), `evaluator` (the state machine) and
`worker` (applies actions to incidents).
"""

from engine.monitor.triggers.evaluator import Evaluator
from engine.monitor.triggers.rules import (
    ACTOR,
    FLAP_CYCLES,
    FLAP_WINDOW,
    MAX_EVIDENCE,
    PUSHED,
    REOPEN_WINDOW,
    Action,
    Rule,
    TriggerState,
    dedup_key,
    rules_from_config,
)
from engine.monitor.triggers.worker import IncidentWorker

__all__ = [
    "ACTOR",
    "FLAP_CYCLES",
    "FLAP_WINDOW",
    "MAX_EVIDENCE",
    "PUSHED",
    "REOPEN_WINDOW",
    "Action",
    "Evaluator",
    "IncidentWorker",
    "Rule",
    "TriggerState",
    "dedup_key",
    "rules_from_config",
]
