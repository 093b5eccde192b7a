"""The streaming anomaly detector: one state per metric series, PyOD HBOS on causal features.

How a sample becomes an alert:

1. Its features (engine.detection.features) are built from that sample and earlier ones only.
2. The series' current model (PyOD HBOS, fitted on the previous `train_window` rows and refitted
   every `refit_every` rows, or every `refit_interval` seconds of the series' clock when that is
   set) gives a raw outlier score.
3. The raw score is calibrated against the series' own past scores with the ratio
   r = (s - median) / (q - median), q the 99.9th percentile of the past scores, squashed to [0, 1)
   as r / (1 + r). It is scale-free, so one threshold means the same thing on a flat series and on
   a noisy one: 0.5 is "as unusual as the most unusual 0.1 % of the recent past". HBOS caps what
   one feature can add, so its score counts how many views of the sample are unusual at once;
   many clear anomalies reach that cap and score exactly 0.5.
4. A second, deviation score covers what HBOS's cap hides: a sample further from the same time
   yesterday (now, or over the last 12 rows) than any row of the calibration window, by at least
   `deviation_floor` robust standard deviations — a level shift on a seasonal series.
5. `sensitivity` picks the threshold and the minimum deviation (at least `deviating_features`
   features that many robust standard deviations off). With `false_positive_filter` on, a
   candidate must also be confirmed (a second row scoring `confirm_level` within
   `confirm_span`), must not belong to an episode that already alerted (cooldown unless the
   score escalates), must not be explained by the series' daily pattern, and must not match a
   shape a person marked as a false positive on that series.

Fits are pure (`FitJob.run`), so they can run in another thread (`fit_inline=False`, then
`pending_fits()` / `install()`); replay, tests and the engine service (which runs the whole
detector in one worker thread) fit inline. Scoring between fits is the same code in both modes.

numpy is imported at module level and PyOD inside functions: import this module lazily.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from engine.core.domain import InvalidInput
from engine.detection import features as feat
from engine.detection.settings import SENSITIVITIES, DetectorSettings

__all__ = ["SENSITIVITIES", "DetectorSettings", "StreamingDetector", "Observation", "Batch", "FitJob", "warm_up"]
MAX_EPISODES = 32  # alerts remembered per series (for marking false positives by window)
MAX_SHAPES = 64  # false-positive shapes remembered per series
DAILY = [4, 5, 6]  # columns of the features that compare with the same time yesterday
# The deviation score looks at how far today is from yesterday (now and over the last hour):
# what a level shift on a seasonal series moves, and real data's one-row spikes do not.
DEVIATION_COLUMNS = [4, 6]

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
        from pyod.models.hbos import HBOS

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
        return FittedModel(model, self.at_row, self.interval, limits, center, spread)


@dataclass
class FittedModel:
    model: Any
    at_row: int
    interval: float
    daily_limits: tuple[float, float] | None  # 99th percentiles of |vs_yesterday| features
    center: np.ndarray  # per-feature median of the training rows
    spread: np.ndarray  # per-feature robust standard deviation (MAD) of the training rows


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
    ref_median: tuple[float, float] = (0.0, 0.0)  # (model score, deviation)
    ref_high: tuple[float, float] = (0.0, 0.0)
    last_alert_row: int = -(10**9)
    peak: float = 0.0
    recent_candidates: list[int] = field(default_factory=list)
    pending_row: int = -(10**9)
    pending_score: float = 0.0
    pending_features: Any = None
    episodes: list[Episode] = field(default_factory=list)  # the latest alerts, oldest first
    false_positive_shapes: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ts = np.empty(self.capacity, dtype=np.float64)
        self.vals = np.empty(self.capacity, dtype=np.float64)
        self.raw = np.empty(self.capacity, dtype=np.float64)
        self.dev = np.empty(self.capacity, dtype=np.float64)

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
            for arr in (self.ts, self.vals, self.raw, self.dev):
                arr[: self.n - drop] = arr[drop : self.n]
            self.n -= drop
            self.offset += drop
        if self.n + extra > self.capacity:
            self.capacity = max(2 * self.capacity, self.n + extra)
            for name in ("ts", "vals", "raw", "dev"):
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


class StreamingDetector:
    """Per-series streaming anomaly detection. Not thread-safe: call it from one thread (the
    event loop); only `FitJob.run` is meant for worker threads."""

    def __init__(self, settings: DetectorSettings | None = None, *, fit_inline: bool = True) -> None:
        self.settings = settings or DetectorSettings()
        self.fit_inline = fit_inline
        self._series: dict[str, SeriesState] = {}
        self._pending: list[FitJob] = []

    # ----------------------------------------------------------------- state

    def series(self) -> list[str]:
        return list(self._series)

    def state(self, series: str) -> SeriesState:
        st = self._series.get(series)
        if st is None:
            st = SeriesState(capacity=512)
            self._series[series] = st
        return st

    def forget(self, series: str) -> None:
        self._series.pop(series, None)

    def _keep_rows(self, st: SeriesState) -> int:
        s = self.settings
        season = 0
        if st.interval and feat.seasonal(st.interval):
            season = int(math.ceil(s.seasonal_days * feat.DAY / st.interval)) + 4
        return max(s.train_window, s.calibration_window) + max(season, 16) + 8

    # --------------------------------------------------------------- observe

    def observe(self, series: str, timestamp: datetime | float | str, value: float) -> Observation:
        """Score one sample (live path). Non-finite values are not learned and never alert."""
        ts = to_epoch(timestamp)
        b = self.observe_many(series, np.array([ts], dtype=np.float64), np.array([value], dtype=np.float64))
        return Observation(series, ts, float(value), float(b.score[0]), bool(b.alert[0]), REASON_NAMES[int(b.reason[0])])

    def observe_many(self, series: str, timestamps: np.ndarray, values: np.ndarray) -> Batch:
        """Score consecutive samples of one series; the same result as one `observe` per row
        when fits are inline."""
        ts_in = np.asarray(timestamps, dtype=np.float64)
        x_in = np.asarray(values, dtype=np.float64)
        k = len(x_in)
        score = np.zeros(k, dtype=np.float64)
        alert = np.zeros(k, dtype=bool)
        reason = np.full(k, REASON_LEARNING, dtype=np.int8)
        if not self.settings.enabled or k == 0:
            reason[:] = REASON_NONE
            return Batch(score, alert, reason)
        good = np.isfinite(x_in) & np.isfinite(ts_in)
        if not good.all():
            idx = np.flatnonzero(good)
            inner = self.observe_many(series, ts_in[idx], x_in[idx])
            score[idx], alert[idx], reason[idx] = inner.score, inner.alert, inner.reason
            reason[~good] = REASON_NONE
            return Batch(score, alert, reason)

        st = self.state(series)
        st.make_room(k, self._keep_rows(st))
        a = st.n
        # A clock that never steps back, so "the same time yesterday" can be searched for.
        last = st.ts[a - 1] if a else -np.inf
        st.ts[a : a + k] = np.maximum.accumulate(np.maximum(ts_in, last))
        st.vals[a : a + k] = x_in
        st.raw[a : a + k] = np.nan
        st.dev[a : a + k] = np.nan
        st.n = a + k
        if not st.interval or st.fitted is None:
            st.interval = feat.estimate_interval(st.ts[max(0, st.n - 256) : st.n])

        i = 0
        while i < k:
            row = st.offset + a + i
            self._maybe_fit(st, series, row)
            end = k
            if self.fit_inline:
                # Stop the segment where the next refit is due.
                next_fit = self._next_fit_row(st, row, a + i, a + k)
                end = min(k, i + max(1, next_fit - row))
            if st.fitted is not None:
                self._score(st, a + i, a + end, score[i:end], alert[i:end], reason[i:end])
            i = end
        return Batch(score, alert, reason)

    # ------------------------------------------------------------------ fits

    def _fit_due(self, st: SeriesState, row: int) -> bool:
        if st.fit_pending:
            return False
        b = row - st.offset
        return self._next_fit_row(st, row, b, b + 1) <= row

    def _next_fit_row(self, st: SeriesState, row: int, b0: int, b1: int) -> int:
        """The first row >= `row` at which a refit is due, looking at buffer rows b0..b1-1 for
        the time cadence (a row past them counts as not due yet)."""
        s = self.settings
        if st.fitted is None:
            return max(row, s.min_train)
        if s.refit_interval is None:
            return max(row, st.last_fit_row + s.refit_every)
        found = b0 + int(np.searchsorted(st.ts[b0:b1], st.last_fit_ts + s.refit_interval, side="left"))
        due = st.offset + found
        if st.last_fit_row < s.train_window:
            # A model trained on a still-growing history is replaced once the history grew by half.
            due = min(due, max(st.last_fit_row + 1, int(1.5 * st.last_fit_row)))
        return max(row, due)

    def _job(self, st: SeriesState, series: str, row: int) -> FitJob:
        b = row - st.offset  # buffer index of the row to be scored next
        start = max(0, b - self.settings.train_window)
        # Copy only what the features of the training rows can reach back to.
        lo = max(0, start - (self._keep_rows(st) - self.settings.train_window))
        ts = st.ts[lo:b].copy()
        vals = st.vals[lo:b].copy()
        interval = feat.estimate_interval(ts[-min(len(ts), 2048) :])
        return FitJob(series, row, ts, vals, start - lo, b - lo, interval, self.settings.n_bins)

    def _maybe_fit(self, st: SeriesState, series: str, row: int) -> None:
        if not self._fit_due(st, row):
            return
        job = self._job(st, series, row)
        if self.fit_inline:
            self._install(st, job.run())
        else:
            st.fit_pending = True
            st.last_fit_row = row
            self._pending.append(job)

    def pending_fits(self) -> list[FitJob]:
        """Refits due since the last call (deferred mode): run each `job.run()` in a worker
        thread, then hand the result to `install`."""
        jobs, self._pending = self._pending, []
        return jobs

    def install(self, job: FitJob, fitted: FittedModel | None) -> None:
        """Use a model fitted off the loop; `None` (the fit failed) just allows a new attempt."""
        st = self._series.get(job.series)
        if st is None:
            return
        st.fit_pending = False
        if fitted is not None:
            self._install(st, fitted)

    def _install(self, st: SeriesState, fitted: FittedModel) -> None:
        st.fitted = fitted
        st.fits += 1
        st.last_fit_row = fitted.at_row
        b = fitted.at_row - st.offset
        if 0 <= b < st.n:
            st.last_fit_ts = float(st.ts[b])
        st.fit_pending = False
        st.interval = fitted.interval
        if st.first_fit_row < 0:
            st.first_fit_row = fitted.at_row
        s = self.settings
        # Reference: the scores of the rows the model scored after the learning period, up to
        # the row the new model starts at.
        first = st.first_fit_row + s.learning_rows - st.offset
        end = fitted.at_row - st.offset
        lo, hi = max(0, first, end - s.calibration_window), max(0, end)
        past = st.raw[lo:hi]
        past = past[np.isfinite(past)]
        past_dev = st.dev[lo:hi]
        past_dev = past_dev[np.isfinite(past_dev)]
        q = s.calibration_quantile
        st.ref_ready = len(past) >= s.min_reference
        if st.ref_ready:
            st.ref_median = (float(np.median(past)), st.ref_median[1])
            st.ref_high = (float(np.quantile(past, q)), st.ref_high[1])
        # The deviation score needs its own history of rows that had a day-ago sample.
        st.dev_ready = len(past_dev) >= s.min_reference
        if st.dev_ready:
            st.ref_median = (st.ref_median[0], float(np.median(past_dev)))
            st.ref_high = (st.ref_high[0], float(np.max(past_dev)))

    # --------------------------------------------------------------- scoring

    def _score(self, st: SeriesState, b0: int, b1: int, score: np.ndarray, alert: np.ndarray, reason: np.ndarray) -> None:
        """Score buffer rows b0..b1-1 with the current model and decide their alerts."""
        fitted = st.fitted
        assert fitted is not None
        x = feat.compute(st.ts[:b1], st.vals[:b1], b0, b1, fitted.interval)
        raw = np.asarray(fitted.model.decision_function(x), dtype=np.float64)
        zs = np.abs(x - fitted.center) / fitted.spread
        z = np.max(zs[:, DEVIATION_COLUMNS], axis=1)
        # NaN when the model has no daily reference (less than a day of history).
        dev = np.log1p(z) if np.isfinite(fitted.spread[DEVIATION_COLUMNS]).all() else np.full(len(z), np.nan)
        st.raw[b0:b1] = raw
        st.dev[b0:b1] = dev
        if not st.ref_ready:
            return
        cal = _calibrate(raw, st.ref_median[0], st.ref_high[0])
        if self.settings.deviation_score and st.dev_ready:
            # HBOS caps what one feature adds: a sample far off in one or two views only (a level
            # shift on a seasonal series) needs the deviation score to stand out.
            # Only a record: further from yesterday than any row of the calibration window.
            big = (z >= self.settings.deviation_floor) & (dev > st.ref_high[1])
            cal = np.maximum(cal, np.where(big, _calibrate(dev, st.ref_median[1], st.ref_high[1]), 0.0))
        self._decide(st, b0, cal, x, alert, reason)
        # What the filter held back stays below the alert threshold in the reported score, so a
        # chart or a threshold sweep sees the decision, not the raw burst.
        held = (reason >= REASON_EPISODE) & (reason <= REASON_KNOWN_FALSE_POSITIVE)
        score[:] = np.where(held, np.minimum(cal, 0.9 * self.settings.threshold), cal)

    def _decide(self, st: SeriesState, b0: int, cal: np.ndarray, x: np.ndarray, alert: np.ndarray, reason: np.ndarray) -> None:
        """Turn calibrated scores into alerts, row by row (the filter keeps per-series state)."""
        s = self.settings
        thr = s.threshold
        strong = max(s.strong, thr)
        for j, c in enumerate(cal.tolist()):
            b = b0 + j
            row = st.offset + b
            if not s.false_positive_filter:
                if c >= thr:
                    alert[j] = True
                    reason[j] = REASON_ALERT
                    self._open_episode(st, b, c)
                else:
                    reason[j] = REASON_NONE
                continue
            # Rows that are at least somewhat unusual confirm a candidate next to them.
            st.recent_candidates = [r for r in st.recent_candidates if row - r < s.confirm_span]
            if c >= s.confirm_level:
                st.recent_candidates.append(row)
            reason[j] = REASON_NONE
            if c >= thr and s.min_deviation > 0:
                fitted = st.fitted
                assert fitted is not None
                zrow = np.abs(x[j] - fitted.center) / fitted.spread
                if int(np.count_nonzero(zrow >= s.min_deviation)) < s.deviating_features:
                    reason[j] = REASON_SMALL
                    c = min(c, 0.9 * thr)
                    cal[j] = c
            if c >= thr:
                if row - st.last_alert_row < s.cooldown and c <= st.peak + s.escalation:
                    reason[j] = REASON_EPISODE
                    st.peak = max(st.peak, c)
                    st.pending_row = -(10**9)
                    continue
                if row - st.pending_row >= s.confirm_span:
                    st.pending_row = row
                    st.pending_score = c
                    st.pending_features = x[j].copy()
                st.pending_score = max(st.pending_score, c)
            if row - st.pending_row >= s.confirm_span:
                continue  # no candidate, or one that nothing confirmed: a lone blip
            if len(st.recent_candidates) < s.confirm_count and c < strong:
                reason[j] = REASON_UNCONFIRMED
                continue
            # The filters judge the candidate row, not the row that confirmed it.
            cb = st.pending_row - st.offset
            st.pending_row = -(10**9)
            if s.seasonal_filter and cb >= 0 and self._seasonal_explains(st, cb, st.pending_features):
                reason[j] = REASON_SEASONAL
                continue
            sig = self._signature(st, cb)
            if sig is not None and any(_same_shape(sig, fp, s.shape_tolerance) for fp in st.false_positive_shapes):
                reason[j] = REASON_KNOWN_FALSE_POSITIVE
                continue
            alert[j] = True
            reason[j] = REASON_ALERT
            cal[j] = max(c, st.pending_score)
            self._open_episode(st, b, cal[j], sig, candidate=max(cb, 0))

    def _open_episode(self, st: SeriesState, b: int, c: float, sig: list[float] | None = None, candidate: int | None = None) -> None:
        """Record an alert at buffer row b; `candidate` is the row that started it (b itself
        unless a later row confirmed it)."""
        cb = b if candidate is None else candidate
        st.last_alert_row = st.offset + b
        st.peak = c
        if sig is None:
            sig = self._signature(st, cb) or []
        st.episodes.append(Episode(st.offset + cb, float(st.ts[cb]), float(st.vals[cb]), c, sig))
        del st.episodes[:-MAX_EPISODES]

    # ------------------------------------------------------- filter helpers

    def _seasonal_samples(self, st: SeriesState, b: int) -> np.ndarray:
        """Values around the same time of day on up to `seasonal_days` previous days."""
        interval = st.interval
        if not feat.seasonal(interval):
            return np.empty(0)
        ts = st.ts[: b + 1]
        rows = np.array([b])
        out = []
        for d in range(1, self.settings.seasonal_days + 1):
            j = int(feat.lag_rows(ts, rows, d * feat.DAY, interval)[0])
            if j < 0:
                break
            out.append(st.vals[max(0, j - 1) : j + 2])
        return np.concatenate(out) if out else np.empty(0)

    def _seasonal_explains(self, st: SeriesState, b: int, x: np.ndarray) -> bool:
        """True when the daily pattern accounts for the row: its value sits inside what the same
        time of day looked like on previous days, and its differences from yesterday are within
        their usual range (so only the level or the change was unusual, as at a daily ramp)."""
        fitted = st.fitted
        if fitted is None or fitted.daily_limits is None:
            return False
        lim_daily, lim_sustained = fitted.daily_limits
        if abs(x[4]) > lim_daily or abs(x[6]) > lim_sustained:
            return False
        samples = self._seasonal_samples(st, b)
        if len(samples) < 3:
            return False
        lo, hi = float(samples.min()), float(samples.max())
        margin = 0.1 * (hi - lo)
        return bool(lo - margin <= st.vals[b] <= hi + margin)

    def _signature(self, st: SeriesState, b: int) -> list[float] | None:
        """What a marked false positive is remembered by: how far, and in which direction, each
        feature of row b sat from the model's training median (signed log of the robust z),
        followed by the last `shape_length` values relative to the level before them, in units
        of the series' typical step. Direction and the mix of features count: a drop does not
        match a remembered spike, and a level shift, which looks like a spike on its first row,
        stops matching a few rows later."""
        fitted = st.fitted
        L = self.settings.shape_length
        lo = b - L + 1
        if fitted is None or lo < 4:
            return None
        x = feat.compute(st.ts[: b + 1], st.vals[: b + 1], b, b + 1, fitted.interval)[0]
        z = (x - fitted.center) / fitted.spread
        z = np.where(np.isfinite(z), z, 0.0)
        base = float(np.median(st.vals[max(0, lo - 32) : lo]))
        steps = np.abs(np.diff(st.vals[max(0, lo - 256) : lo]))
        step = float(np.median(steps)) * 1.4826 if len(steps) else 0.0
        if step <= 0:
            step = float(np.mean(steps)) if len(steps) and np.mean(steps) > 0 else max(1e-9, abs(base) * 1e-3)
        shape = (st.vals[lo : b + 1] - base) / step
        out = np.concatenate((z, shape))
        signature: list[float] = (np.sign(out) * np.log1p(np.abs(out))).tolist()
        return signature

    # --------------------------------------------------------- learning API

    def mark_false_positive(
        self,
        series: str,
        window: tuple[datetime | float | str, datetime | float | str] | None = None,
        signature: Sequence[float] | None = None,
    ) -> bool:
        """Remember the shape of a false alarm on `series` so the same shape no longer alerts.

        Give the alert's window (start, end) while the series still holds those rows, or the
        `signature` stored with the alert's evidence. Returns whether a shape was learned.
        """
        st = self._series.get(series)
        if signature is not None:
            sig = [float(v) for v in signature]
            if not sig or not all(math.isfinite(v) for v in sig):
                raise InvalidInput("signature", "expected a non-empty list of finite numbers")
            if st is None:
                st = self.state(series)
            st.false_positive_shapes.append(sig)
            del st.false_positive_shapes[:-MAX_SHAPES]
            return True
        if st is None or window is None:
            return False
        start, end = to_epoch(window[0]), to_epoch(window[1])
        if end < start:
            raise InvalidInput("window", "the window ends before it starts")
        ts = st.ts[: st.n]
        lo = int(np.searchsorted(ts, start, side="left"))
        hi = int(np.searchsorted(ts, end, side="right"))
        if lo >= hi:
            return False
        # The shapes of the alerts raised inside the window; failing those (the detector restarted
        # since), the shape at the window's most anomalous row.
        shapes = [e.signature for e in st.episodes if start <= e.timestamp <= end and e.signature]
        if not shapes:
            raw = st.raw[lo:hi]
            if not np.isfinite(raw).any():
                return False
            at_peak = self._signature(st, lo + int(np.nanargmax(raw)))
            if at_peak is None:
                return False
            shapes = [at_peak]
        for sig in shapes:
            st.false_positive_shapes.append(list(sig))
        del st.false_positive_shapes[:-MAX_SHAPES]
        return True

    def learned_shapes(self, series: str) -> list[list[float]]:
        st = self._series.get(series)
        return [list(s) for s in st.false_positive_shapes] if st else []

    def expected_band(self, series: str, timestamp: datetime | float | str | None = None) -> tuple[float, float] | None:
        """The range a sample was expected in (the latest one, or the one at `timestamp`): the
        same time of day on previous days when the series has them, else the median of the rows
        before it ± 3 robust standard deviations."""
        st = self._series.get(series)
        if st is None or st.n < 4:
            return None
        b = st.n - 1
        if timestamp is not None:
            b = int(np.searchsorted(st.ts[: st.n], to_epoch(timestamp), side="right")) - 1
            if b < 1:
                return None
        samples = self._seasonal_samples(st, b)
        if len(samples) >= 3:
            return float(np.min(samples)), float(np.max(samples))
        recent = st.vals[max(0, b - 256) : b]
        med = float(np.median(recent))
        mad = 1.4826 * float(np.median(np.abs(recent - med)))
        sd = mad if mad > 0 else float(np.std(recent))
        return med - 3.0 * sd, med + 3.0 * sd

    def recent(self, series: str, rows: int = 60) -> tuple[list[float], list[float]]:
        """The last `rows` (timestamps, values) of a series, for evidence."""
        st = self._series.get(series)
        if st is None:
            return [], []
        lo = max(0, st.n - rows)
        return st.ts[lo : st.n].tolist(), st.vals[lo : st.n].tolist()

    def episode(self, series: str) -> Episode | None:
        """The latest alert of a series (its starting row, value, score and shape)."""
        st = self._series.get(series)
        return st.episodes[-1] if st and st.episodes else None


def _calibrate(raw: np.ndarray, median: float, high: float, margin: float = 1.0) -> np.ndarray:
    """(raw - median) / (high - median) / margin, clipped at 0 and squashed to [0, 1) as
    r / (1 + r)."""
    spread = max(high - median, 1e-9 * (1.0 + abs(median))) * margin
    ratio = np.clip((raw - median) / spread, 0.0, 1e12)
    return ratio / (1.0 + ratio)


def _same_shape(a: Sequence[float], b: Sequence[float], tolerance: float) -> bool:
    """Relative distance between two signatures of equal length below `tolerance`."""
    if len(a) != len(b) or not a:
        return False
    va, vb = np.asarray(a), np.asarray(b)
    norm = max(float(np.linalg.norm(va)), float(np.linalg.norm(vb)), 1e-9)
    return float(np.linalg.norm(va - vb)) / norm <= tolerance


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
