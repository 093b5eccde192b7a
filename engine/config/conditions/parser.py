"""The condition's recursive-descent parser: tokens to a syntax tree, with one clear error
(message and 1-based column) for the first problem."""

from __future__ import annotations

from collections.abc import Callable

from engine.config.conditions.errors import ConditionError
from engine.config.conditions.lexer import Token, tokenize
from engine.config.conditions.tree import And, Comparison, Condition, Node, Not, Number, Or, Series, Truthy

MAX_DEPTH = 64
MAX_LENGTH = 4096


_OPERAND_KINDS = ("NUM", "NAME", "BOOL")


class Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
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

    def expected_connective(self, token: Token) -> ConditionError:
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
        return self.junction("OR", Or, self.and_expr)

    def and_expr(self) -> Node:
        return self.junction("AND", And, self.not_expr)

    def junction(self, word: str, kind: type[And] | type[Or], operand: Callable[[], Node]) -> Node:
        children = [operand()]
        while self.peek().kind == word:
            op = self.take()
            children.append(self.operand_of(op, operand))
        return children[0] if len(children) == 1 else kind(_flatten(kind, children))

    def operand_of(self, op: Token, rule: Callable[[], Node]) -> Node:
        token = self.peek()
        if token.kind in ("END", "RPAREN", "AND", "OR", "CMP"):
            raise ConditionError(f"expected a condition after '{op.text}', found {token.describe()}", token.column)
        return rule()

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

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"the condition is nested too deeply (over {MAX_DEPTH} levels)", token.column)

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

    def expected_closing(self, closing: Token, opening: Token) -> ConditionError:
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
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    tokens = tokenize(text)
    root = Parser(tokens).parse()
    return Condition(root, text)
