"""AI detection and incident-state settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.config.fields import PositiveDuration, Section, SeverityField
from engine.core.domain import Severity


class AnomalyDetection(Section):
    enabled: bool = True
    sensitivity: Literal["low", "medium", "high"] = "medium"
    false_positive_filter: bool = True
    severity: SeverityField = Severity.MEDIUM
    auto_create_incident: bool = True
    refit_interval: PositiveDuration | None = None
    """How often each series' model is refitted, in the series' own time ("1h"); default: every
    40 samples, the cadence measured on NAB."""
    series: list[str] = Field(default_factory=list)
    """Glob patterns of series to watch (all when empty)."""


class PatternRecognition(Section):
    enabled: bool = True
    historical_analysis_days: int = Field(30, ge=1, le=3650)


class CorrelationAnalysis(Section):
    enabled: bool = True
    window: PositiveDuration = 3600.0


class AIDetection(Section):
    # Absent sections are off: detection costs CPU, so it runs only when asked for.
    anomaly_detection: AnomalyDetection = Field(default_factory=lambda: AnomalyDetection(enabled=False))
    pattern_recognition: PatternRecognition = Field(default_factory=PatternRecognition)
    correlation_analysis: CorrelationAnalysis = Field(default_factory=CorrelationAnalysis)


class IncidentStates(Section):
    investigating: str = "Investigating"
    identified: str = "Identified"
    monitoring: str = "Monitoring"
    resolved: str = "Resolved"


class MaintenanceMode(Section):
    scheduled_maintenance: bool = True
    emergency_maintenance: bool = True
