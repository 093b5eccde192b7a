"""What a person types into a front end, parsed the way the CLI parses it, and the values a
form offers: times ('now', an age like 15m, ISO 8601), dates, durations, evidence kinds,
follow-up groups and the default root-cause categories, and silence matchers
(engine.core.matchers; a refusal is an InvalidInput naming the matcher). A refusal is a
UsageError (one line, what was wrong)."""

from __future__ import annotations

from engine.core.domain import DEFAULT_ROOT_CAUSE_CATEGORIES, EvidenceKind, FollowUpGroup
from engine.core.inputs import UsageError, in_zone, os_user, parse_date, parse_duration, parse_time
from engine.core.matchers import matchers_from

__all__ = [
    "DEFAULT_ROOT_CAUSE_CATEGORIES",
    "EvidenceKind",
    "FollowUpGroup",
    "UsageError",
    "in_zone",
    "matchers_from",
    "os_user",
    "parse_date",
    "parse_duration",
    "parse_time",
]
