"""Model fits: a `FitJob` copies what a refit needs out of a series, `run()` fits PyOD HBOS
on its rows (pure, so it may run in another thread) and gives the `FittedModel`; `calibrate`
turns raw model scores into [0, 1); `warm_up` pays PyOD's first compilation early.

numpy is imported at module level and PyOD inside functions: import this module lazily.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.detection import features as feat
from engine.detection.settings import DetectorSettings

DAILY = [4, 5, 6]  # columns of the features that compare with the same time yesterday
# The deviation score looks at how far today is from yesterday (now and over the last hour):
# what a level shift on a seasonal series moves, and real data's one-row spikes do not.
DEVIATION_COLUMNS = [4, 6]


@dataclass(frozen=True)
class FitJob:
    """Everything a refit needs, copied out of the series state: safe to run in another thread."""

    series: str
    at_row: int  # global row number of the first row the new model will score
    ts: np.ndarray
    vals: np.ndarray
    start: int  # buffer rows start..stop-1 are the training rows
    stop: int
    interval: float
    n_bins: int

    def run(self) -> FittedModel:
        """Fit HBOS on the training rows. Pure: touches nothing but its own arrays."""
        HBOS = _hbos()
        x = feat.compute(self.ts, self.vals, self.start, self.stop, self.interval)
        model = HBOS(n_bins=self.n_bins, contamination=0.01)
        model.fit(np.ascontiguousarray(x, dtype=np.float64))
        limits = None
        # Training rows with a sample one day before them (the others have zero daily features).
        dated = x[self.ts[self.start : self.stop] >= self.ts[0] + feat.DAY]
        daily = dated[:, 4]
        have_dated = feat.seasonal(self.interval) and len(dated) >= 30
        if have_dated:
            # Only a series whose day-over-day differences are much smaller than its own spread
            # has a daily pattern worth explaining alerts with.
            spread = float(np.std(x[:, 0]))
            if spread > 0 and float(np.std(daily)) < 0.5 * spread:
                # Twice the 99th percentile: noise at a daily ramp stays inside, a day that
                # really differs from yesterday does not.
                limits = (2.0 * float(np.quantile(np.abs(daily), 0.99)), 2.0 * float(np.quantile(np.abs(dated[:, 6]), 0.99)))
        center = np.median(x, axis=0)
        spread = 1.4826 * np.median(np.abs(x - center), axis=0)
        # The daily features are zero on rows with no sample a day earlier: judge them by the
        # rows that have one, or not at all.
        if have_dated:
            center[DAILY] = np.median(dated[:, DAILY], axis=0)
            absdev = np.abs(dated[:, DAILY] - center[DAILY])
            # Mostly-constant daily differences (a series of rare spikes) have a MAD of zero:
            # fall back to the mean absolute deviation rather than call every spike infinite.
            spread[DAILY] = np.where(np.median(absdev, axis=0) > 0, 1.4826 * np.median(absdev, axis=0), 1.2533 * absdev.mean(axis=0))
        else:
            center[DAILY] = 0.0
            spread[DAILY] = np.inf
        # Features that barely vary (a flat level, a spiky series' changes) get a tiny spread:
        # any movement there counts as a large deviation.
        floor = 1e-9 * (1.0 + np.abs(center))
        spread = np.maximum(spread, floor)
        weekly = None
        week = feat.weekly_deviation(self.ts, self.vals, self.start, self.stop, self.interval)
        week = week[np.isfinite(week)]
        # At least a day of training rows with a weekly reference, so its spread means something.
        if len(week) >= max(30, feat.DAY / self.interval):
            wc = float(np.median(week))
            ad = np.abs(week - wc)
            ws = 1.4826 * float(np.median(ad)) if np.median(ad) > 0 else 1.2533 * float(ad.mean())
            weekly = (wc, max(ws, 1e-9 * (1.0 + abs(wc))))
        return FittedModel(model, self.at_row, self.interval, limits, center, spread, weekly)


@dataclass
class FittedModel:
    model: Any
    at_row: int
    interval: float
    daily_limits: tuple[float, float] | None  # 99th percentiles of |vs_yesterday| features
    center: np.ndarray  # per-feature median of the training rows
    spread: np.ndarray  # per-feature robust standard deviation (MAD) of the training rows
    weekly: tuple[float, float] | None = None  # (median, robust sd) of the weekly deviation, if kept


def calibrate(raw: np.ndarray, median: float, high: float, margin: float = 1.0) -> np.ndarray:
    """(raw - median) / (high - median) / margin, clipped at 0 and squashed to [0, 1) as
    r / (1 + r)."""
    spread = max(high - median, 1e-9 * (1.0 + abs(median))) * margin
    ratio = np.clip((raw - median) / spread, 0.0, 1e12)
    return ratio / (1.0 + ratio)


_hbos_lock = threading.Lock()
_hbos_class: Any = None


def _hbos() -> Any:
    """PyOD's HBOS, its numba kernel compiled once per machine rather than once per process.

    PyOD's kernel is jitted without numba's on-disk cache, so every process (each `pulseguard
    replay`, each engine start) spent 3-5 s compiling it. With the cache (beside PyOD's own
    bytecode, or numba's per-user cache directory when that is read-only) a later process loads
    it in a fraction of a second. Numba keys the cache on the source file and the CPU, so an
    upgraded PyOD compiles afresh; where no cache location is writable it compiles as before."""
    global _hbos_class
    with _hbos_lock:
        if _hbos_class is None:
            from pyod.models import hbos

            try:
                hbos._calculate_outlier_scores.enable_caching()
            except Exception:  # no writable cache location: compile in memory, as numba would
                pass
            _hbos_class = hbos.HBOS
        return _hbos_class


_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def warm_up(block: bool = False) -> threading.Thread:
    """Import PyOD and pay numba's first-fit compilation in a background thread (once per
    process). Returns the thread; `block=True` waits for it."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm, name="pulseguard-detector-warm-up", daemon=True)
            _warm_thread.start()
        thread = _warm_thread
    if block:
        thread.join()
    return thread


def _warm() -> None:
    rng = np.random.default_rng(0)
    ts = np.arange(300, dtype=np.float64) * 60.0
    vals = rng.normal(size=300)
    job = FitJob("warm-up", 300, ts, vals, 0, 300, 60.0, DetectorSettings().n_bins)
    fitted = job.run()
    fitted.model.decision_function(feat.compute(ts, vals, 299, 300, 60.0))
