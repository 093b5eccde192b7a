"""The `/` filter language of the incident list, parsed into the engine's page filters.

    disk full sev:critical status:open svc:api tag:db @alice INC-42

Words are matched in the title (all of them); `sev:` and `status:` take comma lists and
prefixes (`sev:crit,high`); `@none` means unassigned. Problems come back as messages naming the
token, and the filters are still usable (the bad token is left out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pulseguard_tui.formatting import SEVERITIES, STATUSES

_KEY = re.compile(r"^(?:inc-|#)(\d+)$", re.I)
_NAME = re.compile(r"^[A-Za-z0-9_.@:#/+-]{1,64}$")
PREFIXES = ("sev", "status", "svc", "tag")


@dataclass
class Filter:
    filters: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.filters)


def _pick(value: str, choices: tuple[str, ...], what: str, errors: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    out: list[str] = []
    for part in filter(None, value.lower().split(",")):
        matches = [c for c in (*choices, *extra) if c.startswith(part)]
        if len(matches) == 1 or part in matches:
            choice = part if part in matches else matches[0]
            if choice not in out:
                out.append(choice)
        else:
            errors.append(f"{what}:{part}: unknown {what} (expected {', '.join((*choices, *extra))})")
    return out


def parse_filter(text: str, *, include_resolved: bool = False) -> Filter:
    """Parse the filter line; `include_resolved` is the list's "show resolved" toggle."""
    result = Filter()
    f = result.filters
    errors = result.errors
    for token in text.split():
        low = token.lower()
        if token.startswith("@"):
            who = token[1:]
            if who.lower() in ("none", "-"):
                f["assignee"] = ""
            elif _NAME.match(who):
                f["assignee"] = who
            else:
                errors.append(f"{token}: not a user name")
            continue
        key = _KEY.match(token)
        if key:
            f["number"] = int(key.group(1))
            continue
        prefix, sep, value = low.partition(":")
        if sep and prefix in PREFIXES:
            if not value:
                errors.append(f"{prefix}: needs a value")
                continue
            if prefix == "sev":
                f.setdefault("severities", [])
                f["severities"] += [s for s in _pick(value, SEVERITIES, "sev", errors) if s not in f["severities"]]
            elif prefix == "status":
                picked = _pick(value, STATUSES, "status", errors, extra=("open", "all"))
                if "all" in picked:
                    f["include_resolved"] = True
                    picked = [p for p in picked if p != "all"]
                if picked:
                    f.setdefault("statuses", [])
                    f["statuses"] += [s for s in picked if s not in f["statuses"]]
            else:
                raw = token.partition(":")[2]
                if not _NAME.match(raw):
                    errors.append(f"{token}: not a valid name")
                    continue
                f.setdefault("services" if prefix == "svc" else "tags", []).append(raw)
            continue
        if sep and prefix.isalpha() and value and prefix not in ("http", "https"):
            errors.append(f"{prefix}: unknown filter (use sev:, status:, svc:, tag:, @user)")
            continue
        f.setdefault("text", []).append(token)
    for name in ("severities", "statuses"):
        if name in f and not f[name]:
            del f[name]
    if include_resolved:
        f["include_resolved"] = True
    return result
