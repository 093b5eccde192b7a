"""Discovered by engine.monitor.runtime.Engine: the anomaly-detection service, when
`ai_detection.anomaly_detection.enabled` is on (it is off when the section is absent)."""

from __future__ import annotations

from typing import Any, Iterable


def plugins(engine: Any) -> Iterable[Any]:
    detection = getattr(getattr(engine, "config", None), "ai_detection", None)
    section = getattr(detection, "anomaly_detection", None)
    if section is None or not getattr(section, "enabled", False):
        return []
    from engine.detection.service import AnomalyService

    service = AnomalyService(section, getattr(detection, "pattern_recognition", None), getattr(detection, "correlation_analysis", None))
    return [(service, True)]  # leader only: one engine scores and opens incidents
