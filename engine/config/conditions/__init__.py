"""The trigger condition language."""

from engine.config.conditions.parser import (
    COMPARATORS,
    PROBE_VARIABLES,
    And,
    Comparison,
    Condition,
    ConditionError,
    Node,
    Not,
    Number,
    Or,
    Series,
    Truthy,
    parse_condition,
    series_key,
)

__all__ = [
    "And",
    "COMPARATORS",
    "Comparison",
    "Condition",
    "ConditionError",
    "Node",
    "Not",
    "Number",
    "Or",
    "parse_condition",
    "PROBE_VARIABLES",
    "Series",
    "series_key",
    "Truthy",
]
