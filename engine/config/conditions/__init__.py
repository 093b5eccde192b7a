"""The trigger condition language: parsed by hand, evaluated over a mapping, never ``eval``-ed.

Grammar (keywords and operators are case-insensitive)::

    condition  := or_expr
    or_expr    := and_expr ( ("OR" | "||") and_expr )*
    and_expr   := not_expr ( ("AND" | "&&") not_expr )*
    not_expr   := ("NOT" | "!") not_expr | primary
    primary    := "(" or_expr ")" | operand [ cmp operand ]
    cmp        := ">" | ">=" | "<" | "<=" | "==" | "=" | "!="
    operand    := number | number "%" | "true" | "false" | series
    series     := name [ "{" label "=" '"' value '"' ( "," label "=" '"' value '"' )* "}" ]

A name is letters, digits, ``_``, ``.`` and ``:`` (not starting with a digit): a metric series
name such as ``http_requests_total`` or ``node.load1``, or one of the probe variables:

- ``response_time``   milliseconds
- ``status_code``     HTTP status code
- ``ok``              1 when the probe passed, 0 when it failed
- ``error_rate``      percent (0-100) of failed probes over the trigger's duration window
- ``cert_days_left``  days until the TLS certificate expires

``10%`` is the number 10: percent-valued variables such as ``error_rate`` are on a 0-100 scale,
so ``error_rate > 10%`` and ``error_rate > 10`` mean the same.

A name on its own (``ok``, ``NOT ok``) is true when its value is non-zero.

Missing data never fires a trigger: a comparison whose variable is absent (or None / NaN) is
*unknown*, and unknowns propagate through NOT/AND/OR the way SQL's NULL does (``NOT unknown`` is
unknown, ``unknown OR true`` is true, ``unknown AND false`` is false). ``evaluate`` returns True
only when the condition is definitely true.

Modules: `errors` (``ConditionError``), `tree` (the syntax tree, ``series_key`` and the
three-valued evaluation), `lexer` (tokens) and `parser` (``parse_condition``).
"""

from engine.config.conditions.errors import ConditionError
from engine.config.conditions.parser import parse_condition
from engine.config.conditions.tree import (
    COMPARATORS,
    PROBE_VARIABLES,
    And,
    Comparison,
    Condition,
    Node,
    Not,
    Number,
    Or,
    Series,
    Truthy,
    series_key,
)

__all__ = [
    "COMPARATORS",
    "PROBE_VARIABLES",
    "And",
    "Comparison",
    "Condition",
    "ConditionError",
    "Node",
    "Not",
    "Number",
    "Or",
    "Series",
    "Truthy",
    "parse_condition",
    "series_key",
]
