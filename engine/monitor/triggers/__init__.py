"""Threshold triggers."""

from engine.monitor.triggers.evaluator import (
    ACTOR,
    FLAP_CYCLES,
    FLAP_WINDOW,
    MAX_EVIDENCE,
    PUSHED,
    REOPEN_WINDOW,
    Action,
    Evaluator,
    IncidentWorker,
    Rule,
    TriggerState,
    dedup_key,
    rules_from_config,
)

__all__ = [
    "Action",
    "ACTOR",
    "dedup_key",
    "Evaluator",
    "FLAP_CYCLES",
    "FLAP_WINDOW",
    "IncidentWorker",
    "MAX_EVIDENCE",
    "PUSHED",
    "REOPEN_WINDOW",
    "Rule",
    "rules_from_config",
    "TriggerState",
]
