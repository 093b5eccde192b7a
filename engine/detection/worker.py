"""Where the detector lives: a `DetectorHost` owns the streaming detector and scores batches.

The anomaly service runs the host in a separate worker process by default: model fits and
scoring are CPU-bound Python and numpy, and in a worker thread they would compete with the
console for the interpreter lock (every frame would wait its turn). In the process, the host is
a module global reached through `call`; with `worker="thread"` (tests, small set-ups) the
service keeps a host of its own and runs the same methods in one thread.

Nothing heavy is imported at module level: the parent imports this module only to name the
function it sends to the pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("pulseguard.detection")

EVIDENCE_ROWS = 60  # samples of the anomalous window kept as evidence


@dataclass
class Alert:
    """What the worker hands back to the loop for one alert (picklable)."""

    series: str
    target: str | None
    at: float
    value: float
    score: float
    band: tuple[float, float] | None
    signature: list[float]
    window: list[tuple[float, float]]
    correlation: list[dict[str, Any]] = field(default_factory=list)


class DetectorHost:
    """The detector of every watched series plus the target each series belongs to."""

    def __init__(self, settings: Any, correlation_window: float) -> None:
        from engine.detection.detector import StreamingDetector, warm_up

        self.detector = StreamingDetector(settings, fit_inline=True)
        self.window = correlation_window
        self.targets: dict[str, str | None] = {}
        warm_up(block=True)  # numba's first compilation, here rather than at the first alert

    def teach(self, items: list[tuple[str, list[float]]]) -> int:
        """False-positive shapes to remember; returns how many were new."""
        learned = 0
        for series, signature in items:
            try:
                learned += bool(self.detector.mark_false_positive(series, signature=signature))
            except Exception:
                log.warning("could not learn the false-positive shape of %s", series)
        return learned

    def score(self, batch: dict[str, list[tuple[float, float]]], targets: dict[str, str | None]) -> list[Alert]:
        """Feed each series' samples, in time order, to the detector; the alerts they raised,
        with evidence and the correlation of the target's other series."""
        import numpy as np

        from engine.detection.correlation import correlate

        self.targets.update(targets)
        found: list[Alert] = []
        for series, samples in batch.items():
            samples.sort(key=lambda s: s[0])
            ts = np.array([s[0] for s in samples], dtype=np.float64)
            vals = np.array([s[1] for s in samples], dtype=np.float64)
            result = self.detector.observe_many(series, ts, vals)
            if not result.alert.any():
                continue
            episode = self.detector.episode(series)
            if episode is None:
                continue
            window_ts, window_vals = self.detector.recent(series, EVIDENCE_ROWS)
            found.append(
                Alert(
                    series=series,
                    target=self.targets.get(series),
                    at=episode.timestamp,
                    value=episode.value,
                    score=float(result.score[result.alert].max()),
                    band=self.detector.expected_band(series, episode.timestamp),
                    signature=list(episode.signature),
                    window=list(zip(window_ts, window_vals)),
                )
            )
        for alert in found:
            others = {
                name: self.detector.recent(name, 100_000)
                for name in self.detector.series()
                if self.targets.get(name) == alert.target or name == alert.series
            }
            ranked = correlate(others, alert.at, self.window)
            alert.correlation = [c.to_dict() for c in ranked[:10]]
        return found

    def inspect(self) -> dict[str, Any]:
        """What the host holds: series, fitted models, learned shapes (for status and tests)."""
        states = self.detector.states()
        return {
            "series": sorted(states),
            "fitted": sum(st.fitted is not None for st in states.values()),
            "fits": sum(st.fits for st in states.values()),
            "shapes": {name: shapes for name in states if (shapes := self.detector.learned_shapes(name))},
        }


_host: DetectorHost | None = None


def quiet_worker() -> None:
    """Worker process initializer: its output goes nowhere. It shares the parent's terminal,
    which the console draws on; its failures reach the parent as exceptions of the calls."""
    import os

    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    os.close(sink)


def call(method: str, *args: Any) -> Any:
    """Run a `DetectorHost` method in the worker process (`start` builds the host)."""
    global _host
    if method == "start":
        _host = DetectorHost(*args)
        return None
    if _host is None:
        raise RuntimeError("the detector host has not been started")
    return getattr(_host, method)(*args)
