"""Domain vocabulary shared by every layer: severities, statuses, sources and errors."""

from __future__ import annotations

from enum import Enum


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
    """A request the domain refuses; the message is meant for the person who asked."""

    code = "invalid"


class NotFound(DomainError):
    code = "not_found"


class IllegalTransition(DomainError):
    code = "conflict"


class InvalidInput(DomainError):
    """Bad value for a named field."""

    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_enum(enum: type[Enum], value: str, field: str) -> Enum:
    """The enum member for `value`, or InvalidInput listing the allowed values."""
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)  # type: ignore[attr-defined]
        raise InvalidInput(field, f"unknown value {value!r} (expected one of: {allowed})") from None


def incident_key(number: int) -> str:
    return f"INC-{number}"


def parse_incident_key(key: str | int) -> int:
    """INC-42, inc-42 or 42 -> 42."""
    text = str(key).strip()
    if text.upper().startswith("INC-"):
        text = text[4:]
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise InvalidInput("key", f"{key!r} is not an incident key (expected INC-<number>)")
    return int(text)
