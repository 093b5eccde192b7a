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
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
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

PROBE_VARIABLES: dict[str, str] = {
    "response_time": "response time in milliseconds",
    "status_code": "HTTP status code",
    "ok": "1 when the probe passed, 0 when it failed",
    "error_rate": "percent (0-100) of failed probes over the trigger's duration window",
    "cert_days_left": "days until the TLS certificate expires",
}

COMPARATORS = (">", ">=", "<", "<=", "==", "!=")
_MAX_DEPTH = 64
_MAX_LENGTH = 4096


class ConditionError(ValueError):
    """A condition that does not parse; ``column`` is 1-based and points at the problem."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return f"column {self.column}: {self.message}"


# ---------------------------------------------------------------------------------------------
# Syntax tree


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
class And:
    children: tuple[Node, ...]

    precedence = _PREC_AND

    def truth(self, values: Mapping[str, float | None]) -> bool | None:
        result: bool | None = True
        for child in self.children:
            value = child.truth(values)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    def variables(self) -> set[str]:
        return set().union(*(c.variables() for c in self.children))

    def __str__(self) -> str:
        return " AND ".join(_wrap(c, _PREC_AND + 1) for c in self.children)


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]

    precedence = _PREC_OR

    def truth(self, values: Mapping[str, float | None]) -> bool | None:
        result: bool | None = False
        for child in self.children:
            value = child.truth(values)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    def variables(self) -> set[str]:
        return set().union(*(c.variables() for c in self.children))

    def __str__(self) -> str:
        return " OR ".join(_wrap(c, _PREC_OR + 1) for c in self.children)


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


# ---------------------------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # NUM, NAME, CMP, AND, OR, NOT, LPAREN, RPAREN, BOOL, END
    text: str
    column: int  # 1-based
    value: object = None

    def describe(self) -> str:
        return "the end of the condition" if self.kind == "END" else f"'{self.text}'"


_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_.:]*")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"and": "AND", "or": "OR", "not": "NOT", "true": "BOOL", "false": "BOOL"}


def _read_labels(text: str, pos: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """Read ``{a="x",b="y"}`` starting at the brace at ``pos``; return labels and the end."""
    labels: dict[str, str] = {}
    i = pos + 1
    n = len(text)

    def skip_spaces(j: int) -> int:
        while j < n and text[j].isspace():
            j += 1
        return j

    i = skip_spaces(i)
    if i < n and text[i] == "}":
        return (), i + 1
    while True:
        i = skip_spaces(i)
        m = _LABEL_NAME.match(text, i)
        if not m:
            found = f"'{text[i]}'" if i < n else "the end of the condition"
            raise ConditionError(f"expected a label name inside '{{', found {found}", i + 1)
        label = m.group()
        i = skip_spaces(m.end())
        if text.startswith("==", i) or text.startswith("!=", i) or text.startswith("=~", i):
            raise ConditionError(f"labels match exactly, with a single '=' (like {label}=\"api\")", i + 1)
        if not text.startswith("=", i):
            raise ConditionError(f"expected '=' after label '{label}'", i + 1)
        i = skip_spaces(i + 1)
        if i >= n or text[i] != '"':
            raise ConditionError(f"expected a quoted label value after '{label}=', like {label}=\"api\"", i + 1)
        start = i
        i += 1
        chars: list[str] = []
        while True:
            if i >= n:
                raise ConditionError("unterminated label value (missing closing '\"')", start + 1)
            ch = text[i]
            if ch == "\\" and i + 1 < n:
                nxt = text[i + 1]
                chars.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                i += 2
                continue
            if ch == '"':
                i += 1
                break
            chars.append(ch)
            i += 1
        if label in labels:
            raise ConditionError(f"label '{label}' is given twice", start + 1)
        labels[label] = "".join(chars)
        i = skip_spaces(i)
        if i < n and text[i] == ",":
            i = skip_spaces(i + 1)
            if i < n and text[i] == "}":  # trailing comma, as Prometheus allows
                return tuple(sorted(labels.items())), i + 1
            continue
        if i < n and text[i] == "}":
            return tuple(sorted(labels.items())), i + 1
        found = f"'{text[i]}'" if i < n else "the end of the condition"
        raise ConditionError(f"expected ',' or '}}' in the label list, found {found}", i + 1)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        col = i + 1
        if ch.isspace():
            i += 1
            continue
        if ch == "(":
            tokens.append(_Token("LPAREN", ch, col))
            i += 1
            continue
        if ch == ")":
            tokens.append(_Token("RPAREN", ch, col))
            i += 1
            continue
        two = text[i : i + 2]
        if two in (">=", "<=", "==", "!="):
            tokens.append(_Token("CMP", two, col, two))
            i += 2
            continue
        if two in ("=>", "=<"):
            raise ConditionError(f"unknown operator '{two}'; did you mean '{two[::-1]}'?", col)
        if two == "<>":
            raise ConditionError("unknown operator '<>'; did you mean '!='?", col)
        if two == "&&":
            tokens.append(_Token("AND", two, col))
            i += 2
            continue
        if two == "||":
            tokens.append(_Token("OR", two, col))
            i += 2
            continue
        if ch in "&|":
            raise ConditionError(f"unknown operator '{ch}'; did you mean '{ch * 2}'?", col)
        if ch in "<>":
            tokens.append(_Token("CMP", ch, col, ch))
            i += 1
            continue
        if ch == "=":
            tokens.append(_Token("CMP", ch, col, "=="))
            i += 1
            continue
        if ch == "!":
            tokens.append(_Token("NOT", ch, col))
            i += 1
            continue
        # isdecimal, not isdigit: "¹" is a digit to isdigit but starts no number (\d does not match it).
        if ch.isdecimal() or (ch == "." and i + 1 < n and text[i + 1].isdecimal()):
            m = _NUMBER.match(text, i)
            assert m is not None  # the first character is a digit or ".digit"
            end = m.end()
            number = float(m.group())
            percent = end < n and text[end] == "%"
            if percent:
                end += 1
            if end < n and (text[end].isalnum() or text[end] in "_.%:"):
                raise ConditionError(f"unexpected '{text[end]}' after the number {text[i:end]}", end + 1)
            if math.isinf(number):
                raise ConditionError(f"the number {text[i:end]} is too large", col)
            tokens.append(_Token("NUM", text[i:end], col, Number(number, percent)))
            i = end
            continue
        if ch == "-" and i + 1 < n and (text[i + 1].isdecimal() or text[i + 1] == "."):
            m = _NUMBER.match(text, i + 1)
            if m:
                end = m.end()
                percent = end < n and text[end] == "%"
                if percent:
                    end += 1
                if end < n and (text[end].isalnum() or text[end] in "_.%:"):
                    raise ConditionError(f"unexpected '{text[end]}' after the number {text[i:end]}", end + 1)
                tokens.append(_Token("NUM", text[i:end], col, Number(-float(m.group()), percent)))
                i = end
                continue
        m = _NAME.match(text, i)
        if m:
            word = m.group()
            end = m.end()
            keyword = _KEYWORDS.get(word.lower())
            if keyword == "BOOL":
                tokens.append(_Token("BOOL", word, col, Number(1.0 if word.lower() == "true" else 0.0)))
                i = end
                continue
            if keyword:
                tokens.append(_Token(keyword, word, col))
                i = end
                continue
            labels: tuple[tuple[str, str], ...] = ()
            j = end
            if j < n and text[j] == "{":
                labels, j = _read_labels(text, j)
            tokens.append(_Token("NAME", text[i:j], col, Series(word, labels)))
            i = j
            continue
        if ch == '"' or ch == "'":
            raise ConditionError("quoted text is not a value here; compare numbers only", col)
        raise ConditionError(f"unexpected character '{ch}'", col)
    tokens.append(_Token("END", "", n + 1))
    return tokens


# ---------------------------------------------------------------------------------------------
# Parser


_OPERAND_KINDS = ("NUM", "NAME", "BOOL")


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "END":
            self.pos += 1
        return token

    def parse(self) -> Node:
        if self.peek().kind == "END":
            raise ConditionError("the condition is empty", 1)
        node = self.or_expr()
        token = self.peek()
        if token.kind == "RPAREN":
            raise ConditionError("unmatched ')'", token.column)
        if token.kind != "END":
            raise self.expected_connective(token)
        return node

    def expected_connective(self, token: _Token) -> ConditionError:
        if token.kind == "CMP":
            return ConditionError(
                f"comparisons cannot be chained; join them with AND (found {token.describe()})",
                token.column,
            )
        return ConditionError(
            f"expected AND, OR, ')' or the end of the condition, found {token.describe()}",
            token.column,
        )

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.peek().kind == "OR":
            op = self.take()
            children.append(self.operand_of(op, self.and_expr))
        return children[0] if len(children) == 1 else Or(_flatten(Or, children))

    def and_expr(self) -> Node:
        children = [self.not_expr()]
        while self.peek().kind == "AND":
            op = self.take()
            children.append(self.operand_of(op, self.not_expr))
        return children[0] if len(children) == 1 else And(_flatten(And, children))

    def operand_of(self, op: _Token, rule) -> Node:  # type: ignore[no-untyped-def]
        token = self.peek()
        if token.kind in ("END", "RPAREN", "AND", "OR", "CMP"):
            raise ConditionError(f"expected a condition after '{op.text}', found {token.describe()}", token.column)
        node: Node = rule()
        return node

    def not_expr(self) -> Node:
        token = self.peek()
        if token.kind == "NOT":
            self.take()
            self.enter(token)
            try:
                child = self.operand_of(token, self.not_expr)
            finally:
                self.depth -= 1
            return Not(child)
        return self.primary()

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ConditionError(f"the condition is nested too deeply (over {_MAX_DEPTH} levels)", token.column)

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "LPAREN":
            self.take()
            self.enter(token)
            try:
                if self.peek().kind == "RPAREN":
                    raise ConditionError("empty parentheses", self.peek().column)
                node = self.operand_of(token, self.or_expr)
            finally:
                self.depth -= 1
            closing = self.peek()
            if closing.kind != "RPAREN":
                if closing.kind == "END":
                    raise ConditionError(f"expected ')' to close the '(' at column {token.column}", closing.column)
                raise self.expected_closing(closing, token)
            self.take()
            return node
        if token.kind in _OPERAND_KINDS:
            self.take()
            left = token.value
            assert isinstance(left, (Number, Series))
            nxt = self.peek()
            if nxt.kind == "CMP":
                self.take()
                right_token = self.peek()
                if right_token.kind not in _OPERAND_KINDS:
                    raise ConditionError(
                        f"expected a number or a variable after '{nxt.text}', found {right_token.describe()}",
                        right_token.column,
                    )
                self.take()
                right = right_token.value
                assert isinstance(right, (Number, Series))
                if isinstance(left, Number) and isinstance(right, Number):
                    raise ConditionError(
                        "a comparison needs a variable on one side; both sides are numbers",
                        token.column,
                    )
                return Comparison(left, nxt.value, right)  # type: ignore[arg-type]
            if nxt.kind in _OPERAND_KINDS or nxt.kind == "LPAREN":
                raise ConditionError(
                    f"expected a comparison operator (>, >=, <, <=, ==, !=) after {token.describe()}, found {nxt.describe()}",
                    nxt.column,
                )
            if token.kind == "NUM":
                raise ConditionError(
                    f"expected a comparison operator after {token.describe()}, found {nxt.describe()}",
                    nxt.column,
                )
            return Truthy(left)
        if token.kind == "CMP":
            raise ConditionError(f"expected a number or a variable before '{token.text}'", token.column)
        if token.kind == "RPAREN":
            raise ConditionError("unmatched ')'", token.column)
        if token.kind == "END":
            raise ConditionError("the condition ends too early", token.column)
        raise ConditionError(
            f"expected a comparison such as 'response_time > 500', found {token.describe()}",
            token.column,
        )

    def expected_closing(self, closing: _Token, opening: _Token) -> ConditionError:
        if closing.kind == "CMP":
            return self.expected_connective(closing)
        return ConditionError(
            f"expected AND, OR or ')' to close the '(' at column {opening.column}, found {closing.describe()}",
            closing.column,
        )


def _flatten(kind: type[And | Or], children: list[Node]) -> tuple[Node, ...]:
    """``a OR (b OR c)`` and ``a OR b OR c`` are the same tree, so canonical forms agree."""
    out: list[Node] = []
    for child in children:
        if isinstance(child, kind):
            out.extend(child.children)
        else:
            out.append(child)
    return tuple(out)


def parse_condition(text: str) -> Condition:
    """Parse a trigger condition; raise ``ConditionError`` (with a 1-based column) when invalid."""
    if not isinstance(text, str):
        raise ConditionError("a condition must be text", 1)
    if len(text) > _MAX_LENGTH:
        raise ConditionError(f"the condition is longer than {_MAX_LENGTH} characters", _MAX_LENGTH + 1)
    tokens = _tokenize(text)
    root = _Parser(tokens).parse()
    return Condition(root, text)
