r"""Regular expressions that users write (silence matchers `=~`/`!~`, an http target's
`expect_body_regex`), compiled with RE2 (google-re2), as Alertmanager and Prometheus do.

RE2 matches in time linear in the text whatever the pattern, so `(a+)+$` against a long label
value costs microseconds. Python's `re` backtracks: there the same pattern takes exponential
time, and since matching runs on the engine's event loop it would freeze probes, escalation
timers and the console with them.

The price is RE2's syntax: no backreferences (`\1`), lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`),
atomic groups or possessive quantifiers, which are what cannot be matched in linear time.
`compile_regex` refuses them with a sentence saying what is wrong (`RegexError`, a ValueError);
callers put the name of their field in front. A few spellings Python accepts and RE2 does not,
with the same meaning, are translated so patterns written for Python keep working: `\Z`,
`\uXXXX`, `\UXXXXXXXX` and `{,n}`.
"""

from __future__ import annotations

import functools
import re
import string
from typing import Any

import re2  # google-re2 ships no type hints (pyproject: ignore_missing_imports)

SYNTAX = "RE2 syntax, matched in linear time"


class RegexError(ValueError):
    """A pattern that cannot be used, with a message naming what is wrong (not the field)."""


class Regex:
    """A compiled user pattern; each call takes time linear in the text."""

    __slots__ = ("pattern", "_compiled")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def fullmatch(self, text: str) -> bool:
        return self._compiled.fullmatch(text) is not None

    def search(self, text: str) -> bool:
        """Whether the pattern occurs in `text`. As in Python, `$` also matches before a final
        newline (a health endpoint's "OK\n" meets `OK$`); RE2's `$` is the very end only."""
        found = self._compiled.search(text) is not None
        return found or (text.endswith("\n") and self._compiled.search(text[:-1]) is not None)


def _options() -> Any:
    options = re2.Options()
    # RE2 prints every refused pattern to stderr by default; the refusal is ours to word.
    options.log_errors = False
    return options


_OPTIONS = _options()

# What RE2 says about a construct it refuses on purpose → what the user is told.
_UNSUPPORTED = (
    (re.compile(r"invalid escape sequence: \\[1-9]"), "backreferences such as \\1 are not supported"),
    (re.compile(r"invalid perl operator: \(\?P$"), "named backreferences (?P=name) are not supported"),
    (re.compile(r"invalid perl operator: \(\?<?[=!]"), "lookahead and lookbehind ((?=, (?!, (?<=, (?<!) are not supported"),
    (re.compile(r"invalid perl operator: \(\?>"), "atomic groups (?>...) are not supported"),
    (re.compile(r"bad repetition operator: [*+?}]\+"), "possessive quantifiers (*+, ++, ?+) are not supported"),
    (re.compile(r"invalid perl operator: \(\?[a-zA-Z]*x"), "verbose mode (?x) is not supported"),
    (re.compile(r"invalid perl operator: \(\?\("), "conditional groups (?(...)) are not supported"),
    (re.compile(r"invalid repetition size|pattern too large"), "the pattern is too large (a repeat counts at most 1000)"),
)


def _translate(pattern: str) -> str:
    """Python spellings RE2 lacks, rewritten to RE2's for the same meaning. Only escapes and
    `{,n}` outside a character class are touched; everything else is copied."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Z" and not in_class:
                out.append(r"\z")  # Python's \Z is the end of the text: RE2's \z
                i += 2
                continue
            width = {"u": 4, "U": 8}.get(nxt, 0)
            digits = pattern[i + 2 : i + 2 + width]
            if width and len(digits) == width and all(c in string.hexdigits for c in digits):
                out.append(r"\x{" + digits + "}")  # Python's \u00e9 is RE2's \x{00e9}
                i += 2 + width
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A ] first in the class (after an optional ^) is a literal, as in both engines.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        elif ch == "{":
            m = re.match(r"\{,(\d+)\}", pattern[i:])
            if m and out:  # Python's {,n} is {0,n}; RE2 would read it as literal text
                out.append("{0," + m.group(1) + "}")
                i += m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _explain(error: BaseException) -> str:
    raw = error.args[0] if error.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    for pattern, meaning in _UNSUPPORTED:
        if pattern.search(text):
            return f"{meaning} ({SYNTAX})"
    return text or "not a regular expression"


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Regex:
    """The pattern compiled with RE2; RegexError saying what is wrong when it cannot be.
    Cached: a silence's matchers are matched against every firing."""
    if not isinstance(pattern, str):
        raise RegexError("a regular expression must be text")
    if "\x00" in pattern:
        raise RegexError("a regular expression cannot contain a NUL character")
    try:
        compiled = re2.compile(_translate(pattern), _OPTIONS)
    except re2.error as exc:
        raise RegexError(_explain(exc)) from None
    return Regex(pattern, compiled)
