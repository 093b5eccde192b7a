"""Causal features of a univariate metric series, one row per sample.

Every feature of row i uses only rows 0..i, so a detector trained and scored on them never looks
ahead. The same function builds training matrices and the rows being scored, which keeps the
live detector and the replay identical.

numpy is imported at module level: import this module lazily (from a worker thread or a
command handler), never from code the console imports at start-up.
"""

from __future__ import annotations

import numpy as np

DAY = 86400.0
WEEK = 7 * DAY
HOUR = 3600.0
WEEKS = 3  # weeks back the weekly reference looks (their median: last week's holiday does not echo)
WEEKLY_ROWS = 4096  # most rows the weekly history may take per series (memory)

FEATURE_NAMES = (
    "level",  # the value itself: catches values outside the usual range
    "change",  # first difference: catches steps and spikes at their first row
    "deviation",  # distance from the mean of the previous 4 rows
    "volatility",  # standard deviation of the last 5 rows: catches variance changes
    "vs_yesterday",  # difference from the same time one day earlier: daily seasonality
    "change_vs_yesterday",  # first difference minus the one at the same time yesterday
    "sustained_vs_yesterday",  # vs_yesterday averaged over the last SUSTAIN rows
)
SUSTAIN = 12
N_FEATURES = len(FEATURE_NAMES)


def estimate_interval(ts: np.ndarray) -> float:
    """Typical sampling interval in seconds (median of the positive gaps); 60 s if unknown."""
    if len(ts) < 2:
        return 60.0
    gaps = np.diff(ts)
    gaps = gaps[gaps > 0]
    if not len(gaps):
        return 60.0
    return float(np.median(gaps))


def lag_rows(ts: np.ndarray, rows: np.ndarray, period: float, interval: float) -> np.ndarray:
    """For each row, the earlier row closest to `period` seconds before it, or -1.

    Found by timestamp rather than by counting rows, so gaps and jittered probe times still line
    up with the same time of day. `ts` must be non-decreasing.
    """
    target = ts[rows] - period
    after = np.searchsorted(ts, target, side="left")
    before = np.clip(after - 1, 0, None)
    after = np.minimum(after, len(ts) - 1)
    pick = np.where(np.abs(ts[after] - target) < np.abs(ts[before] - target), after, before)
    ok = (np.abs(ts[pick] - target) <= 0.75 * interval) & (pick < rows) & (pick >= 1)
    return np.where(ok, pick, -1)


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    median: np.ndarray = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    return median


def seasonal(interval: float) -> bool:
    """Whether a day is long enough, in rows, for the daily features to mean something and short
    enough to keep in memory (sampling every 5 s to every 12 h)."""
    return 5.0 <= interval <= DAY / 2


def weekly(interval: float) -> bool:
    """Whether the weekly context is kept for a series sampled every `interval` seconds: WEEKS
    weeks must fit in WEEKLY_ROWS rows (every 7.4 min or slower) and a week must span enough rows
    (every 6 h or faster)."""
    return WEEKS * WEEK / WEEKLY_ROWS <= interval <= DAY / 4


def weekly_rows(interval: float) -> int:
    """Rows of history the weekly deviation of one row reaches back to (0 when not kept)."""
    if not weekly(interval):
        return 0
    return int(np.ceil((WEEKS * WEEK + HOUR) / interval)) + SUSTAIN + 4


def weekly_deviation(ts: np.ndarray, vals: np.ndarray, start: int, stop: int, interval: float) -> np.ndarray:
    """For rows start..stop-1: the mean over the last SUSTAIN rows of the difference between the
    value and the median of the same time 1..WEEKS weeks earlier; NaN where a week-ago sample of
    any of those rows is missing, or the series is not kept weekly.

    A day that differs from the same weekday of the previous weeks (a public holiday on a weekday
    of a series with a weekly rhythm) stands out here while yesterday's difference is ordinary;
    the median of three weeks keeps a holiday last week from echoing this week. The same is
    computed against the weeks shifted by an hour either way and the smallest difference kept: a
    daylight-saving change moves a human rhythm by an hour against UTC timestamps, which a
    holiday does not explain away but an hour's shift does."""
    n = stop - start
    out = np.full(n, np.nan)
    if n <= 0 or not weekly(interval):
        return out
    first = max(0, start - (SUSTAIN - 1))
    rows = np.arange(first, stop)
    idx = np.arange(start - first, len(rows))
    for shift in (0.0, -HOUR, HOUR):
        refs = np.empty((WEEKS, len(rows)))
        ok = np.ones(len(rows), dtype=bool)
        for k in range(1, WEEKS + 1):
            j = lag_rows(ts[:stop], rows, k * WEEK + shift, interval)
            ok &= j >= 0
            refs[k - 1] = vals[np.maximum(j, 0)]
        diff = np.where(ok, vals[rows] - np.median(refs, axis=0), np.nan)
        # Summed in a fixed order, so chunked and whole-series computations agree to the bit;
        # rows too close to the start of the buffer for a full mean stay NaN.
        total = np.zeros(n)
        for k in range(SUSTAIN):
            src = idx - k
            total += np.where(src >= 0, diff[np.maximum(src, 0)], np.nan)
        mean = total / SUSTAIN
        if shift == 0.0:
            out = mean
        else:
            # A shifted reference only ever explains a difference away, never adds one; it
            # counts only where the unshifted one exists.
            closer = np.isfinite(mean) & np.isfinite(out) & (np.abs(mean) < np.abs(out))
            out = np.where(closer, mean, out)
    return out


def compute(ts: np.ndarray, vals: np.ndarray, start: int, stop: int, interval: float) -> np.ndarray:
    """Feature matrix (stop - start, N_FEATURES), C-contiguous float64, for rows start..stop-1.

    `ts` (non-decreasing) and `vals` are the series buffers; rows before `start` are history.
    Rows too close to the beginning of the buffer reuse its first value, which makes their
    changes zero; rows with no sample a day earlier get zero daily features.
    """
    n = stop - start
    out = np.empty((n, N_FEATURES), dtype=np.float64)
    if n <= 0:
        return out
    # The sustained feature averages the daily difference of earlier rows too.
    first = max(0, start - (SUSTAIN - 1))
    rows = np.arange(first, stop)
    x = vals[rows]
    lags = np.empty((5, len(rows)), dtype=np.float64)
    lags[0] = x
    for k in range(1, 5):
        lags[k] = vals[np.clip(rows - k, 0, None)]
    change = x - lags[1]
    if seasonal(interval):
        j = lag_rows(ts[:stop], rows, DAY, interval)
        ok = j >= 2
        jj = np.where(ok, j, 2)
        # Yesterday as the median of three neighbouring samples, so a one-row spike yesterday
        # does not echo as an anomaly today.
        y0 = _median3(vals[jj - 1], vals[jj], vals[jj + 1])
        daily = np.where(ok, x - y0, 0.0)
        daily_change = np.where(ok, change - (vals[jj] - vals[jj - 1]), 0.0)
    else:
        daily = np.zeros(len(rows))
        daily_change = daily
    cut = start - first
    out[:, 0] = x[cut:]
    out[:, 1] = change[cut:]
    out[:, 2] = (x - lags[1:].mean(axis=0))[cut:]
    out[:, 3] = lags.std(axis=0)[cut:]
    out[:, 4] = daily[cut:]
    out[:, 5] = daily_change[cut:]
    # Mean of the daily difference over rows i-SUSTAIN+1..i (fewer at the very beginning),
    # summed in a fixed order so chunked and whole-series computations agree to the bit.
    total = np.zeros(n)
    count = np.zeros(n)
    idx = np.arange(cut, len(rows))
    for k in range(SUSTAIN):
        src = idx - k
        ok = src >= 0
        total += np.where(ok, daily[np.maximum(src, 0)], 0.0)
        count += ok
    out[:, 6] = total / count
    return out
