"""`StreamingDetector`: one state per metric series; observe, fit, score and learn.

How a sample becomes an alert is told in the package's docstring (engine.detection.detector).
numpy is imported at module level and PyOD inside functions: import this module lazily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from engine.core.domain import InvalidInput
from engine.detection import features as feat
from engine.detection.detector import alerting
from engine.detection.detector.fitting import DEVIATION_COLUMNS, FitJob, FittedModel, calibrate
from engine.detection.detector.state import (
    MAX_SHAPES,
    REASON_EPISODE,
    REASON_KNOWN_FALSE_POSITIVE,
    REASON_LEARNING,
    REASON_NAMES,
    REASON_NONE,
    Batch,
    Episode,
    Observation,
    SeriesState,
    to_epoch,
)
from engine.detection.settings import DetectorSettings


def rolling_mean(values: np.ndarray, k: int) -> np.ndarray:
    """Mean of each run of k consecutive values (len(values) - k + 1 of them), each summed on its
    own so a row's mean does not depend on how the stream was cut into batches."""
    out: np.ndarray = np.lib.stride_tricks.sliding_window_view(values, k).mean(axis=1)
    return out


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

    def states(self) -> dict[str, SeriesState]:
        """Every series' state by name, for reading (status, the worker's `inspect`)."""
        return self._series

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
        week = feat.weekly_rows(st.interval) if st.interval else 0
        return max(s.train_window, s.calibration_window) + max(season, week, 16) + 8

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
        st.wdev[a : a + k] = np.nan
        st.n = a + k
        if not st.interval or st.fitted is None:
            st.interval = feat.estimate_interval(st.ts[max(0, st.n - 256) : st.n])
        records = alerting.track_runs(self.settings, st, a, k)

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
                self._score(st, a + i, a + end, score[i:end], alert[i:end], reason[i:end], None if records is None else records[i:end])
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
        q = s.quantile
        st.ref_ready = len(past) >= s.min_reference
        if st.ref_ready:
            st.ref_median = (float(np.median(past)), st.ref_median[1])
            st.ref_high = (float(np.quantile(past, q)), st.ref_high[1])
        k = s.sustained_rows
        st.sustained_ref = None
        if k > 1 and len(past) >= max(s.min_reference, 4 * k):
            means = rolling_mean(past, k)
            st.sustained_ref = (float(np.median(means)), float(np.max(means)))
        # The deviation score needs its own history of rows that had a day-ago sample.
        st.dev_ready = len(past_dev) >= s.min_reference
        if st.dev_ready:
            st.ref_median = (st.ref_median[0], float(np.median(past_dev)))
            st.ref_high = (st.ref_high[0], float(np.max(past_dev)))
        past_week = st.wdev[lo:hi]
        past_week = past_week[np.isfinite(past_week)]
        # A record needs a full week of weekly scores behind it (every weekday seen once): over a
        # few days the highest is a low bar, and a new series would alert on its fourth week.
        week_rows = feat.WEEK / fitted.interval if fitted.interval > 0 else math.inf
        st.week_ready = fitted.weekly is not None and len(past_week) >= max(s.min_reference, week_rows)
        if st.week_ready:
            st.week_ref = (float(np.median(past_week)), float(np.max(past_week)))

    # --------------------------------------------------------------- scoring

    def _score(
        self,
        st: SeriesState,
        b0: int,
        b1: int,
        score: np.ndarray,
        alert: np.ndarray,
        reason: np.ndarray,
        records: np.ndarray | None = None,
    ) -> None:
        """Score buffer rows b0..b1-1 with the current model and decide their alerts (`records`:
        the rows whose run of one repeated value is a record, see `alerting.track_runs`)."""
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
        wz = np.full(len(raw), np.nan)
        if fitted.weekly is not None:
            week = feat.weekly_deviation(st.ts[:b1], st.vals[:b1], b0, b1, fitted.interval)
            wz = np.abs(week - fitted.weekly[0]) / fitted.weekly[1]
            st.wdev[b0:b1] = np.log1p(wz)
        if not st.ref_ready:
            return
        cal = calibrate(raw, st.ref_median[0], st.ref_high[0])
        if self.settings.deviation_score and st.dev_ready:
            # HBOS caps what one feature adds: a sample far off in one or two views only (a level
            # shift on a seasonal series) needs the deviation score to stand out.
            # Only a record: further from yesterday than any row of the calibration window.
            big = (z >= self.settings.deviation_bar) & (dev > st.ref_high[1])
            cal = np.maximum(cal, np.where(big, calibrate(dev, st.ref_median[1], st.ref_high[1]), 0.0))
        if self.settings.weekly_score and st.week_ready:
            # A weekday unlike the same weekday of the previous weeks (a holiday on a series with
            # a weekly rhythm): counts as the daily deviation does, as a record of the calibration
            # window at least `deviation_bar` robust standard deviations off.
            wdev = st.wdev[b0:b1]
            big = np.isfinite(wz) & (wz >= self.settings.deviation_bar) & (wdev > st.week_ref[1])
            cal = np.maximum(cal, np.where(big, calibrate(np.nan_to_num(wdev), *st.week_ref), 0.0))
        k = self.settings.sustained_rows
        if st.sustained_ref is not None and b0 >= k - 1:
            # Rows of an unfinished run are NaN in the mean and never count.
            mean = rolling_mean(st.raw[b0 - k + 1 : b1], k)
            med, top = st.sustained_ref
            record = np.isfinite(mean) & (mean > top)
            cal = np.maximum(cal, np.where(record, calibrate(np.nan_to_num(mean), med, top), 0.0))
        alerting.decide(self.settings, st, b0, cal, x, alert, reason, records)
        # What the filter held back stays below the alert threshold in the reported score, so a
        # chart or a threshold sweep sees the decision, not the raw burst.
        held = (reason >= REASON_EPISODE) & (reason <= REASON_KNOWN_FALSE_POSITIVE)
        score[:] = np.where(held, np.minimum(cal, 0.9 * self.settings.threshold), cal)

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
            at_peak = alerting.signature(self.settings, st, lo + int(np.nanargmax(raw)))
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
        samples = alerting.seasonal_samples(self.settings, st, b)
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
