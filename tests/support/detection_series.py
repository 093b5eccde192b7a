"""Synthetic metric series for the detection tests: a daily cycle with Gaussian noise, and the
anomalies the detector must catch injected at a known row."""

from __future__ import annotations

import numpy as np

DAY = 86400.0
START = 1_700_006_400.0  # a midnight (UTC)


def seasonal(n: int, seed: int, interval: float = 300.0, noise: float = 1.0, amplitude: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """`n` samples every `interval` seconds: 50 + a daily sine of `amplitude` + noise."""
    rng = np.random.default_rng(seed)
    ts = START + np.arange(n) * interval
    values = 50.0 + amplitude * np.sin(2 * np.pi * ts / DAY) + rng.normal(0.0, noise, n)
    return ts, values


def inject(kind: str, values: np.ndarray, onset: int, seed: int = 0) -> np.ndarray:
    """A copy of `values` with an anomaly of `kind` starting at row `onset` (sizes in units of
    the noise's standard deviation)."""
    out = values.copy()
    rest = len(out) - onset
    if kind == "spike":
        out[onset] += 12.0
    elif kind == "level_shift":
        out[onset:] += 6.0
    elif kind == "drop":
        out[onset:] -= 6.0
    elif kind == "trend_change":
        out[onset:] += 0.8 * np.arange(1, rest + 1)
    elif kind == "variance_change":
        out[onset:] += np.random.default_rng(seed + 1000).normal(0.0, 5.0, rest)
    else:
        raise ValueError(kind)
    return out
