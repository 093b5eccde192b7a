"""Silence matchers with Alertmanager's semantics: `field=value`, `field!=value`, `field=~regex`,
`field!~regex`, the regex anchored at both ends.

A firing (or an open incident) is described by its labels: service (several may apply),
target, trigger, severity, source, and its tags as `label.NAME` (a tag `team=payments` is the
label `label.team` with value `payments`; a tag without `=` is the label with value `true`). A
label the firing does not have has the empty value, so `target!=web` matches a firing with no
target, as in Alertmanager.

Regular expressions are RE2's (engine.core.linear_regex), as Alertmanager's: matching takes
time linear in the value, so no pattern can stall the engine's event loop, and patterns RE2
cannot run that way (backreferences, lookaround) are refused when a silence is made.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.core.domain import InvalidInput, Severity
from engine.core.linear_regex import RegexError, compile_regex

log = logging.getLogger("pulseguard.silences")

FIELDS = ("service", "target", "trigger", "severity", "source")
LABEL_PREFIX = "label."
OPS = ("=~", "!~", "!=", "=")  # longest first, so "!=" is not read as "!" plus "="
_TAG_PART = r"[A-Za-z0-9_.@:#/+-]{1,64}"
# A tag is NAME or NAME=VALUE (`team=payments`, matched as `label.team=payments`); the
# incidents' tag check and the configuration's target tags both use this, so every tag a
# target carries can be stored on its incident and every stored tag can be matched.
_TAG = rf"{_TAG_PART}(?:={_TAG_PART})?"
TAG_RE = re.compile(rf"^{_TAG}$")
TAG_FIELD_PATTERN = rf"^\s*{_TAG}\s*$"  # for request bodies, which strip the spaces after
TAG_RULE = "NAME or NAME=VALUE, each letters, digits and _.-:@#/+, up to 64"
_SPLIT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.@:#/+-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
_LABEL_NAME = re.compile(rf"^{_TAG_PART}$")
MAX_VALUE = 500


@dataclass(frozen=True)
class Matcher:
    field: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "op": self.op, "value": self.value}

    def _positive(self, value: str) -> bool:
        if self.op in ("=", "!="):
            return value == self.value
        return compile_regex(self.value).fullmatch(value)

    def matches(self, labels: Mapping[str, Sequence[str]]) -> bool:
        """Several values (services): `=`/`=~` need one that matches, `!=`/`!~` need none."""
        values = list(labels.get(self.field) or ()) or [""]
        try:
            hit = any(self._positive(v) for v in values)
        except RegexError as exc:
            # Only a silence stored before patterns were checked as RE2 gets here (a lookahead,
            # say). It matches nothing, whatever its operator: a page sent beats one lost.
            _warn_once(str(self), str(exc))
            return False
        return hit if self.op in ("=", "=~") else not hit


def parse_matcher(text: str) -> Matcher:
    """`service=checkout` → Matcher; InvalidInput naming the matcher when it cannot be used."""
    raw = str(text)
    m = _SPLIT.match(raw)
    if m is None:
        raise InvalidInput(
            f"matcher {raw!r}",
            "expected FIELD=VALUE, FIELD!=VALUE, FIELD=~REGEX or FIELD!~REGEX (fields: " + ", ".join(FIELDS) + ", label.NAME)",
        )
    field, op, value = m.group(1), m.group(2), m.group(3)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return make_matcher(field, op, value, shown=raw)


def make_matcher(field: str, op: str, value: str, *, shown: str | None = None) -> Matcher:
    shown = shown if shown is not None else f"{field}{op}{value}"
    where = f"matcher {shown!r}"
    if op not in OPS:
        raise InvalidInput(where, f"unknown operator {op!r} (expected =, !=, =~ or !~)")
    if field.startswith(LABEL_PREFIX):
        if not _LABEL_NAME.match(field[len(LABEL_PREFIX) :]):
            raise InvalidInput(where, f"{field!r} is not a label name (label.NAME: letters, digits and _.-:@#/+, as in a tag)")
    elif field not in FIELDS:
        raise InvalidInput(where, f"unknown field {field!r} (expected one of: {', '.join(FIELDS)}, label.NAME)")
    if not isinstance(value, str) or len(value) > MAX_VALUE or "\x00" in value:
        raise InvalidInput(where, f"the value must be text of at most {MAX_VALUE} characters")
    if op in ("=~", "!~"):
        try:
            compile_regex(value)
        except RegexError as exc:
            raise InvalidInput(where, f"bad regular expression: {exc}") from None
    matcher = Matcher(field, op, value)
    if field == "severity" and not any(matcher._positive(s.value) for s in Severity):
        # severity=urgent would be stored and never silence anything (or, negated, everything).
        how = "matches no severity" if op in ("=~", "!~") else f"{value!r} is not a severity"
        raise InvalidInput(where, f"{how} (severities: {', '.join(s.value for s in Severity)})")
    return matcher


def matchers_from(items: Iterable[Any]) -> list[Matcher]:
    """Matchers from text (`service=x`) or dicts ({field, op, value}); at least one."""
    out: list[Matcher] = []
    for item in items:
        if isinstance(item, Matcher):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_matcher(item))
        elif isinstance(item, Mapping):
            field, op, value = item.get("field"), item.get("op", "="), item.get("value")
            if not isinstance(field, str) or not isinstance(op, str) or not isinstance(value, str):
                raise InvalidInput(f"matcher {dict(item)!r}", "needs text field, op and value")
            out.append(make_matcher(field, op, value))
        else:
            raise InvalidInput(f"matcher {item!r}", "expected text like service=checkout")
    if not out:
        raise InvalidInput("matchers", "name at least one matcher (service=checkout, severity!=critical, …)")
    if all(_matches_empty(m) for m in out):
        # Alertmanager refuses a silence that would match every alert; so do we.
        raise InvalidInput("matchers", "these matchers would silence every firing; name something a firing has (service=checkout)")
    return out


_warned: set[str] = set()


def _warn_once(matcher: str, why: str) -> None:
    if matcher not in _warned and len(_warned) < 1000:
        _warned.add(matcher)
        log.warning("silence matcher %r matches nothing: %s; expire the silence and add it again with an RE2 pattern", matcher, why)


def _matches_empty(m: Matcher) -> bool:
    return m.matches({})


def labels_of(
    *,
    services: Sequence[str] = (),
    target: str | None = None,
    trigger: str | None = None,
    severity: str | None = None,
    source: str | None = None,
    tags: Sequence[str] = (),
) -> dict[str, list[str]]:
    labels: dict[str, list[str]] = {
        "service": [s for s in services if s],
        "target": [target] if target else [],
        "trigger": [trigger] if trigger else [],
        "severity": [severity] if severity else [],
        "source": [source] if source else [],
    }
    for tag in tags:
        name, _, value = str(tag).partition("=")
        labels.setdefault(LABEL_PREFIX + name.strip(), []).append(value.strip() if _ else "true")
    return labels


def all_match(matchers: Sequence[Matcher], labels: Mapping[str, Sequence[str]]) -> bool:
    return all(m.matches(labels) for m in matchers)
