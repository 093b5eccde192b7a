"""Discovered by engine.runtime.engine.Engine: the anomaly-detection service, when
`ai_detection.anomaly_detection.enabled` is on (it is off when the section is absent)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def plugins(engine: Any) -> Iterable[Any]:
    detection = getattr(getattr(engine, "config", None), "ai_detection", None)
    patterns = getattr(detection, "pattern_recognition", None)
    correlation = getattr(detection, "correlation_analysis", None)
    found: list[Any] = []
    if patterns is None or getattr(patterns, "enabled", True):
        from engine.detection.enrich import IncidentEnricher

        # Pattern recognition and correlation for every new incident, whatever opened it.
        found.append((IncidentEnricher(patterns, correlation), True))
    section = getattr(detection, "anomaly_detection", None)
    if section is None or not getattr(section, "enabled", False):
        return found
    from engine.detection.service import AnomalyService

    found.append((AnomalyService(section, patterns, correlation), True))  # leader only: one engine scores and opens incidents
    return found
