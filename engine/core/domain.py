"""Domain vocabulary shared by every layer: severities, statuses, sources and errors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Literal

from engine.core.textclean import brief


class Severity(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for critical, 3 for low: sorts the worst first."""
        return SEVERITY_ORDER.index(self)


SEVERITY_ORDER = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW]


class Status(str, Enum):
    TRIGGERED = "triggered"
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


OPEN_STATUSES = [Status.TRIGGERED, Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING]
# Statuses a person may set with "change status"; triggered is only ever the opening state and
# resolved goes through resolve(), which needs a root cause.
SETTABLE_STATUSES = [Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING]


class Source(str, Enum):
    MANUAL = "manual"
    THRESHOLD = "threshold"
    ANOMALY = "anomaly"
    PATTERN = "pattern"
    ALERT = "alert"
    API = "api"


# Where an audited change comes from (engine.incidents.audit.SOURCES): what the audit log stores,
# and what `pulseguard audit --source` and GET /api/audit?source= take. Here, so the CLI's
# arguments name them without loading the database layer.
AuditSource = Literal["console", "cli", "api", "slack", "pagerduty", "webhook", "e-mail link", "webhook callback"]


class EvidenceKind(str, Enum):
    SCREENSHOT = "screenshot"
    LOG = "log"
    RESPONSE = "response"
    LINK = "link"
    FILE = "file"
    SAMPLES = "samples"


class FollowUpGroup(str, Enum):
    PREVENTIVE_MEASURES = "preventive_measures"
    MONITORING_IMPROVEMENTS = "monitoring_improvements"
    DOCUMENTATION_UPDATES = "documentation_updates"
    PROCESS_CHANGES = "process_changes"
    TECHNICAL_CHANGES = "technical_changes"
    TEAM_CHANGES = "team_changes"


# The sections of an incident's `analysis` (their shapes: engine.core.analysis, which loads
# pydantic and is imported only where an analysis is checked).
ANALYSIS_SECTIONS = ("pattern", "correlation", "anomaly", "threshold")

DEFAULT_ROOT_CAUSE_CATEGORIES = [
    "database",
    "deployment",
    "network",
    "configuration",
    "capacity",
    "dependency",
    "hardware",
    "security",
    "unknown",
]


class DomainError(Exception):
    """A request the domain refuses; the message is meant for the person who asked (a long value
    it quotes is shortened, engine.core.textclean.brief)."""

    code = "invalid"

    def __str__(self) -> str:
        return brief(super().__str__())


class NotFound(DomainError):
    code = "not_found"


class IllegalTransition(DomainError):
    code = "conflict"


class InvalidInput(DomainError):
    """Bad value for a named field."""

    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = brief(field)  # a field may name the value: "matcher 'colour=…'"
        self.message = brief(message)


# Times a user may give (API, CLI, config): wide enough for any real event or plan, narrow
# enough that zone conversion and adding a bounded duration never leave what Python and both
# databases can store.
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)
# Durations a user may give (maintenance windows, silences, look-back spans).
LONGEST_DURATION = timedelta(days=36_600)


def check_time(value: datetime, field: str) -> datetime:
    """`value` unchanged when it lies between EARLIEST_TIME and LATEST_TIME (a time without a
    zone is taken as UTC for the check), else InvalidInput naming the field."""
    try:
        instant = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        instant = None
    if instant is None or not EARLIEST_TIME <= instant < LATEST_TIME:
        raise InvalidInput(
            field, f"{value.isoformat()} is out of range ({EARLIEST_TIME.date().isoformat()} to {LATEST_TIME.date().isoformat()})"
        )
    return value


def check_duration(value: timedelta, field: str) -> timedelta:
    """`value` unchanged when it is at most LONGEST_DURATION, else InvalidInput naming the field."""
    if abs(value) > LONGEST_DURATION:
        raise InvalidInput(field, f"is too long (at most {LONGEST_DURATION.days} days)")
    return value


def parse_enum(enum: type[Enum], value: str, field: str, offered: Sequence[Enum] | None = None) -> Enum:
    """The enum member for `value`, or InvalidInput listing the allowed values (`offered`: the
    ones this use takes, when it takes fewer than the enum has)."""
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in (offered if offered is not None else enum))
        raise InvalidInput(field, f"unknown value {value!r} (expected one of: {allowed})") from None


def incident_key(number: int) -> str:
    return f"INC-{number}"


# Incident numbers are 32-bit integers in the database.
MAX_INCIDENT_NUMBER = 2**31 - 1


def parse_incident_key(key: str | int) -> int:
    """INC-42, inc-42 or 42 -> 42."""
    text = str(key).strip()
    if text.upper().startswith("INC-"):
        text = text[4:]
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput("key", f"{key!r} is not an incident key (expected INC-<number>)")
    digits = text.lstrip("0") or "0"
    if len(digits) > 10 or int(digits) > MAX_INCIDENT_NUMBER:  # beyond what the key column holds
        raise NotFound(f"no incident INC-{digits}")
    return int(digits)
