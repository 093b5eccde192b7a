"""Which names a trigger condition may read, checked against the targets it applies to.

A condition's variable that nothing ever records is *unknown* on every evaluation, and missing
data never fires a trigger (see `engine.config.conditions`): a misspelled `respone_time` made a
trigger that silently never fired. What each name can be, and so what is checked:

- the probe variables, recorded per target kind (`PROBE_BY_KIND`; `error_rate` by all);
- a host target's series (`HOST_SERIES`);
- a prometheus target's scraped series: unknown until scraped, so any name its `include`
  globs allow (every name without `include`);
- a pushed series (`pulseguard metrics push`, `POST /api/metrics`): known only at run time.
  The trigger evaluator reads pushed values on a target it evaluates (a condition with a probe
  variable, or with a series that target records) and on its pushed pseudo-target when the
  trigger selects all targets. Such a name is a warning, unless it is a misspelling of a
  built-in name, a letter or two off (a typo is far likelier than a pushed `respone_time`).

A name that none of these can supply is refused, with the valid names and a suggestion.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any

from engine.config.conditions import PROBE_VARIABLES, ConditionError, parse_condition
from engine.config.fields import _dict_in, _list_in

# What `engine.monitor.probes` records, per target kind (Observation.variables and the series).
PROBE_BY_KIND: dict[str, tuple[str, ...]] = {
    "http": ("response_time", "status_code", "ok", "error_rate", "cert_days_left"),
    "tcp": ("response_time", "ok", "error_rate"),
    "prometheus": ("response_time", "status_code", "ok", "error_rate"),
    "host": ("response_time", "ok", "error_rate"),
    "heartbeat": ("ok", "error_rate"),
}
HOST_SERIES = (
    "cpu_percent", "memory_percent", "memory_available_bytes", "swap_percent", "disk_percent", "load1", "load5", "load15",
)  # fmt: skip
BUILT_IN = (*PROBE_VARIABLES, *HOST_SERIES)
# The pseudo-target pushed-only triggers are evaluated on (engine.monitor.triggers.rules.PUSHED).
PUSHED_TARGET = "pushed-metrics"
# How close a pushable name must be to a built-in one to count as its misspelling (difflib ratio:
# `respone_time` 0.96, `statuscode` 0.95, `cert_days` 0.78 is not; `node_load1` 0.67 is not).
TYPO_CUTOFF = 0.8
# …and how many letters off (`respone_time` is 1, `statuscode` 1, `response_time_ms` 3).
TYPO_EDITS = 2
PUSH_HINT = "it has a value only once pushed (pulseguard metrics push, POST /api/metrics)"


@dataclass(frozen=True)
class _Target:
    name: str
    kind: str
    include: tuple[str, ...]

    def scrapes(self, name: str) -> bool:
        return self.kind == "prometheus" and (not self.include or any(fnmatch.fnmatchcase(name, p) for p in self.include))

    def records(self, name: str) -> bool:
        return name in PROBE_BY_KIND.get(self.kind, ()) or (self.kind == "host" and name in HOST_SERIES)


def _targets(raw: dict[str, Any]) -> list[_Target]:
    out = []
    for entry in _list_in(raw, "targets"):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry.get("kind") in PROBE_BY_KIND:
            include = tuple(p for p in _list_in(entry, "include") if isinstance(p, str))
            out.append(_Target(entry["name"], entry["kind"], include))
    return out


def _selected(trigger: dict[str, Any], targets: list[_Target], services: dict[str, Any]) -> tuple[list[_Target], bool]:
    """The targets a trigger applies to (as `Rule.selects` decides), and whether it also reads
    pushed-only series on the pushed pseudo-target."""
    patterns = trigger.get("targets")
    wanted_services = trigger.get("services")
    patterns = [p for p in patterns if isinstance(p, str)] if isinstance(patterns, list) else None
    wanted_services = [s for s in wanted_services if isinstance(s, str)] if isinstance(wanted_services, list) else None
    chosen = []
    for target in targets:
        if target.kind == "heartbeat":
            hit = patterns is not None and target.name in patterns
        else:
            hit = patterns is None or any(fnmatch.fnmatchcase(target.name, p) for p in patterns)
        if hit and wanted_services is not None and services.get(target.name) not in wanted_services:
            hit = False
        if hit:
            chosen.append(target)
    pushed = wanted_services is None and (patterns is None or any(fnmatch.fnmatchcase(PUSHED_TARGET, p) for p in patterns))
    return chosen, pushed


def _whom(chosen: list[_Target]) -> str:
    if len(chosen) == 1:
        return f"{chosen[0].name} ({chosen[0].kind})"
    kinds = ", ".join(dict.fromkeys(t.kind for t in chosen))
    return f"any of its {len(chosen)} targets ({kinds})"


def _valid_here(chosen: list[_Target], pushable: bool) -> tuple[list[str], str]:
    """The names valid for these targets, and the same as text for a message."""
    names = [n for n in BUILT_IN if any(t.records(n) for t in chosen)] if chosen else list(PROBE_VARIABLES)
    shown = list(names)
    for target in chosen:
        if target.kind == "prometheus":
            shown.append(
                f"series matching {' or '.join(target.include)} ({target.name})" if target.include else f"any series {target.name} scrapes"
            )
    text = ", ".join(shown) + (" or pushed" if pushable else "")
    return names, text


def _misspelling(name: str) -> list[str]:
    """The built-in name `name` misspells, if any: close to it (TYPO_CUTOFF), at most
    TYPO_EDITS letters off, and not one containing the other. A pushed series named after a
    built-in one (`response_time_ms`, `error_rate_5m`, `load`, `disk_used_percent`) is a name
    of its own, and refusing it would stop an engine from starting over a series it does get."""
    for close in difflib.get_close_matches(name, BUILT_IN, n=3, cutoff=TYPO_CUTOFF):
        if close not in name and name not in close and _edits(name, close) <= TYPO_EDITS:
            return [close]
    return []


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def condition_name_checks(raw: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(refusals as (key path, message), warnings as "key.path: …") for every trigger condition."""
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []
    targets = _targets(raw)
    services = {e["name"]: e.get("service") for e in _list_in(raw, "targets") if isinstance(e, dict) and isinstance(e.get("name"), str)}
    for trigger_name, trigger in _dict_in(raw, "triggers").items():
        if not isinstance(trigger, dict) or not isinstance(trigger.get("condition"), str):
            continue
        try:
            condition = parse_condition(trigger["condition"])
        except ConditionError:
            continue  # reported by the schema
        path = f"triggers.{trigger_name}.condition"
        chosen, pushed_target = _selected(trigger, targets, services)
        if not chosen and not pushed_target:
            if targets:  # (with no targets at all there is nothing to say yet)
                warnings.append(f"triggers.{trigger_name}: applies to no target (none matches its targets and services)")
            continue
        text = trigger["condition"]
        names = list(dict.fromkeys(s.name for s in sorted(condition.series, key=lambda s: (text.find(s.name), s.name))))
        supplied = {n for n in names if any(t.records(n) or t.scrapes(n) for t in chosen)}
        # The evaluator reads pushed values on a target it evaluates the rule for: every selected
        # target when the condition has a probe variable, else those recording one of its series.
        evaluated = bool(chosen) and (any(n in PROBE_VARIABLES for n in names) or bool(supplied))
        pushable = pushed_target or evaluated
        valid, valid_text = _valid_here(chosen, pushable)
        for name in names:
            if name in supplied or (name in PROBE_VARIABLES and not chosen):
                continue  # no targets to judge by: the language's own variables stand
            if name in PROBE_VARIABLES or (name in HOST_SERIES and not pushable):
                # Built in, but recorded by other kinds (a probe variable is never read from a push).
                kinds = " and ".join(k for k, v in PROBE_BY_KIND.items() if name in v) if name in PROBE_VARIABLES else "host"
                problems.append(
                    (path, f'"{name}" is not recorded by {_whom(chosen)}; {kinds} targets record it (valid here: {valid_text})')
                )
                continue
            typo = [] if name in BUILT_IN else _misspelling(name)
            if pushable and not typo:
                warnings.append(f'{path}: "{name}" is recorded by no target this trigger applies to: {PUSH_HINT}')
                continue
            close = typo or difflib.get_close_matches(name, valid, n=1)
            if close:
                problems.append((path, f'unknown variable "{name}" (did you mean {close[0]!r}?; valid here: {valid_text})'))
            else:
                problems.append((path, f'unknown variable "{name}": not recorded by {_whom(chosen)} (valid here: {valid_text})'))
    return problems, warnings
