"""Which calibrated scores become alerts: the threshold, then (with `false_positive_filter`)
confirmation, the episode cooldown, the daily pattern and the shapes people marked as false
positives; and what an alert is remembered by (its episode and signature)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.detection import features as feat
from engine.detection.detector.state import (
    MAX_EPISODES,
    REASON_ALERT,
    REASON_EPISODE,
    REASON_KNOWN_FALSE_POSITIVE,
    REASON_NONE,
    REASON_SEASONAL,
    REASON_SMALL,
    REASON_UNCONFIRMED,
    Episode,
    SeriesState,
)
from engine.detection.settings import DetectorSettings


def track_runs(settings: DetectorSettings, st: SeriesState, a: int, k: int) -> np.ndarray | None:
    """Follow the runs of one repeated value through buffer rows a..a+k-1 (every row, fitted or
    not) and mark the rows at which a run becomes a record: longer than every run that ended
    before it, at least the sensitivity's minimum length, and begun after a history `history`
    times its length. The first `confirm_span` rows of the record are marked (so a sensitivity
    that wants confirmation gets it), not the rest of the run: a stuck metric pages once, not
    again at every cooldown. None when the sensitivity has no record-run score (the runs are
    still followed)."""
    min_rows, history = settings.record_run
    out = np.zeros(k, dtype=bool) if min_rows > 0 else None
    values = st.vals[a : a + k].tolist()
    prev = float(st.vals[a - 1]) if a > 0 else math.nan
    start, length, longest = st.run_start, st.run_length, st.longest_run
    for i, v in enumerate(values):
        if v == prev:
            length += 1
        else:
            longest = max(longest, length)
            start, length = st.offset + a + i, 1
        prev = v
        if out is not None and start >= history * length:
            first = max(longest + 1, min_rows)
            out[i] = first <= length < first + settings.confirm_span
    st.run_start, st.run_length, st.longest_run = start, length, longest
    return out


def decide(
    settings: DetectorSettings,
    st: SeriesState,
    b0: int,
    cal: np.ndarray,
    x: np.ndarray,
    alert: np.ndarray,
    reason: np.ndarray,
    records: np.ndarray | None = None,
) -> None:
    """Turn calibrated scores into alerts, row by row (the filter keeps per-series state).
    `records` marks rows whose run of one repeated value is a record (`track_runs`): they reach
    the threshold whatever the model says, and a run is not a deviation nor a daily pattern, so
    those two tests do not hold them back; confirmation, the cooldown and learned shapes do."""
    s = settings
    thr = s.threshold
    strong = max(s.strong, thr)
    for j, c in enumerate(cal.tolist()):
        b = b0 + j
        row = st.offset + b
        record = records is not None and bool(records[j])
        if record and c < thr:
            c = thr
            cal[j] = c
        if not s.false_positive_filter:
            if c >= thr:
                alert[j] = True
                reason[j] = REASON_ALERT
                open_episode(settings, st, b, c)
            else:
                reason[j] = REASON_NONE
            continue
        # Rows that are at least somewhat unusual confirm a candidate next to them.
        st.recent_candidates = [r for r in st.recent_candidates if row - r < s.confirm_span]
        if c >= s.confirm_level:
            st.recent_candidates.append(row)
        reason[j] = REASON_NONE
        if c >= thr and s.min_deviation > 0 and not record:
            fitted = st.fitted
            assert fitted is not None
            zrow = np.abs(x[j] - fitted.center) / fitted.spread
            if int(np.count_nonzero(zrow >= s.min_deviation)) < s.min_deviating_features:
                reason[j] = REASON_SMALL
                c = min(c, 0.9 * thr)
                cal[j] = c
        if c >= thr:
            if row - st.last_alert_row < s.quiet_rows and c <= st.peak + s.escalation:
                reason[j] = REASON_EPISODE
                st.peak = max(st.peak, c)
                st.pending_row = -(10**9)
                continue
            if row - st.pending_row >= s.confirm_span:
                st.pending_row = row
                st.pending_score = c
                st.pending_features = x[j].copy()
                st.pending_record = record
            st.pending_score = max(st.pending_score, c)
        if row - st.pending_row >= s.confirm_span:
            continue  # no candidate, or one that nothing confirmed: a lone blip
        if len(st.recent_candidates) < s.confirm_count and c < strong:
            reason[j] = REASON_UNCONFIRMED
            continue
        # The filters judge the candidate row, not the row that confirmed it.
        cb = st.pending_row - st.offset
        st.pending_row = -(10**9)
        if s.seasonal_filter and cb >= 0 and not st.pending_record and seasonal_explains(settings, st, cb, st.pending_features):
            reason[j] = REASON_SEASONAL
            continue
        sig = signature(settings, st, cb)
        if sig is not None and any(same_shape(sig, fp, s.shape_tolerance) for fp in st.false_positive_shapes):
            reason[j] = REASON_KNOWN_FALSE_POSITIVE
            continue
        alert[j] = True
        reason[j] = REASON_ALERT
        cal[j] = max(c, st.pending_score)
        open_episode(settings, st, b, cal[j], sig, candidate=max(cb, 0))


def open_episode(
    settings: DetectorSettings, st: SeriesState, b: int, c: float, sig: list[float] | None = None, candidate: int | None = None
) -> None:
    """Record an alert at buffer row b; `candidate` is the row that started it (b itself
    unless a later row confirmed it)."""
    cb = b if candidate is None else candidate
    st.last_alert_row = st.offset + b
    st.peak = c
    if sig is None:
        sig = signature(settings, st, cb) or []
    st.episodes.append(Episode(st.offset + cb, float(st.ts[cb]), float(st.vals[cb]), c, sig))
    del st.episodes[:-MAX_EPISODES]


def seasonal_samples(settings: DetectorSettings, st: SeriesState, b: int) -> np.ndarray:
    """Values around the same time of day on up to `seasonal_days` previous days."""
    interval = st.interval
    if not feat.seasonal(interval):
        return np.empty(0)
    ts = st.ts[: b + 1]
    rows = np.array([b])
    out = []
    for d in range(1, settings.seasonal_days + 1):
        j = int(feat.lag_rows(ts, rows, d * feat.DAY, interval)[0])
        if j < 0:
            break
        out.append(st.vals[max(0, j - 1) : j + 2])
    return np.concatenate(out) if out else np.empty(0)


def seasonal_explains(settings: DetectorSettings, st: SeriesState, b: int, x: np.ndarray) -> bool:
    """True when the daily pattern accounts for the row: its value sits inside what the same
    time of day looked like on previous days, and its differences from yesterday are within
    their usual range (so only the level or the change was unusual, as at a daily ramp)."""
    fitted = st.fitted
    if fitted is None or fitted.daily_limits is None:
        return False
    lim_daily, lim_sustained = fitted.daily_limits
    if abs(x[4]) > lim_daily or abs(x[6]) > lim_sustained:
        return False
    samples = seasonal_samples(settings, st, b)
    if len(samples) < 3:
        return False
    lo, hi = float(samples.min()), float(samples.max())
    margin = 0.1 * (hi - lo)
    return bool(lo - margin <= st.vals[b] <= hi + margin)


def signature(settings: DetectorSettings, st: SeriesState, b: int) -> list[float] | None:
    """What a marked false positive is remembered by: how far, and in which direction, each
    feature of row b sat from the model's training median (signed log of the robust z),
    followed by the last `shape_length` values relative to the level before them, in units
    of the series' typical step. Direction and the mix of features count: a drop does not
    match a remembered spike, and a level shift, which looks like a spike on its first row,
    stops matching a few rows later."""
    fitted = st.fitted
    L = settings.shape_length
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


def same_shape(a: Sequence[float], b: Sequence[float], tolerance: float) -> bool:
    """Relative distance between two signatures of equal length below `tolerance`."""
    if len(a) != len(b) or not a:
        return False
    va, vb = np.asarray(a), np.asarray(b)
    norm = max(float(np.linalg.norm(va)), float(np.linalg.norm(vb)), 1e-9)
    return float(np.linalg.norm(va - vb)) / norm <= tolerance
