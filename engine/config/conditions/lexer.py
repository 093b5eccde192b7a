"""The condition's tokenizer: numbers (with `%`), names with label blocks, operators, keywords."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from engine.config.conditions.errors import ConditionError
from engine.config.conditions.tree import Number, Series


@dataclass(frozen=True)
class Token:
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


def read_labels(text: str, pos: int) -> tuple[tuple[tuple[str, str], ...], int]:
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
            raise ConditionError(f"expected a label name inside '{{', found {_found(text, i)}", i + 1)
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
        raise ConditionError(f"expected ',' or '}}' in the label list, found {_found(text, i)}", i + 1)


def _found(text: str, i: int) -> str:
    return f"'{text[i]}'" if i < len(text) else "the end of the condition"


def _number(text: str, start: int, m: re.Match[str], *, negative: bool) -> tuple[Token, int]:
    """The number `m` matched (after the '-' at `start` when `negative`) with its '%', and
    where it ends."""
    n = len(text)
    end = m.end()
    number = -float(m.group()) if negative else float(m.group())
    percent = end < n and text[end] == "%"
    if percent:
        end += 1
    if end < n and (text[end].isalnum() or text[end] in "_.%:"):
        raise ConditionError(f"unexpected '{text[end]}' after the number {text[start:end]}", end + 1)
    # Only a positive overflow is refused: `-1e999` has always lexed as -inf.
    if math.isinf(number) and not negative:
        raise ConditionError(f"the number {text[start:end]} is too large", start + 1)
    return Token("NUM", text[start:end], start + 1, Number(number, percent)), end


# Operators and brackets, two-character ones first: the token kind and value (a comparison's
# canonical operator). Near misses are refused with a suggestion.
_SYMBOLS: dict[str, tuple[str, str | None]] = {
    ">=": ("CMP", ">="),
    "<=": ("CMP", "<="),
    "==": ("CMP", "=="),
    "!=": ("CMP", "!="),
    "&&": ("AND", None),
    "||": ("OR", None),
    "(": ("LPAREN", None),
    ")": ("RPAREN", None),
    "<": ("CMP", "<"),
    ">": ("CMP", ">"),
    "=": ("CMP", "=="),
    "!": ("NOT", None),
}
_NEAR_MISSES = {"=>": ">=", "=<": "<=", "<>": "!=", "&": "&&", "|": "||"}


def _symbol(text: str, i: int) -> Token | None:
    for symbol in (text[i : i + 2], text[i]):
        if symbol in _NEAR_MISSES:
            raise ConditionError(f"unknown operator '{symbol}'; did you mean '{_NEAR_MISSES[symbol]}'?", i + 1)
        if symbol in _SYMBOLS:
            kind, value = _SYMBOLS[symbol]
            return Token(kind, symbol, i + 1, value)
    return None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        col = i + 1
        if ch.isspace():
            i += 1
            continue
        symbol = _symbol(text, i)
        if symbol is not None:
            tokens.append(symbol)
            i += len(symbol.text)
            continue
        # isdecimal, not isdigit: "¹" is a digit to isdigit but starts no number (\d does not match it).
        if ch.isdecimal() or (ch == "." and i + 1 < n and text[i + 1].isdecimal()):
            m = _NUMBER.match(text, i)
            assert m is not None  # the first character is a digit or ".digit"
            token, i = _number(text, i, m, negative=False)
            tokens.append(token)
            continue
        if ch == "-" and i + 1 < n and (text[i + 1].isdecimal() or text[i + 1] == "."):
            m = _NUMBER.match(text, i + 1)
            if m:
                token, i = _number(text, i, m, negative=True)
                tokens.append(token)
                continue
        m = _NAME.match(text, i)
        if m:
            word = m.group()
            end = m.end()
            keyword = _KEYWORDS.get(word.lower())
            if keyword == "BOOL":
                tokens.append(Token("BOOL", word, col, Number(1.0 if word.lower() == "true" else 0.0)))
                i = end
                continue
            if keyword:
                tokens.append(Token(keyword, word, col))
                i = end
                continue
            labels: tuple[tuple[str, str], ...] = ()
            j = end
            if j < n and text[j] == "{":
                labels, j = read_labels(text, j)
            tokens.append(Token("NAME", text[i:j], col, Series(word, labels)))
            i = j
            continue
        if ch == '"' or ch == "'":
            raise ConditionError("quoted text is not a value here; compare numbers only", col)
        raise ConditionError(f"unexpected character '{ch}'", col)
    tokens.append(Token("END", "", n + 1))
    return tokens
