"""What the detector keeps per series (ring buffers, model, alert episodes, learned shapes),
what it reports per sample or batch, and why a row did or did not alert."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from engine.detection.detector.fitting import FittedModel

MAX_EPISODES = 32  # alerts remembered per series (for marking false positives by window)
MAX_SHAPES = 64  # false-positive shapes remembered per series

# Why a row did or did not alert; stored per row by replay-style batches.
REASON_NONE = 0  # below the threshold
REASON_ALERT = 1
REASON_EPISODE = 2  # part of an episode that already alerted
REASON_UNCONFIRMED = 3  # a lone blip, waiting for confirmation
REASON_SEASONAL = 4  # within what the same time of day looked like on previous days
REASON_KNOWN_FALSE_POSITIVE = 5  # same shape as one a person marked as a false positive
REASON_LEARNING = 6  # no model yet
REASON_SMALL = 7  # unusual for the model, but too small a deviation to matter
REASON_NAMES = {
    REASON_NONE: "normal",
    REASON_ALERT: "alert",
    REASON_EPISODE: "same episode",
    REASON_UNCONFIRMED: "unconfirmed",
    REASON_SEASONAL: "explained by daily pattern",
    REASON_KNOWN_FALSE_POSITIVE: "known false positive",
    REASON_LEARNING: "learning",
    REASON_SMALL: "small deviation",
}


@dataclass(frozen=True)
class Observation:
    """What one sample scored: `score` in [0, 1], whether it alerts, and why (not)."""

    series: str
    timestamp: float
    value: float
    score: float
    alert: bool
    reason: str


@dataclass
class Batch:
    """Per-row results of `observe_many`: scores in [0, 1], alert flags and reason codes."""

    score: np.ndarray
    alert: np.ndarray
    reason: np.ndarray


@dataclass
class Episode:
    """The latest alert of a series: where it started and what it looked like."""

    row: int
    timestamp: float
    value: float
    score: float
    signature: list[float]


@dataclass
class SeriesState:
    """Ring-buffer history and model of one series. Rows are numbered from 0 for the series."""

    capacity: int
    ts: np.ndarray = field(init=False)
    vals: np.ndarray = field(init=False)
    raw: np.ndarray = field(init=False)  # raw model score per row, NaN before the first model
    dev: np.ndarray = field(init=False)  # log(1 + largest robust z of the row's features)
    wdev: np.ndarray = field(init=False)  # log(1 + robust z of the weekly deviation), NaN without one
    n: int = 0  # rows held in the buffers
    offset: int = 0  # global row number of buffer row 0
    interval: float = 0.0
    fitted: FittedModel | None = None
    last_fit_row: int = -(10**9)
    last_fit_ts: float = -math.inf  # timestamp of the row the current model started scoring at
    fits: int = 0  # models installed so far
    first_fit_row: int = -1
    fit_pending: bool = False
    ref_ready: bool = False
    dev_ready: bool = False
    week_ready: bool = False
    week_ref: tuple[float, float] = (0.0, 0.0)  # (median, max) of the past weekly deviation scores
    ref_median: tuple[float, float] = (0.0, 0.0)  # (model score, deviation)
    ref_high: tuple[float, float] = (0.0, 0.0)
    sustained_ref: tuple[float, float] | None = None  # (median, max) of the past rolling mean score
    # The current run of one repeated value (its first global row and length) and the longest
    # run that ended before it: the record-run score's state, kept over every row seen.
    run_start: int = 0
    run_length: int = 0
    longest_run: int = 0
    last_alert_row: int = -(10**9)
    peak: float = 0.0
    recent_candidates: list[int] = field(default_factory=list)
    pending_row: int = -(10**9)
    pending_score: float = 0.0
    pending_features: Any = None
    pending_record: bool = False  # the pending candidate is a record run (no deviation or daily test)
    episodes: list[Episode] = field(default_factory=list)  # the latest alerts, oldest first
    false_positive_shapes: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ts = np.empty(self.capacity, dtype=np.float64)
        self.vals = np.empty(self.capacity, dtype=np.float64)
        self.raw = np.empty(self.capacity, dtype=np.float64)
        self.dev = np.empty(self.capacity, dtype=np.float64)
        self.wdev = np.empty(self.capacity, dtype=np.float64)

    @property
    def rows(self) -> int:
        """Rows seen by the series so far."""
        return self.offset + self.n

    def make_room(self, extra: int, keep: int) -> None:
        """Drop old rows so `extra` more fit, keeping at least the last `keep` rows."""
        if self.n + extra <= self.capacity:
            return
        drop = max(0, self.n - keep)
        if drop:
            for arr in (self.ts, self.vals, self.raw, self.dev, self.wdev):
                arr[: self.n - drop] = arr[drop : self.n]
            self.n -= drop
            self.offset += drop
        if self.n + extra > self.capacity:
            self.capacity = max(2 * self.capacity, self.n + extra)
            for name in ("ts", "vals", "raw", "dev", "wdev"):
                old = getattr(self, name)
                new = np.empty(self.capacity, dtype=np.float64)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)


def to_epoch(value: datetime | float | int | str) -> float:
    """Seconds since the epoch; naive datetimes and strings are taken as UTC."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()
