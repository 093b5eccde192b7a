"""The anomaly-detection engine service: scores every new metric sample, opens anomaly incidents.

Samples come from the monitor (every probe result: response time and scraped series) and from
pushed metrics (polled from the metric store). The detector and every refit run in ONE worker
process (engine.detection.worker; `worker="thread"` keeps it in a thread of this process) — the
same `observe_many` with inline fits that `pulseguard replay` runs — so the event loop only
queues samples and writes incidents, the console never waits for a fit to release the
interpreter lock, and the detector needs no locking.

An alert opens one incident per series episode (engine.detection.incident), with the
anomalous window as evidence, pattern recognition (frequent / rare / new, similar past
incidents and their fixes) and the metrics correlation of the other series the detector
watches. Marking such an incident a false positive teaches the detector.

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections import defaultdict
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from engine.detection import pool
from engine.detection.incident import open_incident
from engine.detection.worker import Alert, DetectorHost, call, quiet_worker

log = logging.getLogger("pulseguard.detection")

UTC = UTC
MAX_QUEUE = 200_000  # samples waiting for the worker; beyond this the oldest are dropped
# Samples per call to the worker: each call is pickled in one go, holding the interpreter lock,
# so a large batch would stall the event loop for that long.
CALL_SAMPLES = 4000
PUSH_PAGE = 1000  # pushed samples read per query: small pages keep the event loop free between them


def series_name(target: str | None, key: str) -> str:
    """How the detector names a series: `target/key` for a target's series, else the key."""
    return f"{target}/{key}" if target else key


class AnomalyService:
    """Engine service (see engine.runtime.engine): `start(engine)` / `stop()`."""

    # In a cluster every engine runs it for the targets it probes (their results reach only it);
    # pushed series are scored by the engine holding bucket 0.
    sharded = True

    name = "anomaly"

    def __init__(
        self,
        section: Any = None,
        patterns: Any = None,
        correlation: Any = None,
        *,
        flush_every: float = 1.0,
        push_poll: float = 5.0,
        detector_settings: Any = None,
        worker: str = "process",
    ) -> None:
        if worker not in ("process", "thread"):
            raise ValueError(f"worker must be 'process' or 'thread', not {worker!r}")
        self.worker = worker
        self.section = section
        self.detector_settings = detector_settings  # overrides the section (tests, benches)
        self.patterns = patterns
        self.correlation = correlation
        self.flush_every = flush_every
        self.push_poll = push_poll
        self.engine: Any = None
        self._host: DetectorHost | None = None  # worker="thread" only
        self._built = False
        self.settings: Any = None
        self.ready = asyncio.Event()
        self.opened: list[str] = []  # incident keys this service opened (newest last)
        self.stats = {"samples": 0, "alerts": 0, "incidents": 0, "dropped": 0, "learned": 0}
        self._queue: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._queued = 0
        self._targets: dict[str, str | None] = {}
        self._learn: list[tuple[str, list[float]]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._executor: Executor | None = None
        self._halt = asyncio.Event()
        self._hook: Any = None
        self._flushing = asyncio.Lock()
        self._push_cursor: int | None = None
        self._push_keys: dict[int, str] = {}

    # ------------------------------------------------------------------ life cycle

    async def start(self, engine: Any) -> None:
        from engine.detection.settings import settings_from_section

        self.engine = engine
        self.settings = self.detector_settings or settings_from_section(self.section)
        self._halt = asyncio.Event()
        self.ready = asyncio.Event()
        self._executor = self._new_executor()
        # numpy, PyOD and numba's first compilation load in the worker, never on the loop.
        build = self._call("start", self.settings, self._correlation_window())
        monitor = getattr(engine, "monitor", None)
        if monitor is not None:
            monitor.add_listener(self.on_observation)
        from engine.incidents.hooks import change_hooks

        self._hook = self._on_change
        change_hooks.subscribe(self._hook, ("false_positive",))
        self._tasks = [
            asyncio.create_task(self._run(build), name="pulseguard:anomaly"),
            asyncio.create_task(self._watch_pushed(), name="pulseguard:anomaly-pushed"),
        ]

    def _new_executor(self) -> Executor:
        if self.worker == "process":
            # spawn, not fork: this process runs threads (the event loop's helpers, the console).
            return ProcessPoolExecutor(1, mp_context=pool.spawn_context(), initializer=quiet_worker)
        return ThreadPoolExecutor(1, thread_name_prefix="pulseguard-anomaly")

    async def _restart_worker(self) -> bool:
        old, self._executor = self._executor, self._new_executor()
        self._built = False
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        try:
            await self._call("start", self.settings, self._correlation_window())
        except Exception:
            log.exception("anomaly detector could not restart")
            return False
        self._built = True
        await self._learn_from_history()
        return True

    def _correlation_window(self) -> float:
        return float(getattr(self.correlation, "window", 3600.0) or 3600.0)

    def _call(self, method: str, *args: Any) -> asyncio.Future[Any]:
        """Run a DetectorHost method in the worker (process or thread)."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        if self.worker == "process":
            return loop.run_in_executor(self._executor, partial(call, method, *args))
        if method == "start":
            return loop.run_in_executor(self._executor, self._start_host, *args)
        return loop.run_in_executor(self._executor, lambda: getattr(self._host, method)(*args))

    def _start_host(self, settings: Any, window: float) -> None:
        self._host = DetectorHost(settings, window)

    async def inspect(self) -> dict[str, Any]:
        """Series watched, models fitted, shapes learned (asks the worker)."""
        if self._executor is None or not self._built:
            return {"series": [], "fitted": 0, "fits": 0, "shapes": {}}
        found: dict[str, Any] = await self._call("inspect")
        return found

    def halt(self) -> None:
        """The engine is stopping (Engine.halt): end the worker's call now, a fit or numpy
        still loading, rather than once the services stopped before this one are done; stop()
        follows and reaps it. The worker keeps nothing that must outlive it."""
        self._halt.set()
        if self._executor is not None and self.worker == "process":
            pool.end_workers(self._executor)

    async def stop(self) -> None:
        self._halt.set()
        monitor = getattr(self.engine, "monitor", None)
        if monitor is not None:
            monitor.remove_listener(self.on_observation)
        if self._hook is not None:
            from engine.incidents.hooks import change_hooks

            change_hooks.unsubscribe(self._hook)
            self._hook = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await pool.stop_executor(executor)

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
        from tortoise import connections

        from engine.monitor.metrics import sql_placeholders
        from engine.storage.monitor_models import MetricSample, MetricSeries

        if self._push_cursor is None:
            # Tortoise types a flat values_list as tuples
            last = cast("int | None", await MetricSample.all().order_by("-id").first().values_list("id", flat=True))
            self._push_cursor = int(last or 0)
            return 0
        conn = connections.get("default")
        a, b = sql_placeholders(conn, 2)
        # Raw rows, pushed series picked by a subquery: an ORM page with an IN list of every
        # pushed series costs ten times as much, all of it on the event loop. The unary + keeps
        # SQLite on the primary key (a range scan) instead of the (series_id, at) index, which
        # would sort every unread sample for each page.
        sql = (
            "SELECT s.id, s.series_id, s.at, s.value FROM metric_sample s WHERE s.id > "
            + a
            + " AND +s.series_id IN (SELECT id FROM metric_series WHERE source = 'push') ORDER BY s.id LIMIT "
            + b
        )
        queued = 0
        while not self._halt.is_set():
            _, rows = await conn.execute_query(sql, [self._push_cursor, PUSH_PAGE])
            for _sample_id, series_id, at, value in rows:
                key = self._push_keys.get(series_id)
                if key is None:
                    self._push_keys = dict(await MetricSeries.filter(source="push").values_list("id", "key"))
                    # A series removed since: name it by its id, once, not a query per row.
                    key = self._push_keys.setdefault(series_id, str(series_id))
                moment = at if isinstance(at, datetime) else datetime.fromisoformat(at)
                when = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
                self.add_sample(None, key, when, float(value))
            if rows:
                self._push_cursor = max(self._push_cursor, int(rows[-1][0]))
            queued += len(rows)
            # A full page means more is waiting (a burst of pushes): read on at once.
            if len(rows) < PUSH_PAGE:
                break
            await asyncio.sleep(0)
        return queued

    async def _watch_pushed(self) -> None:
        while not self._halt.is_set():
            try:
                cluster = getattr(self.engine, "cluster", None)
                if cluster is None or 0 in cluster.owned:  # a cluster's pushed series: bucket 0's engine
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
            if not self._halt.is_set():  # else ended by halt(), as the engine stops
                log.exception("anomaly detector could not start")
            return
        self._built = True
        await self._learn_from_history()
        self.ready.set()
        while not self._halt.is_set():
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except BrokenExecutor:
                if self._halt.is_set():
                    return  # ended by halt(), as the engine stops: no new worker
                # The worker process died (killed, out of memory): start a new one. Its models
                # are relearned from the samples that follow.
                log.error("the anomaly detector's worker stopped; starting a new one")
                if not await self._restart_worker():
                    return
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
        if self._executor is None or not self._built:
            return []
        learn, self._learn = self._learn, []
        if learn:
            try:
                self.stats["learned"] += await self._call("teach", learn)
            except BrokenExecutor:
                self._learn[:0] = learn
                raise
        if not self._queued:
            return []
        batch, self._queue = dict(self._queue), defaultdict(list)
        self._queued = 0
        alerts: list[Alert] = []
        chunks = list(pool.chunks(batch, CALL_SAMPLES))
        for done, chunk in enumerate(chunks):
            targets = {series: self._targets.get(series) for series in chunk}
            try:
                alerts += await self._call("score", chunk, targets)
            except BrokenExecutor:
                # The worker died before scoring these: they go back in front of the queue.
                for rest in chunks[done:]:
                    for series, samples in rest.items():
                        self._queue[series][:0] = samples
                        self._queued += len(samples)
                raise
            self.stats["samples"] += sum(len(v) for v in chunk.values())
        opened = []
        for alert in alerts:
            self.stats["alerts"] += 1
            key = await self._open(alert)
            if key:
                opened.append(key)
        return opened

    async def _learn_from_history(self) -> None:
        """Shapes of anomaly incidents already marked as false positives (before a restart)."""
        from engine.storage.models import Incident

        try:
            rows = cast(
                "list[dict[str, Any] | None]",
                await Incident.filter(source="anomaly", false_positive=True).values_list("analysis", flat=True),
            )
        except Exception:
            log.exception("could not read past false positives")
            return
        for analysis in rows:
            info = (analysis or {}).get("anomaly") or {}
            if info.get("series") and info.get("signature"):
                self._learn.append((str(info["series"]), list(info["signature"])))

    # ----------------------------------------------------------------- incidents

    async def _open(self, alert: Alert) -> str | None:
        key = await open_incident(
            alert,
            engine=self.engine,
            section=self.section,
            settings=self.settings,
            patterns=self.patterns,
            window=self._correlation_window(),
        )
        if key:
            self.stats["incidents"] += 1
            self.opened.append(key)
        return key
