"""The streaming anomaly detector (see engine.detection.detector.streaming)."""

from engine.detection.detector.streaming import (
    REASON_NAMES,
    SENSITIVITIES,
    Batch,
    DetectorSettings,
    FitJob,
    Observation,
    StreamingDetector,
    warm_up,
)

__all__ = ["REASON_NAMES", "SENSITIVITIES", "Batch", "DetectorSettings", "FitJob", "Observation", "StreamingDetector", "warm_up"]
