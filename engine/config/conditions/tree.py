"""The condition's syntax tree and its three-valued (SQL NULL) evaluation over a mapping."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

PROBE_VARIABLES: dict[str, str] = {
    "response_time": "response time in milliseconds",
    "status_code": "HTTP status code",
    "ok": "1 when the probe passed, 0 when it failed",
    "error_rate": "percent (0-100) of failed probes over the trigger's duration window",
    "cert_days_left": "days until the TLS certificate expires",
}

COMPARATORS = (">", ">=", "<", "<=", "==", "!=")


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The canonical key of a series, as used in ``Condition.variables`` and value mappings.

    ``series_key("up", {"job": "api"})`` is ``'up{job="api"}'``; labels are sorted by name, so
    the same series always has the same key. Without labels the key is the bare name.
    """
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


@dataclass(frozen=True)
class Number:
    value: float
    # Only how it is written: 10% is the number 10 (percent-valued variables are 0-100).
    percent: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        text = str(int(self.value)) if self.value.is_integer() and abs(self.value) < 1e15 else repr(self.value)
        return text + ("%" if self.percent else "")

    def resolve(self, values: Mapping[str, float | None]) -> float | None:
        return self.value


@dataclass(frozen=True)
class Series:
    """A variable: a probe variable or a metric series, optionally with exact-match labels."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return series_key(self.name, dict(self.labels))

    def __str__(self) -> str:
        return self.key

    def resolve(self, values: Mapping[str, float | None]) -> float | None:
        raw = values.get(self.key)
        if raw is None:
            return None
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(number) else number


Operand = Number | Series

# Precedence for printing: OR binds loosest.
_PREC_OR, _PREC_AND, _PREC_NOT, _PREC_ATOM = 1, 2, 3, 4


@dataclass(frozen=True)
class Comparison:
    left: Operand
    op: str
    right: Operand

    precedence = _PREC_ATOM

    def truth(self, values: Mapping[str, float | None]) -> bool | None:
        a, b = self.left.resolve(values), self.right.resolve(values)
        if a is None or b is None:
            return None
        if self.op == ">":
            return a > b
        if self.op == ">=":
            return a >= b
        if self.op == "<":
            return a < b
        if self.op == "<=":
            return a <= b
        if self.op == "==":
            return a == b
        return a != b

    def variables(self) -> set[str]:
        return {o.key for o in (self.left, self.right) if isinstance(o, Series)}

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Truthy:
    """A bare operand used as a condition (``ok``): true when non-zero."""

    operand: Operand

    precedence = _PREC_ATOM

    def truth(self, values: Mapping[str, float | None]) -> bool | None:
        value = self.operand.resolve(values)
        return None if value is None else value != 0

    def variables(self) -> set[str]:
        return {self.operand.key} if isinstance(self.operand, Series) else set()

    def __str__(self) -> str:
        if isinstance(self.operand, Number):
            return "true" if self.operand.value != 0 else "false"
        return str(self.operand)


@dataclass(frozen=True)
class Not:
    child: Node

    precedence = _PREC_NOT

    def truth(self, values: Mapping[str, float | None]) -> bool | None:
        inner = self.child.truth(values)
        return None if inner is None else not inner

    def variables(self) -> set[str]:
        return self.child.variables()

    def __str__(self) -> str:
        return f"NOT {_wrap(self.child, _PREC_NOT)}"


@dataclass(frozen=True)
class Junction:
    """AND and OR: the first child that is definitely `decides` settles the result; otherwise
    any unknown child makes it unknown (SQL NULL logic)."""

    children: tuple[Node, ...]

    decides: ClassVar[bool]
    word: ClassVar[str]
    precedence: ClassVar[int]

    def truth(self, values: Mapping[str, float | None]) -> bool | None:
        result: bool | None = not self.decides
        for child in self.children:
            value = child.truth(values)
            if value is self.decides:
                return self.decides
            if value is None:
                result = None
        return result

    def variables(self) -> set[str]:
        return set().union(*(c.variables() for c in self.children))

    def __str__(self) -> str:
        return f" {self.word} ".join(_wrap(c, self.precedence + 1) for c in self.children)


@dataclass(frozen=True)
class And(Junction):
    decides = False
    word = "AND"
    precedence = _PREC_AND


@dataclass(frozen=True)
class Or(Junction):
    decides = True
    word = "OR"
    precedence = _PREC_OR


Node = Comparison | Truthy | Not | And | Or


def _wrap(node: Node, minimum: int) -> str:
    return str(node) if node.precedence >= minimum else f"({node})"


@dataclass(frozen=True)
class Condition:
    """A parsed condition. Equal conditions have equal trees, whatever their original spelling."""

    root: Node
    text: str = field(default="", compare=False)

    def evaluate(self, values: Mapping[str, float | None]) -> bool:
        """True only when the condition definitely holds; missing values never make it fire."""
        return self.root.truth(values) is True

    def truth(self, values: Mapping[str, float | None]) -> bool | None:
        """Three-valued result: None when missing data leaves the answer unknown."""
        return self.root.truth(values)

    @property
    def variables(self) -> frozenset[str]:
        """Keys of every series and probe variable the condition reads (see ``series_key``)."""
        return frozenset(self.root.variables())

    @property
    def series(self) -> frozenset[Series]:
        """The same as ``variables`` but as ``Series`` (name and labels kept apart)."""
        found: set[Series] = set()
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Comparison):
                found.update(o for o in (node.left, node.right) if isinstance(o, Series))
            elif isinstance(node, Truthy):
                if isinstance(node.operand, Series):
                    found.add(node.operand)
            elif isinstance(node, Not):
                stack.append(node.child)
            else:
                stack.extend(node.children)
        return frozenset(found)

    def __str__(self) -> str:
        return str(self.root)
