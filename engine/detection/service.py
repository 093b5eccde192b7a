"""The anomaly-detection engine service: scores every new metric sample, opens anomaly incidents.

Samples come from the monitor (every probe result: response time and scraped series) and from
pushed metrics (polled from the metric store). The detector and every refit run in ONE worker
thread — the same `observe_many` with inline fits that `pulseguard replay` runs — so the event
loop only queues samples and writes incidents, and the detector needs no locking.

An alert opens one incident per series episode (dedup key `anomaly:<series>`), source
`anomaly`, with the anomalous window as evidence, its score, the expected band, the shape the
detector would remember if a person marks it a false positive, pattern recognition (frequent /
rare / new, similar past incidents and their fixes) and the metrics correlation of the other
series the detector watches. Marking such an incident a false positive teaches the detector.

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger("pulseguard.detection")

UTC = timezone.utc
MAX_QUEUE = 200_000  # samples waiting for the worker; beyond this the oldest are dropped
PUSH_PAGE = 5000  # pushed samples read per query
EVIDENCE_ROWS = 60  # samples of the anomalous window kept as evidence
ACTOR = "anomaly-detector"


@dataclass
class Alert:
    """What the worker thread hands back to the loop for one alert."""

    series: str
    target: str | None
    at: float
    value: float
    score: float
    band: tuple[float, float] | None
    signature: list[float]
    window: list[tuple[float, float]]
    correlation: list[dict[str, Any]] = field(default_factory=list)


def series_name(target: str | None, key: str) -> str:
    """How the detector names a series: `target/key` for a target's series, else the key."""
    return f"{target}/{key}" if target else key


class AnomalyService:
    """Engine service (see engine.monitor.runtime): `start(engine)` / `stop()`."""

    name = "anomaly"

    def __init__(self, section: Any = None, patterns: Any = None, correlation: Any = None, *,
                 flush_every: float = 1.0, push_poll: float = 5.0, detector_settings: Any = None) -> None:
        self.section = section
        self.detector_settings = detector_settings  # overrides the section (tests, benches)
        self.patterns = patterns
        self.correlation = correlation
        self.flush_every = flush_every
        self.push_poll = push_poll
        self.engine: Any = None
        self.detector: Any = None
        self.settings: Any = None
        self.ready = asyncio.Event()
        self.opened: list[str] = []  # incident keys this service opened (newest last)
        self.stats = {"samples": 0, "alerts": 0, "incidents": 0, "dropped": 0, "learned": 0}
        self._queue: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._queued = 0
        self._targets: dict[str, str | None] = {}
        self._learn: list[tuple[str, list[float]]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._halt = asyncio.Event()
        self._hook: Any = None
        self._flushing = asyncio.Lock()
        self._push_cursor: int | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self, engine: Any) -> None:
        from engine.detection.settings import settings_from_section

        self.engine = engine
        self.settings = self.detector_settings or settings_from_section(self.section)
        self._halt = asyncio.Event()
        self.ready = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pulseguard-anomaly")
        loop = asyncio.get_running_loop()
        # numpy, PyOD and numba's first compilation load in the worker, never on the loop.
        build = loop.run_in_executor(self._executor, self._build)
        monitor = getattr(engine, "monitor", None)
        if monitor is not None:
            monitor.add_listener(self.on_observation)
        from engine import services

        self._hook = self._on_change
        services.add_change_hook(self._hook)
        self._tasks = [
            asyncio.create_task(self._run(build), name="pulseguard:anomaly"),
            asyncio.create_task(self._watch_pushed(), name="pulseguard:anomaly-pushed"),
        ]

    def _build(self) -> None:
        from engine.detection.detector import StreamingDetector, warm_up

        self.detector = StreamingDetector(self.settings, fit_inline=True)
        warm_up(block=True)

    async def stop(self) -> None:
        self._halt.set()
        monitor = getattr(self.engine, "monitor", None)
        if monitor is not None:
            monitor.remove_listener(self.on_observation)
        if self._hook is not None:
            from engine import services

            services.remove_change_hook(self._hook)
            self._hook = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)

    # -------------------------------------------------------------------- intake

    def wanted(self, series: str) -> bool:
        patterns = list(getattr(self.section, "series", None) or [])
        return not patterns or any(fnmatch.fnmatchcase(series, p) for p in patterns)

    def add_sample(self, target: str | None, key: str, at: float, value: float) -> None:
        """Queue one sample (on the loop; cheap)."""
        if value is None or value != value or value in (float("inf"), float("-inf")):
            return
        name = series_name(target, key)
        if not self.wanted(name):
            return
        self._targets[name] = target
        self._queue[name].append((float(at), float(value)))
        self._queued += 1
        if self._queued > MAX_QUEUE:
            # The worker fell far behind: drop the oldest samples of the longest queue.
            longest = max(self._queue, key=lambda k: len(self._queue[k]))
            drop = len(self._queue[longest]) // 2 or 1
            del self._queue[longest][:drop]
            self._queued -= drop
            self.stats["dropped"] += drop

    def on_observation(self, obs: Any) -> None:
        """Monitor listener: a probe's response time (when it answered) and scraped series."""
        if obs.latency_ms is not None and getattr(obs, "responded", True):
            self.add_sample(obs.target, "response_time", obs.at, obs.latency_ms)
        for sv in getattr(obs, "series", None) or ():
            self.add_sample(obs.target, sv.key, obs.at, sv.value)

    async def _on_change(self, incident: Any, event: Any, conn: Any) -> None:
        # Inside the marking transaction: only note what to learn.
        if incident is None or event.kind != "false_positive" or not (event.data or {}).get("value"):
            return
        if incident.source != "anomaly":
            return
        info = (incident.analysis or {}).get("anomaly") or {}
        if info.get("series") and info.get("signature"):
            self._learn.append((str(info["series"]), list(info["signature"])))

    async def read_pushed(self) -> int:
        """Queue every pushed sample stored since the last read (the first read only notes where
        the store ends: history is learned separately). Returns the samples queued."""
        from engine.monitor.models import MetricSample, MetricSeries

        if self._push_cursor is None:
            last = await MetricSample.all().order_by("-id").first().values_list("id", flat=True)
            self._push_cursor = int(last or 0)
            return 0
        keys = dict(await MetricSeries.filter(source="push").values_list("id", "key"))
        queued = 0
        while keys and not self._halt.is_set():
            rows = await MetricSample.filter(id__gt=self._push_cursor, series_id__in=list(keys)).order_by("id").limit(
                PUSH_PAGE).values_list("id", "series_id", "at", "value")
            for sample_id, series_id, at, value in rows:
                self._push_cursor = max(self._push_cursor, sample_id)
                self.add_sample(None, keys[series_id], at.timestamp(), float(value))
            queued += len(rows)
            # A full page means more is waiting (a burst of pushes): read on at once.
            if len(rows) < PUSH_PAGE:
                break
            await asyncio.sleep(0)
        return queued

    async def _watch_pushed(self) -> None:
        while not self._halt.is_set():
            try:
                await self.read_pushed()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading pushed metrics for anomaly detection failed")
            try:
                await asyncio.wait_for(self._halt.wait(), self.push_poll)
            except TimeoutError:
                pass

    # -------------------------------------------------------------------- worker

    async def _run(self, build: Any) -> None:
        try:
            await build
        except Exception:
            log.exception("anomaly detector could not start")
            return
        await self._learn_from_history()
        self.ready.set()
        while not self._halt.is_set():
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("anomaly detection pass failed")
            try:
                await asyncio.wait_for(self._halt.wait(), self.flush_every)
            except TimeoutError:
                pass

    async def flush(self) -> list[str]:
        """Score everything queued (in the worker thread) and open incidents for the alerts;
        returns the keys of the incidents opened. Passes never overlap."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> list[str]:
        if self._executor is None or self.detector is None:
            return []
        loop = asyncio.get_running_loop()
        learn, self._learn = self._learn, []
        if learn:
            self.stats["learned"] += await loop.run_in_executor(self._executor, self._teach, learn)
        if not self._queued:
            return []
        batch, self._queue = dict(self._queue), defaultdict(list)
        self._queued = 0
        alerts = await loop.run_in_executor(self._executor, self._score, batch)
        self.stats["samples"] += sum(len(v) for v in batch.values())
        opened = []
        for alert in alerts:
            self.stats["alerts"] += 1
            key = await self._open(alert)
            if key:
                opened.append(key)
        return opened

    def _teach(self, items: list[tuple[str, list[float]]]) -> int:
        learned = 0
        for series, signature in items:
            try:
                learned += bool(self.detector.mark_false_positive(series, signature=signature))
            except Exception:
                log.warning("could not learn the false-positive shape of %s", series)
        return learned

    def _score(self, batch: dict[str, list[tuple[float, float]]]) -> list[Alert]:
        """Worker thread: feed each series' samples, in time order, to the detector."""
        import numpy as np

        from engine.detection.correlation import correlate

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
            found.append(Alert(
                series=series,
                target=self._targets.get(series),
                at=episode.timestamp,
                value=episode.value,
                score=float(result.score[result.alert].max()),
                band=self.detector.expected_band(series, episode.timestamp),
                signature=list(episode.signature),
                window=list(zip(window_ts, window_vals)),
            ))
        window = float(getattr(self.correlation, "window", 3600.0) or 3600.0)
        for alert in found:
            others = {name: self.detector.recent(name, 100_000) for name in self.detector.series()
                      if self._targets.get(name) == alert.target or name == alert.series}
            ranked = correlate(others, alert.at, window)
            alert.correlation = [c.to_dict() for c in ranked[:10]]
        return found

    async def _learn_from_history(self) -> None:
        """Shapes of anomaly incidents already marked as false positives (before a restart)."""
        from engine.models import Incident

        try:
            rows = await Incident.filter(source="anomaly", false_positive=True).values_list("analysis", flat=True)
        except Exception:
            log.exception("could not read past false positives")
            return
        for analysis in rows:
            info = (analysis or {}).get("anomaly") or {}
            if info.get("series") and info.get("signature"):
                self._learn.append((str(info["series"]), list(info["signature"])))

    # ----------------------------------------------------------------- incidents

    async def _open(self, alert: Alert) -> str | None:
        from engine import services

        dedup = f"anomaly:{alert.series}"[:200]
        if await services.find_open_incident(dedup) is not None:
            return None  # one open incident per series episode
        if not getattr(self.section, "auto_create_incident", True):
            return None
        at = datetime.fromtimestamp(alert.at, UTC)
        now = datetime.now(UTC)
        band = alert.band
        direction = "above" if band and alert.value > band[1] else "below" if band and alert.value < band[0] else "unusual"
        expected = f"expected {_num(band[0])}–{_num(band[1])}" if band else "no expected band yet"
        title = f"Anomaly on {alert.series}: {_num(alert.value)} {direction} normal ({expected})"
        services_of = getattr(getattr(self.engine, "monitor", None), "services_by_target", None) or {}
        service = services_of.get(alert.target) if alert.target else None
        incident_like = {"title": title, "target": alert.target, "trigger": "anomaly", "services": [service] if service else [],
                         "detected_at": min(at, now), "source": "anomaly"}
        analysis: dict[str, Any] = {
            "anomaly": {
                "series": alert.series,
                "score": round(alert.score, 4),
                "value": alert.value,
                "at": at.isoformat(),
                "expected_band": list(band) if band else None,
                "sensitivity": self.settings.sensitivity,
                "signature": [round(v, 6) for v in alert.signature],
            },
            "correlation": alert.correlation,
        }
        analysis["pattern"] = await self._patterns(incident_like)
        description = (
            f"The anomaly detector flagged {alert.series} at {at.strftime('%Y-%m-%d %H:%M:%S')} UTC: value {_num(alert.value)}, "
            f"score {alert.score:.2f} ({self.settings.sensitivity} sensitivity), {expected}."
        )
        hint = (analysis["pattern"] or {}).get("hint")
        if hint:
            description += f"\n{hint}"
        severity = getattr(getattr(self.section, "severity", None), "value", None) or str(getattr(self.section, "severity", "medium") or "medium")
        incident = await services.create_incident(
            title=title[:200], severity=severity, actor=ACTOR, description=description,
            services=[service] if service else [], tags=["anomaly"], source="anomaly", dedup_key=dedup,
            detected_at=min(at, now), target=alert.target, trigger="anomaly", analysis=analysis,
        )
        first, last = alert.window[0][0], alert.window[-1][0]
        await services.add_evidence(
            incident.key, "samples", ACTOR,
            content=json.dumps({"series": alert.series, "expected_band": list(band) if band else None, "score": alert.score,
                                "samples": [[datetime.fromtimestamp(t, UTC).isoformat(), v] for t, v in alert.window]}),
            range_from=datetime.fromtimestamp(first, UTC), range_to=datetime.fromtimestamp(last, UTC),
            description=f"anomalous window of {alert.series}: score {alert.score:.2f}, {expected}",
        )
        self.stats["incidents"] += 1
        self.opened.append(incident.key)
        return incident.key

    async def _patterns(self, incident: dict[str, Any]) -> dict[str, Any] | None:
        if self.patterns is not None and not getattr(self.patterns, "enabled", True):
            return None
        from engine.detection.patterns import analyze
        from engine.models import Incident

        days = int(getattr(self.patterns, "historical_analysis_days", 30) or 30)
        since = datetime.now(UTC) - timedelta(days=days)
        try:
            rows = await Incident.filter(created_at__gte=since).values(
                "number", "title", "description", "source", "target", "trigger", "services", "tags", "detected_at",
                "created_at", "resolved_at", "root_cause", "solution", "false_positive",
            )
        except Exception:
            log.exception("pattern recognition could not read past incidents")
            return None
        past = [{**r, "key": f"INC-{r['number']}"} for r in rows]
        return _jsonable(analyze(incident, past, days=days))


def _num(value: float) -> str:
    return f"{value:.4g}"


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))
