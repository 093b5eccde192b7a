"""Metrics correlation: how each metric series changed around an incident's start.

Pure functions over (timestamps, values) — what the monitoring engine's metric store returns —
so they run anywhere, import nothing heavy and are easy to test. A series window is classified
as one of

    spike at HH:MM / dip at HH:MM      a short excursion that came back
    sudden jump / sudden drop          a step to a new level within a few samples
    gradual increase / decrease        a flat stretch, then a ramp to a new level
    steady increase / decrease         a trend across the whole window
    stable                             nothing beyond the series' own noise

with the onset time, and the series are ranked by how close the onset is to the incident's
start and how large the change is. `related_incidents` finds incidents overlapping in time that
share services or tags.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

Stamp = datetime | float | int | str

MAX_POINTS = 120  # longer windows are averaged into this many buckets first
NOISE_SIGMAS = 5.0  # a change must exceed this many robust standard deviations of the baseline
MIN_RELATIVE = 0.02  # and 2 % of the baseline level (so a flat series' jitter is not a "jump")


@dataclass(frozen=True)
class SeriesChange:
    """The shape of one series' change around an incident."""

    series: str
    kind: str  # spike, dip, sudden_jump, sudden_drop, gradual_increase, gradual_decrease,
    #            steady_increase, steady_decrease, stable, no_data
    label: str  # "spike at 10:25", "sudden jump", ... as shown to people
    onset: datetime | None
    magnitude: float  # the change in robust standard deviations of the baseline
    before: float | None  # baseline level
    after: float | None  # level at the end of the window (the peak for a spike or dip)
    relative_change: float | None  # (after - before) / |before|, None when before is 0
    score: float = 0.0  # ranking score, 0 for stable and no_data

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["onset"] = self.onset.isoformat() if self.onset else None
        return out


def _epoch(value: Stamp) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def _robust_sd(xs: Sequence[float], level: float) -> float:
    if len(xs) < 2:
        return 0.0
    mad = 1.4826 * _median([abs(x - level) for x in xs])
    if mad > 0:
        return mad
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def _bucket(ts: list[float], vs: list[float], limit: int) -> tuple[list[float], list[float]]:
    """Average consecutive samples into at most `limit` buckets; a bucket holding one sample
    far from the others keeps that sample, so a spike one sample wide survives."""
    n = len(vs)
    if n <= limit:
        return ts, vs
    size = n / limit
    out_t: list[float] = []
    out_v: list[float] = []
    for k in range(limit):
        lo, hi = int(k * size), max(int((k + 1) * size), int(k * size) + 1)
        chunk = vs[lo:hi]
        mean = sum(chunk) / len(chunk)
        extreme = max(chunk, key=lambda v: abs(v - mean))
        out_v.append(extreme if abs(extreme - mean) > 2 * (max(chunk) - min(chunk)) / 3 and len(chunk) > 2 else mean)
        out_t.append(ts[lo])
    return out_t, out_v


def _fmt_time(epoch: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(epoch, tz or UTC).strftime("%H:%M")


def classify(
    timestamps: Sequence[Stamp],
    values: Sequence[float],
    incident_start: Stamp,
    window: float | timedelta = 3600.0,
    *,
    series: str = "",
    tz: tzinfo | None = None,
) -> SeriesChange:
    """Classify the change of one series in [start - window, start + window / 2].

    `window` is in seconds (or a timedelta). Points outside that span are ignored; the first
    quarter of the span (at least three points) is the baseline the change is measured from.
    """
    span = window.total_seconds() if isinstance(window, timedelta) else float(window)
    if span <= 0:
        raise ValueError("window must be positive")
    start = _epoch(incident_start)
    lo, hi = start - span, start + span / 2
    pairs = sorted(
        (t, float(v))
        for t, v in ((_epoch(t), v) for t, v in zip(timestamps, values))
        if lo <= t <= hi and v is not None and math.isfinite(float(v))
    )
    if len(pairs) < 5:
        return SeriesChange(series, "no_data", "no data", None, 0.0, None, None, None)
    ts, vs = _bucket([p[0] for p in pairs], [p[1] for p in pairs], MAX_POINTS)
    n = len(vs)
    nb = max(3, n // 4)
    base = vs[:nb]
    before = _median(base)
    # Noise from the baseline and from the sample-to-sample steps of the whole window (the
    # latter is not fooled by a level change and uses every sample).
    steps = [b - a for a, b in zip(vs, vs[1:])]
    step_sd = _robust_sd(steps, _median(steps)) / math.sqrt(2) if len(steps) > 2 else 0.0
    sd = max(_robust_sd(base, before), step_sd, MIN_RELATIVE * abs(before) / NOISE_SIGMAS, 1e-9)
    threshold = NOISE_SIGMAS * sd
    tail = vs[-max(3, n // 5) :]
    after = _median(tail)
    shift = after - before

    # Short excursions that came back: spike or dip.
    dev = [v - before for v in vs]
    peak_i = max(range(nb, n), key=lambda i: abs(dev[i]), default=None)
    if peak_i is not None and abs(dev[peak_i]) > threshold and abs(shift) < 0.25 * abs(dev[peak_i]) and abs(shift) < threshold:
        sign = 1 if dev[peak_i] > 0 else -1
        run = [i for i in range(nb, n) if sign * dev[i] > threshold]
        # Contiguous excursion around the peak, at most a tenth of the window (≥ 3 samples).
        first = peak_i
        while first - 1 >= nb and sign * dev[first - 1] > threshold:
            first -= 1
        if len(run) <= max(3, n // 10):
            kind = "spike" if sign > 0 else "dip"
            return _change(
                series, kind, f"{kind} at {_fmt_time(ts[first], tz)}", ts[first], abs(dev[peak_i]) / sd, before, vs[peak_i], start, span
            )

    if abs(shift) <= threshold:
        # A trend across the whole window can stay within the noise at both ends' medians only
        # if it is small; call it stable.
        return SeriesChange(series, "stable", "stable", None, abs(shift) / sd, before, after, _relative(before, after))

    up = shift > 0
    # Where the (median-of-3 smoothed) series crossed 10 % and 90 % of the way to its new
    # level for good — the last crossing — dates the onset and measures the transition.
    smooth = [vs[0]] + [_median(vs[i - 1 : i + 2]) for i in range(1, n - 1)] + [vs[-1]]

    def last_cross_smooth(fraction: float) -> int:
        level = before + fraction * shift
        idx = 0
        for i, v in enumerate(smooth):
            if (v - level) * (1 if up else -1) <= 0:
                idx = i + 1
        return min(idx, n - 1)

    i10, i90 = last_cross_smooth(0.1), last_cross_smooth(0.9)
    width = max(0, i90 - i10)
    # Steadiness: the whole window moves along one line (no flat baseline before the change).
    slope_fit = _line_r2(ts, vs)
    base_slope = _line_slope(ts[:nb], base)
    total_slope = (after - before) / max(ts[-1] - ts[0], 1e-9)
    steady = slope_fit >= 0.8 and base_slope * total_slope > 0 and abs(base_slope) >= 0.3 * abs(total_slope)
    if width <= max(2, n // 20) and not steady:
        kind = "sudden_jump" if up else "sudden_drop"
        onset = ts[i10]
    elif steady:
        kind = "steady_increase" if up else "steady_decrease"
        onset = ts[0]
    else:
        kind = "gradual_increase" if up else "gradual_decrease"
        onset = ts[i10]
    return _change(series, kind, kind.replace("_", " "), onset, abs(shift) / sd, before, after, start, span)


def _relative(before: float, after: float) -> float | None:
    return None if before == 0 else (after - before) / abs(before)


def _change(
    series: str, kind: str, label: str, onset: float, magnitude: float, before: float, after: float, start: float, span: float
) -> SeriesChange:
    return SeriesChange(
        series,
        kind,
        label,
        datetime.fromtimestamp(onset, UTC),
        magnitude,
        before,
        after,
        _relative(before, after),
        rank_score(onset, magnitude, start, span),
    )


def rank_score(onset: float, magnitude: float, start: float, span: float) -> float:
    """Higher for an onset close to the incident's start and a large change: proximity decays
    with a quarter of the window; magnitude saturates around 50 standard deviations."""
    proximity = math.exp(-abs(onset - start) / (span / 4))
    size = min(1.0, math.log1p(magnitude) / math.log1p(50.0))
    return round(proximity * (0.25 + 0.75 * size), 6)


def _line_slope(ts: Sequence[float], vs: Sequence[float]) -> float:
    n = len(vs)
    if n < 2:
        return 0.0
    mt, mv = sum(ts) / n, sum(vs) / n
    var = sum((t - mt) ** 2 for t in ts)
    return 0.0 if var == 0 else sum((t - mt) * (v - mv) for t, v in zip(ts, vs)) / var


def _line_r2(ts: Sequence[float], vs: Sequence[float]) -> float:
    n = len(vs)
    mv = sum(vs) / n
    total = sum((v - mv) ** 2 for v in vs)
    if total == 0:
        return 0.0
    slope = _line_slope(ts, vs)
    mt = sum(ts) / n
    resid = sum((v - (mv + slope * (t - mt))) ** 2 for t, v in zip(ts, vs))
    return 1.0 - resid / total


def correlate(
    series: Mapping[str, tuple[Sequence[Stamp], Sequence[float]]],
    incident_start: Stamp,
    window: float | timedelta = 3600.0,
    *,
    tz: tzinfo | None = None,
) -> list[SeriesChange]:
    """Classify every series and rank them: changed series first, by score (onset close to the
    incident's start and a large change), then the stable ones, then those without data."""
    out = [classify(ts, vs, incident_start, window, series=name, tz=tz) for name, (ts, vs) in series.items()]
    order = {"no_data": 2, "stable": 1}
    return sorted(out, key=lambda c: (order.get(c.kind, 0), -c.score, c.series))


# --------------------------------------------------------------------------- related incidents


def _as_set(value: Any) -> set[str]:
    if not value:
        return set()
    if isinstance(value, str):
        return {value}
    return {str(v) for v in value}


def _span(incident: Mapping[str, Any]) -> tuple[float, float] | None:
    begin = incident.get("detected_at") or incident.get("created_at")
    if begin is None:
        return None
    end = incident.get("resolved_at")
    b = _epoch(begin)
    return b, (_epoch(end) if end is not None else math.inf)


def related_incidents(
    incident: Mapping[str, Any],
    others: Iterable[Mapping[str, Any]],
    *,
    slack: float | timedelta = 1800.0,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Incidents overlapping `incident` in time (within `slack` seconds) that share services or
    tags, most shared first. Incident dicts carry key, services, tags, detected_at/created_at
    and resolved_at (None while open)."""
    pad = slack.total_seconds() if isinstance(slack, timedelta) else float(slack)
    mine = _span(incident)
    if mine is None:
        return []
    services, tags = _as_set(incident.get("services")), _as_set(incident.get("tags"))
    found: list[dict[str, Any]] = []
    for other in others:
        if other.get("key") == incident.get("key"):
            continue
        theirs = _span(other)
        if theirs is None or theirs[0] > mine[1] + pad or mine[0] > theirs[1] + pad:
            continue
        shared_services = sorted(services & _as_set(other.get("services")))
        shared_tags = sorted(tags & _as_set(other.get("tags")))
        if not shared_services and not shared_tags:
            continue
        found.append(
            {
                "key": other.get("key"),
                "title": other.get("title"),
                "shared_services": shared_services,
                "shared_tags": shared_tags,
                "gap_seconds": round(abs(theirs[0] - mine[0]), 3),
            }
        )
    found.sort(key=lambda r: (-(2 * len(r["shared_services"]) + len(r["shared_tags"])), r["gap_seconds"], str(r["key"])))
    return found[:limit]
