"""Limits, states and markers shared by the post-mortem modules."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

DRAFT, PUBLISHED = "draft", "published"
MAX_ITEMS = 100
MAX_ITEM = 2000
MAX_USERS = 10**12
MAX_DOWNTIME = 10**7
LIST_FIELDS = ("lessons_learned", "went_well", "went_badly")
IMPACT_TEXT_FIELDS = ("financial_impact", "reputational_impact")
# Entry kinds that bound the downtime a person may add by hand.
IMPACT_START, IMPACT_END = "impact_start", "impact_end"
ENTRY_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TICKET_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-\d+$")
MONITORING_SOURCES = ("threshold", "anomaly", "pattern", "alert")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks an argument that was not given (None can mean 'clear')."""


def iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (datetime, date)) else value
